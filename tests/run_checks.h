// Helpers shared by the tests that train runs: a fresh folder per test, final weights compared bit
// for bit, shipped flow configs run to their end, JSON Lines read back.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/io/files.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/run/config.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace uotflow::testing {

/// TempDir()/uotflow-<suite>.<test>, emptied and created: the suite is part of the name because
/// `make test` runs tests in parallel and two suites may have a test of the same name.
inline std::filesystem::path fresh_test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   ("uotflow-" + std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// Expects two safetensors files to hold the same tensors, bit for bit.
inline void expect_same_weights(const std::string& a, const std::string& b) {
  auto wa = load_safetensors(a);
  auto wb = load_safetensors(b);
  ASSERT_EQ(wa.size(), wb.size()) << a;
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << b << " lacks " << name;
    EXPECT_TRUE(torch::equal(t, wb.at(name))) << a << ": " << name;
  }
}

/// Expects the final/ weights of two runs (generator, EMA generator, potential) to be equal.
inline void expect_same_final_weights(const std::string& run_a, const std::string& run_b) {
  for (const auto& group : {"generator", "generator_ema", "potential"}) {
    expect_same_weights(run_a + "/final/" + group + ".safetensors",
                        run_b + "/final/" + group + ".safetensors");
  }
}

/// A tiny but complete UOTM config (MLP nets, 8 Gaussians, seed 123) for fast trainer tests:
/// logs every 5 steps, evaluates, snapshots and checkpoints every 10.
inline Json tiny_config(int64_t steps) {
  Json file = {{"data", {{"name", "8gaussians"}}},
               {"generator", {{"net", "mlp"}, {"width", 32}, {"depth", 2}, {"nz", 2}}},
               {"potential", {{"net", "mlp"}, {"width", 32}, {"depth", 2}}},
               {"loss", {{"r1_gamma", 0.2}, {"cost_scale", 0.1}}},
               {"train",
                {{"steps", steps},
                 {"batch_size", 64},
                 {"d_steps", 2},
                 {"lr_schedule", "cosine"},
                 {"lr_horizon", 40},
                 {"log_every", 5},
                 {"eval_every", 10},
                 {"snapshot_every", 10},
                 {"checkpoint_every", 10}}},
               {"eval", {{"n", 200}, {"n_projections", 50}}},
               {"seed", 123}};
  return resolve_config(file, {}, {});
}

/// A tiny S-JKO config (MLP nets, 8 Gaussians, seed 321): two phases of 20 + 15 iterations.
inline Json tiny_sjko(const std::vector<std::string>& sets = {}) {
  Json file = {{"method", "sjko"},
               {"data", {{"name", "8gaussians"}}},
               {"generator", {{"net", "mlp"}, {"width", 32}, {"depth", 2}, {"nz", 2}}},
               {"potential", {{"net", "mlp"}, {"width", 32}, {"depth", 2}}},
               {"loss", {{"phi2", "kl"}, {"r1_gamma", 0.2}}},
               {"sjko",
                {{"n_phases", 2},
                 {"init_jko_step_size", 0.5},
                 {"jko_step_size", 0.25},
                 {"init_iterations", 20},
                 {"iterations", 15}}},
               {"train",
                {{"batch_size", 64},
                 {"d_steps", 2},
                 {"lr_schedule", "cosine"},
                 {"log_every", 5},
                 {"eval_every", 10},
                 {"snapshot_every", 0},
                 {"checkpoint_every", 10}}},
               {"eval", {{"n", 200}, {"n_projections", 50}}},
               {"seed", 321}};
  return resolve_config(file, sets, {});
}

/// configs/flow/NAME resolved with --set style overrides.
inline Json flow_config(const std::string& name, const std::vector<std::string>& sets = {}) {
  auto file = read_json_file(std::string(UOTFLOW_SOURCE_DIR) + "/configs/flow/" + name);
  return resolve_config(file, sets, {});
}

/// Trains `config` to its end in a fresh folder of this test; returns the run directory.
inline std::string run_in_fresh_dir(const Json& config) {
  TrainOptions options;
  options.out_root = fresh_test_dir().string();
  return train(config, options).run_dir;
}

/// The rows of a JSON Lines file.
inline std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> rows;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      rows.push_back(Json::parse(line));
    }
  }
  return rows;
}

}  // namespace uotflow::testing
