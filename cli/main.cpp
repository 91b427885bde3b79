// The uotflow command-line tool: train (and its alias flow), sample, data, eval, report, fid-ref,
// info.
// Each subcommand parses its flags and makes one library call. Exit codes: 0 ok, 1 runtime error,
// 2 usage or config error.
#include <torch/torch.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <CLI/CLI.hpp>

#include <atomic>
#include <charconv>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "launch.h"
#include "uotflow/core/blas.h"
#include "uotflow/core/device.h"
#include "uotflow/core/distributed.h"
#include "uotflow/core/error.h"
#include "uotflow/features/fid_reference.h"
#include "uotflow/io/npy.h"
#include "uotflow/run/commands.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace {

std::atomic<bool> g_stop{false};

void on_stop_signal(int signal) {
  g_stop.store(true);
  std::signal(signal, SIG_DFL);  // a second signal ends the process the default way
}

// CLI11's own range checks print their bounds in full (a 300-digit double); these name the flag
// and the value only.
CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; },
      "NONEMPTY");
}

// Digits only, and a value the option's type holds (CLI11 would clamp 2^64 to the largest).
CLI::Validator non_negative_integer(uint64_t max = std::numeric_limits<uint64_t>::max()) {
  return CLI::Validator(
      [max](std::string& value) {
        const bool digits =
            !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
        if (!digits) {
          return "'" + value + "' is not an integer >= 0";
        }
        uint64_t parsed = 0;
        const auto [end, error] =
            std::from_chars(value.data(), value.data() + value.size(), parsed);
        if (error != std::errc() || parsed > max) {
          return "'" + value + "' is out of range (at most " + std::to_string(max) + ")";
        }
        return std::string();
      },
      "UINT");
}
constexpr auto kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// A whole decimal number that is finite (CLI11 reads "inf", "nan" and "0x10" as numbers).
CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& value) {
        char* end = nullptr;
        const double parsed = std::strtod(value.c_str(), &end);
        const bool hex = value.find_first_of("xX") != std::string::npos;
        if (value.empty() || end != value.c_str() + value.size() || hex || !std::isfinite(parsed)) {
          return "'" + value + "' is not a finite number";
        }
        return std::string();
      },
      "FLOAT");
}

std::string join_args(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    out += (i > 0 ? " " : "") + std::string(argv[i]);
  }
  return out;
}

// The flags of `train` and `flow`; flow differs in its default method and what --steps sets.
struct TrainArgs {
  uotflow::RunRequest request;
  std::optional<uint64_t> seed;
  std::optional<int64_t> steps;
  std::optional<int64_t> threads;
  std::optional<std::string> device;
  std::string out = "runs";
  std::string name;
  bool dry_run = false;
  bool from_last_good = false;
  int64_t nproc = 1;
  std::string dist_backend = "gloo";
  CLI::Option* out_option = nullptr;
};

CLI::App* add_train_command(CLI::App& app, const std::string& verb, const std::string& help,
                            const std::string& steps_help, TrainArgs& a) {
  auto* c = app.add_subcommand(verb, help);
  c->add_option("--config", a.request.config_file, "JSON config file (comments allowed)")
      ->check(non_empty());
  c->add_option("--set", a.request.sets, "override a config key: key.path=value (repeatable)");
  a.out_option = c->add_option("--out", a.out, "parent folder of run directories")
                     ->capture_default_str()
                     ->check(non_empty());
  c->add_option("--name", a.name, "run name (default: method-data)");
  c->add_option("--seed", a.seed, "master seed (random when omitted; recorded)")
      ->check(non_negative_integer());
  c->add_option("--steps", a.steps, steps_help)->check(non_negative_integer(kInt64Max));
  c->add_option("--threads", a.threads, "intra-op CPU threads (default 1; at most the cores)")
      ->check(non_negative_integer(kInt64Max));
  c->add_option("--device", a.device, "cpu | cuda | cuda:N (default cpu)");
  auto* resume = c->add_option("--resume", a.request.resume_dir,
                               "continue this run directory from its newest checkpoint")
                     ->check(non_empty());
  c->add_flag("--resume-from-last-good", a.from_last_good,
              "with --resume: set aside checkpoints that fail verification and resume from the "
              "newest that passes")
      ->needs(resume);
  c->add_flag("--dry-run", a.dry_run, "print the resolved config and exit");
  c->add_option("--nproc", a.nproc,
                "train data parallel in N processes on this machine (rank 0 keeps the run "
                "directory); under torchrun or srun, leave it out: RANK and WORLD_SIZE say it")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  c->add_option("--dist-backend", a.dist_backend, "c10d backend of data-parallel runs")
      ->capture_default_str()
      ->check(CLI::IsMember({"gloo", "nccl"}));
  return c;
}

