// Samples of finished runs: the method rebuilt from the run's config.json with the final/ (or a
// phase's) weights loaded, on the CPU; the data set is not rebuilt when config.json records the
// shape of its samples.
#include <torch/torch.h>

#include <filesystem>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

struct LoadedRun {
  Problem problem;
  std::unique_ptr<Method> method;
};

// The weights folder of a run: final/, or phases/phase-KKKK/ with phase >= 0.
fs::path weights_dir(const std::string& run_dir, const Json& config, const Method& method,
                     int64_t phase) {
  if (phase < 0) {
    const auto dir = fs::path(run_dir) / "final";
    if (!fs::is_directory(dir)) {
      throw ConfigError("run '" + run_dir + "' has no final/ weights yet");
    }
    return dir;
  }
  const auto phases = method.phases();
  if (phases.empty()) {
    throw ConfigError("run '" + run_dir + "' (method '" + get<std::string>(config, "method") +
                      "') has no phases; sample it without a phase");
  }
  if (phase >= static_cast<int64_t>(phases.size())) {
    throw ConfigError("phase " + std::to_string(phase) + " is out of range: the run has " +
                      std::to_string(phases.size()) + " phases (0.." +
                      std::to_string(phases.size() - 1) + ")");
  }
  const auto dir = fs::path(run_dir) / "phases" / ("phase-" + zero_pad(phase, 4));
  if (!fs::is_directory(dir)) {
    throw ConfigError("run '" + run_dir + "' has no weights for phase " + std::to_string(phase) +
                      " (no " + dir.string() +
                      "; unfinished, or skipped by train.phase_weights_every)");
  }
  return dir;
}

// with_source false: the run's source is not rebuilt (given inputs are mapped instead).
LoadedRun load_trained_run(const std::string& run_dir, int64_t phase, bool with_source = true) {
  Json config = load_run_config(run_dir);
  config["device"] = "cpu";
  const Json meta = read_run_meta(run_dir);
  LoadedRun run;
  if (meta.contains("problem")) {
    ProblemShape shape{meta["problem"]["dim"].get<int64_t>(),
                       meta["problem"]["image_shape"].get<std::vector<int64_t>>(), with_source};
    run.problem = make_problem(config, nullptr, &shape);
  } else {
    run.problem = make_problem(config);  // runs of earlier versions record no shape
  }
  {
    GlobalSeedScope init(derive_seed(get<uint64_t>(config, "seed"), "init"));
    run.method = method_registry()
                     .create(get<std::string>(config, "method"))
                     .create(MethodContext{config, run.problem, torch::Device(torch::kCPU)});
  }
  const auto dir = weights_dir(run_dir, config, *run.method, phase);
  WeightGroups weights;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") {
      weights[e.path().stem().string()] = load_safetensors(e.path().string());
    }
  }
  try {
    run.method->import_weights(weights);
  } catch (const ConfigError& e) {
    throw ConfigError("run '" + run_dir + "' " + dir.filename().string() + "/: " + e.what());
  }
  return run;
}

}  // namespace

torch::Tensor sample_run(const std::string& run_dir, int64_t n, uint64_t seed, bool ema,
                         int64_t phase) {
  if (n <= 0) {
    throw ConfigError("sample: n must be > 0, got " + std::to_string(n));
  }
  auto run = load_trained_run(run_dir, phase);
  run.problem.check_sample_count(n, "sample: n");
  auto gen = make_stream(seed, "sample");
  return run.problem.to_data_space(run.method->sample(n, gen, ema).cpu());
}

torch::Tensor map_run(const std::string& run_dir, const torch::Tensor& x, uint64_t seed, bool ema,
                      int64_t phase) {
  auto run = load_trained_run(run_dir, phase, /*with_source=*/false);
  auto points = run.problem.inputs(x);
  if (!run.method->maps_inputs()) {
    throw ConfigError("run '" + run_dir + "' (method '" +
                      get<std::string>(load_run_config(run_dir), "method") +
                      "') does not map given inputs: its samples are not images of source points");
  }
  auto gen = make_stream(seed, "sample");
  return run.problem.to_data_space(run.method->transport(points, gen, ema).cpu());
}

SeedSamples sample_run_seeds(const std::string& run_dir, const std::vector<uint64_t>& seeds,
                             bool ema, int64_t phase) {
  if (seeds.empty()) {
    throw ConfigError("sample: no seeds given");
  }
  auto run = load_trained_run(run_dir, phase);
  std::vector<torch::Tensor> rows;
  for (const auto seed : seeds) {
    // One draw per seed, so a seed's image does not depend on the other seeds asked for.
    auto gen = make_stream(seed, "sample");
    rows.push_back(run.problem.to_data_space(run.method->sample(1, gen, ema).cpu()));
  }
  return {torch::cat(rows), run.problem.data_space().image_shape};
}

}  // namespace uotflow
