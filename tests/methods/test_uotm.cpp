// Quality tests of UOTM training (CI-sized): 8 Gaussians against the data noise floor, and 1-D
// outliers far from the source, which UOTM drops as the optimum of its problem does.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/ot/sliced.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using namespace uotflow;

namespace {

Json toy_config(const std::string& name, const std::vector<std::string>& sets) {
  auto file = read_json_file(std::string(UOTFLOW_SOURCE_DIR) + "/configs/toy/" + name);
  return resolve_config(file, sets, {});
}

std::string train_in_temp(const Json& config, const std::string& tag) {
  TrainOptions options;
  options.out_root = (fs::path(::testing::TempDir()) / ("uotflow-quality-" + tag)).string();
  fs::remove_all(options.out_root);
  return train(config, options).run_dir;
}

}  // namespace

namespace {

// Acceptance: SW2 against 10k fresh data within a small factor of the data-vs-data noise floor, all
// 8 modes covered, within about 3 minutes of one core (3000 steps of the demo config: about 75 s).
void check_eight_gaussians(bool fused) {
  torch::set_num_threads(1);
  auto config = toy_config("uotm_8gaussians.json",
                           {"seed=11", "train.steps=3000", "eval.n=0", "train.snapshot_every=0",
                            std::string("train.fused=") + (fused ? "true" : "false")});
  const auto run = train_in_temp(config, fused ? "8g-fused" : "8g");
  auto samples = sample_run(run, 10000, 1, true).to(torch::kFloat64);
  auto data = make_dataset(at_path(config, "data"));
  auto g1 = make_stream(101, "reference");
  auto g2 = make_stream(102, "reference");
  auto reference = data->sample(10000, g1).to(torch::kFloat64);
  auto fresh = data->sample(10000, g2).to(torch::kFloat64);
  const double sw2 = sliced_wasserstein(samples, reference, 1000, 5).item<double>();
  const double floor = sliced_wasserstein(fresh, reference, 1000, 5).item<double>();
  ::testing::Test::RecordProperty("sw2", std::to_string(sw2));
  ::testing::Test::RecordProperty("floor", std::to_string(floor));
  EXPECT_LT(sw2, 3.0 * floor) << "sw2 " << sw2 << " floor " << floor;
  auto modes = mode_statistics(samples, data->centres(), data->mode_std());
  EXPECT_EQ(modes.covered, 8);
  EXPECT_GT(modes.hq_fraction, 0.9);
}

}  // namespace

TEST(UotmQuality, EightGaussiansReachesTheNoiseFloorAndCoversAllModes) {
  check_eight_gaussians(/*fused=*/false);
}

// The same with the explicit R1 pass and the one-pass Adam (train.fused).
TEST(UotmQuality, EightGaussiansWithTheFusedPathsReachesTheNoiseFloorToo) {
  check_eight_gaussians(/*fused=*/true);
}

// Outliers far from the source (configs/toy/uotm_far_outlier1d.json: 99% N(1, 0.1^2) + 1% N(-3,
// 0.1^2), source N(1, 0.5^2), cost 0.5 |x - y|^2, kl/kl), where the exact semi-dual optimum drops
// them (0.0016 of the source goes there; tests/ot/test_semidual_optimum.cpp): over 3 seeds, UOTM
// puts less than a quarter of the data's outlier mass below -1 and fits the main mode.
//
// Not tested here, because the math says otherwise: the paper's own 1-D setting (source N(0, 1),
// outliers at -1, cost 0.05). Its optimum sends 0.0215 of the source to the outliers, more than the
// data's 0.01, and a trained UOTM there reaches that (seed 0: 0.0227 at step 2500) before it drops
// the mode again (0 from step 3000 on), so "no outliers" at a fixed step depends on where the
// trajectory is, which changes with the BLAS kernels. Nor OTM at the far setting: at cost 0.5 it
// oscillates (seed 0: all mass below 0 at step 500, inlier std 0.23 at 1500). docs/methods/uotm.md.
class FarOutliers : public ::testing::TestWithParam<int> {};

TEST_P(FarOutliers, UotmDropsThemAsItsOptimumDoesAndFitsTheInliers) {
  torch::set_num_threads(1);
  const int seed = GetParam();
  const double data_outlier_mass = 0.01;
  auto config = toy_config(
      "uotm_far_outlier1d.json",
      {"seed=" + std::to_string(seed), "train.steps=1500", "eval.n=0", "train.snapshot_every=0"});
  const auto run = train_in_temp(config, "far-outliers-" + std::to_string(seed));
  auto x = sample_run(run, 100000, 7, true).flatten().to(torch::kFloat64);
  const double outlier_mass = (x < -1).to(torch::kFloat64).mean().item<double>();
  auto inliers = x.index({x > -1});
  const double mean = inliers.mean().item<double>();
  const double std = inliers.std().item<double>();
  RecordProperty("outlier_mass", std::to_string(outlier_mass));
  RecordProperty("inlier_mean", std::to_string(mean));
  RecordProperty("inlier_std", std::to_string(std));
  EXPECT_LT(outlier_mass, 0.25 * data_outlier_mass);
  EXPECT_NEAR(mean, 1.0, 0.03);  // the main mode N(1, 0.1^2)
  EXPECT_NEAR(std, 0.1, 0.025);
}

INSTANTIATE_TEST_SUITE_P(UotmQuality, FarOutliers, ::testing::Values(0, 1, 2),
                         [](const auto& info) { return "Seed" + std::to_string(info.param); });
