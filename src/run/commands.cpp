// The subcommands' work as library calls.
#include "uotflow/run/commands.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>
#include <tuple>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/optim/optimizer.h"
#include "uotflow/ot/cost.h"
#include "uotflow/ot/phi.h"
#include "uotflow/run/report.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

// A 1-D .npy becomes one column.
torch::Tensor load_points_2d(const std::string& path, const torch::Device& device) {
  auto t = load_npy(path);
  return (t.dim() == 1 ? t.unsqueeze(1) : t).to(device);
}

template <typename R>
std::vector<std::pair<std::string, std::string>> describe(const R& registry) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : registry.entries()) {
    std::string text = entry.description;
    // The config keys the entry reads, with their defaults.
    std::string keys;
    for (const auto& [key, value] : entry.defaults.items()) {
      keys += (keys.empty() ? "" : ", ") + key + " " + value.dump();
    }
    out.emplace_back(name, keys.empty() ? text : text + "; keys: " + keys);
  }
  return out;
}

}  // namespace

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
      throw ConfigError("--seeds: bad entry '" + part +
                        "' (expected N or A-B with A <= B, comma-separated)");
    }
  }
  if (seeds.empty()) {
    throw ConfigError("--seeds: no seeds given");
  }
  return seeds;
}

namespace {

// The checks of OutputGuard; returns the run directory `path` lies in ("" for none).
std::string check_output(const std::string& path, bool overwrite) {
  if (path.empty()) {
    throw ConfigError("--out is empty; name the file to write");
  }
  const auto run = enclosing_run_dir(path);
  if (!run.empty()) {
    const auto inside = fs::relative(fs::weakly_canonical(fs::absolute(path)), run);
    const auto first = inside.begin()->string();
    static const std::vector<std::string> kReserved = {
        "config.json", "metrics.jsonl", "eval.jsonl", "log.txt", "target.json", ".lock",
        "final",       "checkpoints",   "phases",     "plots",   "report.html"};
    if (std::find(kReserved.begin(), kReserved.end(), first) != kReserved.end()) {
      throw ConfigError("'" + path + "' belongs to run '" + run +
                        "' and is never overwritten; write to the run's samples/ or elsewhere");
    }
    // samples/ is shared: the run's own snapshots there (what report.html shows) stay as written.
    static const std::regex kSnapshot(R"((step-\d+|phase-\d+|final|phases)\.(npy|png))");
    if (first == "samples" && std::distance(inside.begin(), inside.end()) == 2 &&
        std::regex_match(inside.filename().string(), kSnapshot)) {
      throw ConfigError("'" + path + "' is a snapshot run '" + run +
                        "' wrote itself and is never overwritten; give another name");
    }
  }
  // A device, FIFO or folder is never replaced: a file renamed over /dev/null would take its place.
  const auto status = fs::status(path);
  if (fs::exists(status) && !fs::is_regular_file(status)) {
    throw ConfigError("'" + path +
                      "' is not a regular file (a device, FIFO or folder); write to a regular file "
                      "or a new path");
  }
  if (fs::exists(status) && !overwrite) {
    throw ConfigError("'" + path + "' exists; pass --overwrite to replace it");
  }
  return run;
}

}  // namespace

OutputGuard::OutputGuard(const std::string& path, bool overwrite) {
  const auto run = check_output(path, overwrite);
  if (!run.empty()) {
    lock_ = std::make_unique<RunLock>(run);
  }
}

std::string write_run_report(const std::vector<std::string>& run_dirs, const std::string& out,
                             bool overwrite) {
  if (run_dirs.empty()) {
    throw ConfigError("report: name at least one run directory");
  }
  for (const auto& dir : run_dirs) {
    read_run_config(dir);  // a ConfigError names a folder that is not a run directory
  }
  if (!out.empty()) {
    OutputGuard guard(out, overwrite);
    write_report(run_dirs, out);
    return out;
  }
  const auto path = (fs::path(run_dirs[0]) / "report.html").string();
  RunLock lock(run_dirs[0]);
  write_report(run_dirs, path);
  return path;
}

std::vector<std::string> write_seed_pngs(const std::string& run_dir,
                                         const std::vector<uint64_t>& seeds, bool ema,
                                         int64_t phase, const std::string& out_dir,
                                         bool overwrite) {
  if (out_dir.empty()) {
    throw ConfigError("--out is empty; name the folder of the PNGs");
  }
  std::string run;
  for (const auto seed : seeds) {
    run = check_output((fs::path(out_dir) / ("seed-" + zero_pad(seed, 6) + ".png")).string(),
                       overwrite);
  }
  std::unique_ptr<RunLock> lock = run.empty() ? nullptr : std::make_unique<RunLock>(run);
  auto result = sample_run_seeds(run_dir, seeds, ema, phase);
  const auto& shape = result.image_shape;
  if (shape.empty()) {
    throw ConfigError(
        "--seeds writes one PNG per seed and needs a run on image data; "
        "use --n and an .npy --out for points");
  }
  fs::create_directories(out_dir);
  auto images = result.samples.view({result.samples.size(0), shape[0], shape[1], shape[2]});
  std::vector<std::string> paths;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const auto path = fs::path(out_dir) / ("seed-" + zero_pad(seeds[i], 6) + ".png");
    save_image_png(path.string(), image_grid(images.slice(0, i, i + 1), 1, 0));
    paths.push_back(path.string());
  }
  return paths;
}

