// The uotflow command-line tool: train, flow, sample, data, eval, fid-ref, info. Exit codes: 0 ok,
// 1 runtime error, 2 usage or config error.
#include <torch/torch.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/data/images.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/flow/swgf.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/sha256.h"
#include "uotflow/metrics/features.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/phi.h"
#include "uotflow/train/trainer.h"
#include "uotflow_build_info.h"

namespace {

std::atomic<bool> g_stop{false};

void on_stop_signal(int signal) {
  g_stop.store(true);
  // A second signal ends the process the default way.
  std::signal(signal, SIG_DFL);
}

std::string join_args(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) {
      out.push_back(' ');
    }
    out.append(argv[i]);
  }
  return out;
}

struct TrainArgs {
  std::string config_file;
  std::vector<std::string> sets;
  std::string out = "runs";
  std::string name;
  std::optional<uint64_t> seed;
  std::optional<int64_t> steps;
  std::optional<int64_t> threads;
  std::optional<std::string> device;
  std::string resume;
  bool dry_run = false;
  bool out_given = false;
};

// The resolved config of `train` or `flow`: from --resume's run directory, or defaults < --config <
// --set < the dedicated flags. `steps_key` is the key --steps sets.
template <typename Resolve, typename Load>
uotflow::Json command_config(const TrainArgs& a, const std::string& steps_key, Resolve resolve,
                             Load load) {
  using uotflow::Json;
  std::vector<std::pair<std::string, Json>> flags;
  if (a.seed) {
    flags.emplace_back("seed", *a.seed);
  }
  if (a.steps) {
    flags.emplace_back(steps_key, *a.steps);
  }
  if (a.threads) {
    flags.emplace_back("threads", *a.threads);
  }
  if (a.device) {
    flags.emplace_back("device", *a.device);
  }
  if (a.resume.empty()) {
    Json file = a.config_file.empty() ? Json() : uotflow::read_json_file(a.config_file);
    return resolve(file, a.sets, flags);
  }
  if (!a.config_file.empty() || !a.sets.empty() || a.seed || a.out_given || !a.name.empty()) {
    throw uotflow::ConfigError(
        "--resume continues a run in its own directory with its own config: --config, --set, "
        "--seed, --out and --name are not allowed");
  }
  Json config = load(a.resume);
  for (const auto& [key, value] : flags) {
    uotflow::apply_set(config, key + "=" + value.dump());
  }
  return config;
}

void set_threads(const uotflow::Json& config) {
  const auto threads = uotflow::get<int64_t>(config, "threads");
  if (threads <= 0) {
    throw uotflow::ConfigError("threads must be > 0, got " + std::to_string(threads));
  }
  torch::set_num_threads(static_cast<int>(threads));
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

// The options `train` and `flow` share; returns --out (whose use is checked with --resume).
CLI::Option* add_run_options(CLI::App* command, TrainArgs& a, const std::string& name_help,
                             const std::string& steps_help) {
  command->add_option("--config", a.config_file, "JSON config file (comments allowed)");
  command->add_option("--set", a.sets, "override a config key: key.path=value (repeatable)");
  auto* out = command->add_option("--out", a.out, "parent folder of run directories")
                  ->capture_default_str();
  command->add_option("--name", a.name, name_help);
  command->add_option("--seed", a.seed, "master seed (random when omitted; recorded)");
  command->add_option("--steps", a.steps, steps_help);
  command->add_option("--threads", a.threads, "intra-op CPU threads (default 1)");
  command->add_option("--device", a.device, "cpu | cuda | cuda:N (default cpu)");
  command->add_option("--resume", a.resume,
                      "continue this run directory from its newest checkpoint");
  command->add_flag("--dry-run", a.dry_run, "print the resolved config and exit");
  return out;
}

// TrainOptions / FlowOptions from the command line: the fields both share.
template <typename Options>
Options run_options(const TrainArgs& a, const std::string& command_line) {
  Options options;
  options.out_root = a.out;
  options.name = a.name;
  options.resume_dir = a.resume;
  options.command_line = command_line;
  options.stop = &g_stop;
  options.progress = &std::cerr;
  return options;
}

int run_train(const TrainArgs& a, const std::string& command_line) {
  auto config = command_config(a, "train.steps", uotflow::resolve_config, uotflow::load_run_config);
  if (a.dry_run) {
    std::cout << config.dump(2) << std::endl;
    return 0;
  }
  set_threads(config);
  auto options = run_options<uotflow::TrainOptions>(a, command_line);
  options.progress_is_terminal = isatty(STDERR_FILENO) != 0;
  auto result = uotflow::train(config, options);
  if (result.interrupted) {
    std::cerr << "interrupted at step " << result.step << "; checkpoint written; resume with "
              << "uotflow train --resume " << result.run_dir << "\n";
  } else {
    std::cerr << "finished " << result.step << " steps\n";
  }
  std::cout << result.run_dir << std::endl;
  return 0;
}

int run_flow_command(const TrainArgs& a, const std::string& command_line) {
  auto config = command_config(a, "flow.n_steps", uotflow::resolve_flow_config,
                               uotflow::load_flow_run_config);
  if (a.dry_run) {
    std::cout << config.dump(2) << std::endl;
    return 0;
  }
  set_threads(config);
  auto options = run_options<uotflow::FlowOptions>(a, command_line);
  auto result = uotflow::run_flow(config, options);
  if (result.interrupted) {
    std::cerr << "interrupted after JKO step " << result.step << "; resume with "
              << "uotflow flow --resume " << result.run_dir << "\n";
  } else {
    std::cerr << "finished " << result.step << " JKO steps\n";
  }
  std::cout << result.run_dir << std::endl;
  return 0;
}

struct EvalArgs {
  std::string samples;
  std::string reference;
  std::string metrics = "sw2,energy,mean_error,cov_error";
  uint64_t seed = 0;
  int64_t projections = 1000;
  double epsilon = 0.01;
  std::vector<double> bandwidths;
  std::string centres;
  double mode_std = 0.0;
  std::string data_name;
  std::string data_params = "{}";
  std::string outliers;
  double radius = 0.0;
  std::string device = "cpu";
};

std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> names;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (!name.empty()) {
      names.push_back(name);
    }
  }
  return names;
}