// argv without "--nproc N" / "--nproc=N": what each process of a --nproc run is started with.
std::vector<std::string> without_nproc(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--nproc") {
      ++i;
      continue;
    }
    if (arg.rfind("--nproc=", 0) == 0) {
      continue;
    }
    out.push_back(arg);
  }
  return out;
}

int run_train(TrainArgs& a, const std::string& steps_key, int argc, char** argv) {
  const std::string command_line = join_args(argc, argv);
  auto& flags = a.request.flags;
  if (a.seed)
    flags.emplace_back("seed", *a.seed);
  if (a.steps)
    flags.emplace_back(steps_key, *a.steps);
  if (a.threads)
    flags.emplace_back("threads", *a.threads);
  if (a.device)
    flags.emplace_back("device", *a.device);
  a.request.names_output = a.out_option->count() > 0 || !a.name.empty();
  auto dist = uotflow::DistOptions::from_env();
  if (dist && a.nproc > 1) {
    throw uotflow::ConfigError(
        "--nproc starts the processes itself; under a launcher that sets WORLD_SIZE, leave it out");
  }
  std::shared_ptr<uotflow::Collective> collective;
  if (dist && dist->world_size > 1) {
    dist->backend = a.dist_backend;
    collective = uotflow::Collective::connect(*dist);
  }
  // Rank 0 resolves the config (a new seed, a resumed run's config.json) and every other process
  // takes it from rank 0.
  uotflow::Json config;
  if (!collective || collective->is_root()) {
    config = uotflow::resolve_run_request(a.request);
  }
  if (collective) {
    config = uotflow::Json::parse(collective->broadcast(config.dump()));
  }
  if (a.dry_run) {
    if (!collective || collective->is_root()) {
      std::cout << config.dump(2) << std::endl;
    }
    return 0;
  }
  if (a.nproc > 1) {
    // The config was checked above, before any process starts.
    return uotflow_cli::launch_local_processes(static_cast<int>(a.nproc), without_nproc(argc, argv),
                                               uotflow::DistOptions().timeout_seconds);
  }
  torch::set_num_threads(uotflow::checked_threads(uotflow::get<int64_t>(config, "threads")));
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  uotflow::TrainOptions options;
  options.out_root = a.out;
  options.name = a.name;
  options.resume_dir = a.request.resume_dir;
  options.resume_from_last_good = a.from_last_good;
  options.command_line = command_line;
  options.stop = &g_stop;
  options.progress = &std::cerr;
  options.progress_is_terminal = isatty(STDERR_FILENO) != 0;
  if (collective) {
    options.collective = collective;
    if (!collective->is_root()) {
      uotflow::train(config, options);  // rank 0 reports
      return 0;
    }
  }
  const auto result = uotflow::train(config, options);
  if (result.interrupted) {
    std::cerr << "interrupted at step " << result.step
              << "; checkpoint written; resume with uotflow train --resume " << result.run_dir
              << "\n";
  } else {
    std::cerr << "finished " << result.step << " steps\n";
  }
  std::cout << result.run_dir << std::endl;
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

int print_info() {
  std::cout << "uotflow " << UOTFLOW_VERSION << " (LibTorch " << TORCH_VERSION << ")\n";
  const auto blas_core = uotflow::blas_core_name();
  std::cout << "BLAS: "
            << (blas_core.empty() ? "not OpenBLAS" : "OpenBLAS, " + blas_core + " kernels") << "\n";
  for (const auto& [title, entries] : uotflow::registry_listing()) {
    std::cout << title << ":\n";
    for (const auto& [name, description] : entries) {
      std::cout << "  " << name << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ')
                << description << "\n";
    }
  }
  return 0;
}

// `sample`: points as .npy, or one PNG per seed for image runs; with --input, the images of the
// given points under the run's map.
struct SampleArgs {
  std::string run, out, seeds, input;
  int64_t n = 1000, phase = -1;
  uint64_t seed = 0;
  bool no_ema = false, overwrite = false;

  CLI::App* add(CLI::App& app) {
    auto* c = app.add_subcommand("sample", "draw samples from a trained run's final weights");
    c->add_option("--run", run, "run directory")->required()->check(non_empty());
    c->add_option("--n", n, "number of samples")
        ->capture_default_str()
        ->check(non_negative_integer(kInt64Max));
    c->add_option("--out", out, "output .npy, or with --seeds the folder of the PNGs")
        ->required()
        ->check(non_empty());
    c->add_flag("--overwrite", overwrite, "replace --out files that exist");
    c->add_option("--seeds", seeds,
                  "image runs: one PNG per seed, e.g. 0-63 or 0-3,10 (seed-SSSSSS.png)");
    c->add_option("--input", input,
                  "map these source points (.npy [n, D]) through the run's map, in order, instead "
                  "of drawing from its source; --out: .npy, or a folder of PNGs for image runs")
        ->check(non_empty())
        ->excludes("--seeds")
        ->excludes("--n");
    c->add_option("--seed", seed, "sampling seed")
        ->capture_default_str()
        ->check(non_negative_integer());
    c->add_flag("--no-ema", no_ema, "use the raw generator instead of its EMA");
    c->add_option("--phase", phase, "sample the model as it was at the end of phase k")
        ->check(non_negative_integer(kInt64Max));
    return c;
  }
  int run_command() const {
    if (!input.empty()) {
      uotflow::write_mapped_inputs(run, input, seed, !no_ema, phase, out, overwrite);
    } else if (!seeds.empty()) {
      uotflow::write_seed_pngs(run, uotflow::parse_seed_ranges(seeds), !no_ema, phase, out,
                               overwrite);
    } else {
      uotflow::OutputGuard guard(out, overwrite);
      auto x = uotflow::sample_run(run, n, seed, !no_ema, phase);
      uotflow::save_npy(out, x.to(torch::kFloat32).contiguous());
    }
    std::cout << out << std::endl;
    return 0;
  }
};

// `data`: samples of a registered data set.
struct DataArgs {
  std::string name, params = "{}", out;
  int64_t n = 1000;
  uint64_t seed = 0;
  bool overwrite = false;

  CLI::App* add(CLI::App& app) {
    auto* c = app.add_subcommand("data", "dump samples of a registered data set as .npy");
    c->add_option("--dataset", name, "data set name (see `uotflow info`)")->required();
    c->add_option("--params", params, "data set parameters as a JSON object")
        ->capture_default_str();
    c->add_option("--n", n, "number of samples")
        ->capture_default_str()
        ->check(non_negative_integer(kInt64Max));
    c->add_option("--out", out, "output .npy file")->required()->check(non_empty());
    c->add_flag("--overwrite", overwrite, "replace --out if it exists");
    c->add_option("--seed", seed, "seed")->capture_default_str()->check(non_negative_integer());
    return c;
  }
  int run_command() const {
    uotflow::OutputGuard guard(out, overwrite);
    uotflow::save_npy(
        out, uotflow::draw_dataset(name, uotflow::parse_json(params, "--params"), n, seed));
    std::cout << out << std::endl;
    return 0;
  }
};

// `report`: one HTML page of one or more runs.
struct ReportArgs {
  std::vector<std::string> runs;
  std::string out;
  bool overwrite = false;

  CLI::App* add(CLI::App& app) {
    auto* c = app.add_subcommand(
        "report", "write RUN/report.html: config, final metrics, curves and samples of the runs");
    c->add_option("runs", runs, "run directories (several: their curves overlaid)")
        ->required()
        ->check(non_empty());
    c->add_option("--out", out, "write here instead of FIRST_RUN/report.html")->check(non_empty());
    c->add_flag("--overwrite", overwrite, "replace --out if it exists");
    return c;
  }
  int run_command() const {
    std::cout << uotflow::write_run_report(runs, out, overwrite) << std::endl;
    return 0;
  }
};

// `eval`: metrics between two sample files.
struct EvalArgs {
  uotflow::EvalRequest request;
  std::string metrics = "sw2,energy,mean_error,cov_error", params = "{}";

  CLI::App* add(CLI::App& app) {
    auto* c = app.add_subcommand("eval", "compare two sample sets; prints one JSON object");
    auto& ctx = request.context;
    c->add_option("--samples", request.samples, "samples .npy [N, D]")->required();
    c->add_option("--reference", request.reference, "reference .npy [M, D]")->required();
    c->add_option("--metrics", metrics, "comma-separated metric names (`uotflow info`)")
        ->capture_default_str();
    c->add_option("--seed", ctx.seed, "seed of random directions and subsets")
        ->capture_default_str()
        ->check(non_negative_integer());
    c->add_option("--projections", ctx.n_projections, "L for sliced metrics")
        ->capture_default_str()
        ->check(non_negative_integer(kInt64Max));
    c->add_option("--epsilon", ctx.epsilon, "entropic regularisation of sinkhorn")
        ->capture_default_str()
        ->check(finite_number());
    c->add_option("--bandwidths", ctx.bandwidths,
                  "MMD kernel bandwidths (default: median distance x 1/2, 1, 2)")
        ->delimiter(',')
        ->check(finite_number());
    c->add_option("--centres", request.centres, "mixture centres .npy [K, D] (modes, hq_fraction)");
    c->add_option("--mode-std", ctx.mode_std, "mixture component std (modes, hq_fraction)")
        ->check(finite_number());
    c->add_option("--data", request.data_name, "take centres and mode std from this data set");
    c->add_option("--params", params, "parameters of --data as a JSON object")
        ->capture_default_str();
    c->add_option("--outliers", request.outliers, "outlier locations .npy [K, D] (outlier_mass)");
    c->add_option("--radius", ctx.outlier_radius, "radius around each outlier (outlier_mass)")
        ->check(finite_number());
    c->add_option("--device", request.device, "cpu, cuda or cuda:N")->capture_default_str();
    return c;
  }
  int run_command() {
    request.metrics = uotflow::split_names(metrics);
    request.data_params = uotflow::parse_json(params, "--params");
    std::cout << uotflow::evaluate_sample_files(request).dump() << std::endl;
    return 0;
  }
};

// `fid-ref`: reference feature statistics of an image data set.
struct FidRefArgs {
  uotflow::FidReferenceRequest request;
  std::string params = "{}";
  int64_t threads = 1;
  bool overwrite = false;

  CLI::App* add(CLI::App& app) {
    auto* c = app.add_subcommand(
        "fid-ref", "feature statistics (mu, sigma) of an image data set, as .npz, for FID");
    auto& r = request;
    c->add_option("--data", r.data_name, "image data set name (see `uotflow info`)")->required();
    c->add_option("--params", params, "data set parameters as a JSON object")
        ->capture_default_str();
    c->add_option("--out", r.out, "output .npz (keys mu, sigma, n, extractor_sha256)")->required();
    c->add_option("--extractor", r.extractor,
                  "TorchScript module (.pt) or uotflow classifier (.safetensors); 'classifier' "
                  "trains the built-in one and writes it beside --out")
        ->capture_default_str();
    c->add_option("--n", r.n, "images used (0 = all; else a random subset)")
        ->capture_default_str()
        ->check(non_negative_integer(kInt64Max));
    c->add_option("--seed", r.seed, "seed of the subset and the classifier")
        ->capture_default_str()
        ->check(non_negative_integer());
    c->add_option("--classifier-steps", r.classifier_steps,
                  "training steps of the built-in classifier")
        ->capture_default_str()
        ->check(non_negative_integer(kInt64Max));
    c->add_option("--input-range", r.input_range,
                  "TorchScript input scaling: signed [-1,1], unit [0,1] or byte [0,255]")
        ->capture_default_str();
    c->add_option("--input-channels", r.input_channels,
                  "TorchScript input channels: 0 as is, 3 repeats grey images")
        ->capture_default_str();
    c->add_option("--device", r.device, "cpu, cuda or cuda:N")->capture_default_str();
    c->add_option("--threads", threads, "intra-op CPU threads")->capture_default_str();
    c->add_flag("--overwrite", overwrite, "replace --out (and its classifier) if they exist");
    return c;
  }
  int run_command() {
    uotflow::OutputGuard guard(request.out, overwrite);  // before any work
    std::optional<uotflow::OutputGuard> classifier;
    if (request.extractor == "classifier") {
      classifier.emplace(
          std::filesystem::path(request.out).replace_extension(".classifier.safetensors").string(),
          overwrite);
    }
    torch::set_num_threads(uotflow::checked_threads(threads));
    request.data_params = uotflow::parse_json(params, "--params");
    std::cout << uotflow::make_fid_reference(request, &std::cerr).dump() << std::endl;
    return 0;
  }
};

// The library's messages name its options as the API spells them; the command line's users get the
// flags that set them.
std::string in_cli_terms(std::string message) {
  static const std::vector<std::pair<std::string, std::string>> kFlags = {
      {"resume_from_last_good", "--resume-from-last-good"},
      {"(centres and mode_std, or a data set with known modes)",
       "(--centres FILE --mode-std S, or --data NAME of a data set with known modes)"},
      {"(outliers and outlier_radius)", "(--outliers FILE --radius R)"},
      {"sample: n ", "--n "}};
  for (const auto& [api, flag] : kFlags) {
    for (auto at = message.find(api); at != std::string::npos; at = message.find(api, at)) {
      message.replace(at, api.size(), flag);
      at += flag.size();
    }
  }
  return message;
}

// LibTorch's allocator failure ("[enforce fail at alloc_cpu.cpp:75] ... you tried to allocate N
// bytes. Error code 12") as one line that says what failed and what to change; "" for other errors.
std::string out_of_memory_message(const std::string& what) {
  const auto at = what.find("you tried to allocate ");
  if (what.find("can't allocate memory") == std::string::npos || at == std::string::npos) {
    return "";
  }
  const double bytes = std::strtod(what.c_str() + at + 22, nullptr);
  const auto memory = uotflow::available_memory();
  std::ostringstream msg;
  msg << std::setprecision(3) << "out of memory: an allocation of " << bytes / (1 << 30)
      << " GiB failed (" << memory.bytes / (1 << 30) << " GiB " << memory.source
      << "); lower the sizes of the run (batch_size, width, eval.n, --n)";
  return msg.str();
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);
  keep_freed_memory();
  CLI::App app{"uotflow: generative modeling and Wasserstein gradient flows with unbalanced OT"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(UOTFLOW_VERSION));
  TrainArgs train_args, flow_args;
  flow_args.request.default_method = "swjko";
  auto* train =
      add_train_command(app, "train", "train a model or run a flow (writes a run directory)",
                        "total training steps (with --resume: continue to N)", train_args);
  auto* flow = add_train_command(
      app, "flow", "train with method swjko by default: a sliced-Wasserstein gradient flow",
      "JKO steps of the method (swjko.n_phases, sjko.n_phases, ...; with --resume: continue "
      "to N)",
      flow_args);
  SampleArgs sample_args;
  DataArgs data_args;
  EvalArgs eval_args;
  ReportArgs report_args;
  FidRefArgs fid_args;
  auto* sample = sample_args.add(app);
  auto* data = data_args.add(app);
  auto* eval = eval_args.add(app);
  auto* report = report_args.add(app);
  auto* fid_ref = fid_args.add(app);
  app.add_subcommand("info", "list every registry (methods, phi, costs, data sets, nets, ...)");
  // A command line that does not parse is one line, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "uotflow: error: " + std::string(e.what()) + " (--help lists the options)\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    torch::set_num_threads(1);
    if (*train)
      return run_train(train_args, "train.steps", argc, argv);
    if (*flow)
      return run_train(flow_args, uotflow::kJkoStepsFlag, argc, argv);
    if (*sample)
      return sample_args.run_command();
    if (*data)
      return data_args.run_command();
    if (*eval)
      return eval_args.run_command();
    if (*report)
      return report_args.run_command();
    if (*fid_ref)
      return fid_args.run_command();
    return print_info();
  } catch (const uotflow::ConfigError& e) {
    std::cerr << "uotflow: error: " << in_cli_terms(e.what()) << std::endl;
    return 2;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    const auto memory = out_of_memory_message(what);
    std::cerr << "uotflow: error: " << (memory.empty() ? what.substr(0, what.find('\n')) : memory)
              << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "uotflow: error: out of memory (an allocation failed); lower the sizes of the run "
                 "(batch_size, width, eval.n, --n)"
              << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "uotflow: error: " << in_cli_terms(e.what()) << std::endl;
    return 1;
  }
}