std::vector<std::string> write_mapped_inputs(const std::string& run_dir, const std::string& input,
                                             uint64_t seed, bool ema, int64_t phase,
                                             const std::string& out, bool overwrite) {
  if (out.empty()) {
    throw ConfigError("the output path is empty; name an .npy file or, for an image run, a folder");
  }
  const auto x = load_npy(input);
  const auto meta = read_run_meta(run_dir);
  const bool pngs = fs::path(out).extension() != ".npy";
  std::vector<std::string> paths;
  if (!pngs) {
    paths.push_back(out);
  } else {
    if (!meta.contains("problem") || meta["problem"]["image_shape"].empty()) {
      throw ConfigError("output '" + out +
                        "' is not an .npy file; a folder of PNGs needs a run on image data");
    }
    for (int64_t i = 0; i < (x.dim() > 0 ? x.size(0) : 0); ++i) {
      paths.push_back((fs::path(out) / (zero_pad(i, 6) + ".png")).string());
    }
  }
  std::string run;
  for (const auto& path : paths) {
    run = check_output(path, overwrite);
  }
  std::unique_ptr<RunLock> lock = run.empty() ? nullptr : std::make_unique<RunLock>(run);
  const auto y = map_run(run_dir, x, seed, ema, phase);
  if (!pngs) {
    save_npy(out, y.contiguous());
    return paths;
  }
  const auto shape = meta["problem"]["image_shape"].get<std::vector<int64_t>>();
  fs::create_directories(out);
  const auto images = y.view({y.size(0), shape[0], shape[1], shape[2]});
  for (size_t i = 0; i < paths.size(); ++i) {
    save_image_png(paths[i], image_grid(images.slice(0, i, i + 1), 1, 0));
  }
  return paths;
}

torch::Tensor draw_dataset(const std::string& name, const Json& params, int64_t n, uint64_t seed) {
  if (n <= 0) {
    throw ConfigError("--n must be > 0");
  }
  auto set = make_dataset(name, params);
  Problem space;  // the draws as a problem's samples: the same bound on their memory
  space.dim = set->dim();
  space.check_sample_count(n, "--n");
  auto gen = make_stream(seed, "data");
  return set->sample(n, gen);
}

nlohmann::ordered_json evaluate_sample_files(const EvalRequest& r) {
  if (r.metrics.empty()) {
    throw ConfigError("--metrics: no metric names given");
  }
  for (const auto& name : r.metrics) {
    metric_registry().at(name);  // unknown names fail before any work
  }
  if (r.context.n_projections <= 0) {
    throw ConfigError("--projections must be > 0");
  }
  if (!(r.context.epsilon > 0 && std::isfinite(r.context.epsilon))) {
    std::ostringstream got;
    got << r.context.epsilon;
    throw ConfigError("--epsilon must be a finite number > 0, got " + got.str());
  }
  const auto device = parse_device(r.device);
  MetricContext context = r.context;
  if (!r.data_name.empty()) {
    auto set = make_dataset(r.data_name, r.data_params);
    if (!set->centres().defined()) {
      throw ConfigError("--data: data set '" + r.data_name + "' has no known modes");
    }
    context.centres = set->centres();
    if (context.mode_std <= 0) {
      context.mode_std = set->mode_std();
    }
  }
  if (!r.centres.empty()) {
    context.centres = load_points_2d(r.centres, torch::kCPU);
  }
  if (!r.outliers.empty()) {
    context.outliers = load_points_2d(r.outliers, torch::kCPU);
  }
  auto x = load_points_2d(r.samples, device);
  auto y = load_points_2d(r.reference, device);
  for (const auto& [flag, path, t] :
       {std::tuple{"--samples", r.samples, x}, std::tuple{"--reference", r.reference, y}}) {
    if (t.dim() != 2 || t.size(0) == 0) {
      throw ConfigError(std::string(flag) + " '" + path +
                        "' must hold points [N, D] with N >= 1, " + "got shape " +
                        shape_text(t.sizes()));
    }
  }
  if (x.size(1) != y.size(1)) {
    throw ConfigError("--samples '" + r.samples + "' holds points of dimension " +
                      std::to_string(x.size(1)) + " but --reference '" + r.reference + "' of " +
                      std::to_string(y.size(1)));
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& name : r.metrics) {
    check_metric(name, x.size(0), y.size(0), x.size(1), context);  // all before any work
  }
  for (const auto& name : r.metrics) {
    const double value = compute_metric(name, x, y, context);
    if (!std::isfinite(value)) {
      // compute_metric checked the inputs are finite: the settings are out of numeric range.
      std::ostringstream msg;
      msg << "metric '" << name << "' is not finite (" << value << ") for these finite inputs";
      if (name == "sinkhorn") {
        msg << " at --epsilon " << context.epsilon << ", too small for float64; use a larger one";
      }
      throw ConfigError(msg.str());
    }
    out[name] = value;
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
registry_listing() {
  return {{"methods", describe(method_registry())},
          {"phi (Psi* conjugates)", describe(phi_registry())},
          {"costs", describe(cost_registry())},
          {"data sets", describe(dataset_registry())},
          {"generator networks", describe(generator_registry())},
          {"potential networks", describe(potential_registry())},
          {"optimizers", describe(optimizer_registry())},
          {"metrics", describe(metric_registry())},
          {"functionals (gradient flows)", describe(functional_registry())},
          {"parametrizations (sliced-Wasserstein flows)", describe(parametrization_registry())}};
}

}  // namespace uotflow