torch::Tensor load_points_2d(const std::string& path, const torch::Device& device) {
  auto t = uotflow::load_npy(path);
  return (t.dim() == 1 ? t.unsqueeze(1) : t).to(device);
}

int run_eval(const EvalArgs& args) {
  const auto names = split_names(args.metrics);
  if (names.empty()) {
    throw uotflow::ConfigError("--metrics: no metric names given");
  }
  for (const auto& name : names) {
    uotflow::metric_registry().at(name);  // unknown names fail before any work
  }
  if (args.projections <= 0) {
    throw uotflow::ConfigError("--projections must be > 0");
  }
  if (!(args.epsilon > 0)) {
    throw uotflow::ConfigError("--epsilon must be > 0");
  }
  const auto device = uotflow::parse_device(args.device);
  uotflow::MetricContext context;
  context.seed = args.seed;
  context.n_projections = args.projections;
  context.epsilon = args.epsilon;
  context.bandwidths = args.bandwidths;
  context.mode_std = args.mode_std;
  context.outlier_radius = args.radius;
  if (!args.data_name.empty()) {
    uotflow::Json section = uotflow::default_data_section();
    section["name"] = args.data_name;
    section["params"] = uotflow::parse_json(args.data_params, "--params");
    auto set = uotflow::make_dataset(section);
    if (!set->centres().defined()) {
      throw uotflow::ConfigError("--data: data set '" + args.data_name + "' has no known modes");
    }
    context.centres = set->centres();
    if (context.mode_std <= 0) {
      context.mode_std = set->mode_std();
    }
  }
  if (!args.centres.empty()) {
    context.centres = load_points_2d(args.centres, torch::kCPU);
  }
  if (!args.outliers.empty()) {
    context.outliers = load_points_2d(args.outliers, torch::kCPU);
  }
  auto x = load_points_2d(args.samples, device);
  auto y = load_points_2d(args.reference, device);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();  // in the order asked for
  for (const auto& name : names) {
    out[name] = uotflow::compute_metric(name, x, y, context);
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

// "0-63", "3", "0-3,10,12-13" -> the seeds in order. A bad range is a ConfigError.
std::vector<uint64_t> parse_seed_ranges(const std::string& text) {
  std::vector<uint64_t> seeds;
  for (const auto& part : split_names(text)) {
    const auto dash = part.find('-');
    try {
      size_t used = 0;
      const uint64_t first = std::stoull(part.substr(0, dash), &used);
      uint64_t last = first;
      if (dash != std::string::npos) {
        size_t used_last = 0;
        last = std::stoull(part.substr(dash + 1), &used_last);
        used += 1 + used_last;
      }
      if (used != part.size() || last < first || last - first >= 1000000) {
        throw std::invalid_argument(part);
      }
      for (uint64_t seed = first; seed <= last; ++seed) {
        seeds.push_back(seed);
      }
    } catch (const std::logic_error&) {
      throw uotflow::ConfigError("--seeds: bad entry '" + part +
                                 "' (expected N or A-B with A <= B, comma-separated)");
    }
  }
  if (seeds.empty()) {
    throw uotflow::ConfigError("--seeds: no seeds given");
  }
  return seeds;
}

// `sample --seeds`: one PNG per seed, DIR/seed-SSSSSS.png.
int run_sample_seeds(const std::string& run, const std::string& seeds_text, bool ema, int64_t phase,
                     const std::string& out_dir) {
  const auto seeds = parse_seed_ranges(seeds_text);
  auto result = uotflow::sample_run_seeds(run, seeds, ema, phase);
  const auto& shape = result.image_shape;
  if (shape.empty()) {
    throw uotflow::ConfigError(
        "--seeds writes one PNG per seed and needs a run on image data; "
        "use --n and an .npy --out for points");
  }
  std::filesystem::create_directories(out_dir);
  auto images = result.samples.view({result.samples.size(0), shape[0], shape[1], shape[2]});
  for (size_t i = 0; i < seeds.size(); ++i) {
    const auto path =
        std::filesystem::path(out_dir) / ("seed-" + uotflow::zero_pad(seeds[i], 6) + ".png");
    uotflow::save_image_png(path.string(), uotflow::image_grid(images.slice(0, i, i + 1), 1, 0));
  }
  std::cout << out_dir << std::endl;
  return 0;
}

struct FidRefArgs {
  std::string data_name;
  std::string data_params = "{}";
  std::string extractor = "classifier";
  std::string out;
  int64_t n = 0;
  uint64_t seed = 0;
  int64_t classifier_steps = 2000;
  std::string input_range = "signed";
  int64_t input_channels = 0;
  std::string device = "cpu";
  int64_t threads = 1;
};

// `fid-ref`: feature statistics of a data set's images, for later FIDs against it.
int run_fid_ref(const FidRefArgs& a) {
  if (a.n < 0 || a.threads <= 0) {
    throw uotflow::ConfigError("--n must be >= 0 and --threads > 0");
  }
  torch::set_num_threads(static_cast<int>(a.threads));
  const auto device = uotflow::parse_device(a.device);
  uotflow::Json section = uotflow::default_data_section();
  section["name"] = a.data_name;
  section["params"] = uotflow::parse_json(a.data_params, "--params");
  auto set = uotflow::make_dataset(section);
  const auto* images = dynamic_cast<const uotflow::ImageSet*>(set.get());
  if (images == nullptr) {
    throw uotflow::ConfigError("--data '" + a.data_name + "' is not an image data set");
  }
  std::string extractor_path = a.extractor;
  if (a.extractor == "classifier") {
    extractor_path = std::filesystem::path(a.out).replace_extension(".classifier.safetensors");
    uotflow::ClassifierOptions options;
    options.steps = a.classifier_steps;
    options.seed = uotflow::derive_seed(a.seed, "classifier");
    const auto report = uotflow::train_classifier(*images, options, extractor_path, &std::cerr);
    std::cerr << "classifier held-out accuracy " << report.accuracy << ", written to "
              << extractor_path << "\n";
  }
  uotflow::TorchScriptInput input{a.input_range, a.input_channels};
  auto extractor =
      uotflow::load_feature_extractor(extractor_path, images->image_shape(), device, input);
  auto x = images->images();
  if (a.n > 0 && a.n < x.size(0)) {
    auto gen = uotflow::make_stream(a.seed, "fid-ref");
    x = x.index_select(0, torch::randperm(x.size(0), gen).slice(0, 0, a.n));
  }
  uotflow::ReferenceStats stats;
  stats.gaussian = uotflow::feature_statistics(extractor->features(x));
  stats.n = x.size(0);
  stats.extractor_sha256 = extractor->sha256();
  uotflow::save_reference_stats(a.out, stats);
  uotflow::Json report{{"out", a.out},
                       {"n", stats.n},
                       {"features", stats.gaussian.mean.numel()},
                       {"extractor", extractor->kind()},
                       {"extractor_path", extractor_path},
                       {"extractor_sha256", stats.extractor_sha256}};
  std::cout << report.dump() << std::endl;
  return 0;
}

void print_registry(const std::string& title,
                    const std::vector<std::pair<std::string, std::string>>& entries) {
  std::cout << title << ":\n";
  for (const auto& [name, description] : entries) {
    std::cout << "  " << name << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ')
              << description << "\n";
  }
}

template <typename R>
std::vector<std::pair<std::string, std::string>> describe(const R& registry) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : registry.entries()) {
    out.emplace_back(name, entry.description);
  }
  return out;
}

int run_info() {
  std::cout << "uotflow " << UOTFLOW_VERSION << " (LibTorch " << TORCH_VERSION << ")\n";
  print_registry("methods", describe(uotflow::method_registry()));
  print_registry("phi (Psi* conjugates)", describe(uotflow::phi_registry()));
  print_registry("costs", {{"quadratic", "cost_scale * sum|mean_i (x_i - y_i)^2"}});
  print_registry("data sets", describe(uotflow::dataset_registry()));
  print_registry("generator networks", describe(uotflow::generator_registry()));
  print_registry("potential networks", describe(uotflow::potential_registry()));
  print_registry("metrics", describe(uotflow::metric_registry()));
  print_registry("functionals (flow)", describe(uotflow::functional_registry()));
  print_registry("parametrizations (flow)", describe(uotflow::parametrization_registry()));
  return 0;
}

// Keeps freed activation buffers in the heap instead of returning them to the OS after every step:
// image training steps otherwise spend about 11% of their time in page faults (docs/benchmarks.md).
void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc accepts on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{"uotflow: generative modeling and Wasserstein gradient flows with unbalanced OT"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(UOTFLOW_VERSION));

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "train a model (writes a run directory)");
  auto* out_option = add_run_options(train, train_args, "run name (default: method-dataset)",
                                     "total training steps (with --resume: continue to N)");
  TrainArgs flow_args;
  auto* flow =
      app.add_subcommand("flow", "run a sliced-Wasserstein gradient flow (writes a run directory)");
  auto* flow_out_option =
      add_run_options(flow, flow_args, "run name (default: swgf-functional-parametrization)",
                      "JKO steps (with --resume: continue to N)");

  std::string sample_run;
  int64_t sample_n = 1000;
  std::string sample_out;
  uint64_t sample_seed = 0;
  bool no_ema = false;
  int64_t sample_phase = -1;
  std::string sample_seeds;
  auto* sample = app.add_subcommand("sample", "draw samples from a trained run's final weights");
  sample->add_option("--run", sample_run, "run directory")->required();
  sample->add_option("--n", sample_n, "number of samples")->capture_default_str();
  sample
      ->add_option("--out", sample_out, "output .npy file, or with --seeds the folder of the PNGs")
      ->required();
  sample->add_option("--seeds", sample_seeds,
                     "image runs: one PNG per seed, e.g. 0-63 or 0-3,10 (seed-SSSSSS.png)");
  sample->add_option("--seed", sample_seed, "sampling seed")->capture_default_str();
  sample->add_flag("--no-ema", no_ema, "use the raw generator instead of its EMA");
  sample
      ->add_option("--phase", sample_phase,
                   "sample the generator as it was at the end of phase k (sjko runs)")
      ->check(CLI::NonNegativeNumber);

  std::string data_name;
  std::string data_params = "{}";
  int64_t data_n = 1000;
  std::string data_out;
  uint64_t data_seed = 0;
  auto* data = app.add_subcommand("data", "dump samples of a registered data set as .npy");
  data->add_option("--dataset", data_name, "data set name (see `uotflow info`)")->required();
  data->add_option("--params", data_params, "data set parameters as a JSON object")
      ->capture_default_str();
  data->add_option("--n", data_n, "number of samples")->capture_default_str();
  data->add_option("--out", data_out, "output .npy file")->required();
  data->add_option("--seed", data_seed, "seed")->capture_default_str();

  EvalArgs eval_args;
  auto* eval = app.add_subcommand("eval", "compare two sample sets; prints one JSON object");
  eval->add_option("--samples", eval_args.samples, "samples .npy [N, D]")->required();
  eval->add_option("--reference", eval_args.reference, "reference .npy [M, D]")->required();
  eval->add_option("--metrics", eval_args.metrics, "comma-separated metric names (`uotflow info`)")
      ->capture_default_str();
  eval->add_option("--seed", eval_args.seed, "seed of random directions and subsets")
      ->capture_default_str();
  eval->add_option("--projections", eval_args.projections, "L for sliced metrics")
      ->capture_default_str();
  eval->add_option("--epsilon", eval_args.epsilon, "entropic regularisation of sinkhorn")
      ->capture_default_str();
  eval->add_option("--bandwidths", eval_args.bandwidths,
                   "MMD kernel bandwidths (default: median distance x 1/2, 1, 2)")
      ->delimiter(',');
  eval->add_option("--centres", eval_args.centres,
                   "mixture centres .npy [K, D] (modes, hq_fraction)");
  eval->add_option("--mode-std", eval_args.mode_std, "mixture component std (modes, hq_fraction)");
  eval->add_option("--data", eval_args.data_name, "take centres and mode std from this data set");
  eval->add_option("--params", eval_args.data_params, "parameters of --data as a JSON object")
      ->capture_default_str();
  eval->add_option("--outliers", eval_args.outliers,
                   "outlier locations .npy [K, D] (outlier_mass)");
  eval->add_option("--radius", eval_args.radius, "radius around each outlier (outlier_mass)");
  eval->add_option("--device", eval_args.device, "cpu, cuda or cuda:N")->capture_default_str();

  FidRefArgs fid_args;
  auto* fid_ref = app.add_subcommand(
      "fid-ref", "feature statistics (mu, sigma) of an image data set, as .npz, for FID");
  fid_ref->add_option("--data", fid_args.data_name, "image data set name (see `uotflow info`)")
      ->required();
  fid_ref->add_option("--params", fid_args.data_params, "data set parameters as a JSON object")
      ->capture_default_str();
  fid_ref->add_option("--out", fid_args.out, "output .npz (keys mu, sigma, n, extractor_sha256)")
      ->required();
  fid_ref
      ->add_option("--extractor", fid_args.extractor,
                   "TorchScript module (.pt) or uotflow classifier (.safetensors); 'classifier' "
                   "trains the built-in one and writes it beside --out")
      ->capture_default_str();
  fid_ref->add_option("--n", fid_args.n, "images used (0 = all; else a random subset)")
      ->capture_default_str();
  fid_ref->add_option("--seed", fid_args.seed, "seed of the subset and the classifier")
      ->capture_default_str();
  fid_ref
      ->add_option("--classifier-steps", fid_args.classifier_steps,
                   "training steps of the built-in classifier")
      ->capture_default_str();
  fid_ref
      ->add_option("--input-range", fid_args.input_range,
                   "TorchScript input scaling: signed [-1,1], unit [0,1] or byte [0,255]")
      ->capture_default_str();
  fid_ref
      ->add_option("--input-channels", fid_args.input_channels,
                   "TorchScript input channels: 0 as is, 3 repeats grey images")
      ->capture_default_str();
  fid_ref->add_option("--device", fid_args.device, "cpu, cuda or cuda:N")->capture_default_str();
  fid_ref->add_option("--threads", fid_args.threads, "intra-op CPU threads")->capture_default_str();

  app.add_subcommand("info", "list every registry (methods, phi, costs, data sets, nets, metrics)");

  try {
    app.parse(argc, argv);
    train_args.out_given = out_option->count() > 0;
    flow_args.out_given = flow_out_option->count() > 0;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    torch::set_num_threads(1);
    if (*train) {
      return run_train(train_args, join_args(argc, argv));
    }
    if (*flow) {
      return run_flow_command(flow_args, join_args(argc, argv));
    }
    if (*sample && !sample_seeds.empty()) {
      return run_sample_seeds(sample_run, sample_seeds, !no_ema, sample_phase, sample_out);
    }
    if (*sample) {
      auto x = uotflow::sample_run(sample_run, sample_n, sample_seed, !no_ema, sample_phase);
      uotflow::save_npy(sample_out, x.to(torch::kFloat32).contiguous());
      std::cout << sample_out << std::endl;
      return 0;
    }
    if (*data) {
      if (data_n <= 0) {
        throw uotflow::ConfigError("--n must be > 0");
      }
      uotflow::Json section = uotflow::default_data_section();
      section["name"] = data_name;
      section["params"] = uotflow::parse_json(data_params, "--params");
      auto set = uotflow::make_dataset(section);
      auto gen = uotflow::make_stream(data_seed, "data");
      uotflow::save_npy(data_out, set->sample(data_n, gen));
      std::cout << data_out << std::endl;
      return 0;
    }
    if (*eval) {
      return run_eval(eval_args);
    }
    if (*fid_ref) {
      return run_fid_ref(fid_args);
    }
    return run_info();
  } catch (const uotflow::ConfigError& e) {
    std::cerr << "uotflow: error: " << e.what() << std::endl;
    return 2;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    std::cerr << "uotflow: error: " << what.substr(0, what.find('\n')) << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "uotflow: error: " << e.what() << std::endl;
    return 1;
  }
}
