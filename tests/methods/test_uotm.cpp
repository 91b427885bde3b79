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
// 0.1^2), source N(1, 0.5^2), cost 0.5 |x - y|^2). There the exact semi-dual optimum of UOTM
// (kl/kl) drops them (0.0016 of the source goes there) and balanced OT keeps them (0.0098;
// tests/ot/test_semidual_optimum.cpp). Over 3 seeds, UOTM puts less than a quarter of the data's
// outlier mass below -1 and fits the main mode: at least 97% of the samples in (0.5, 1.5) (the
// data: 99%), with the mean and std of N(1, 0.1^2) there.
//
// OTM at the same settings (the _Slow test below, both with R1 0.01 and 2500 steps) moves at least
// half of them below -1, about half of that on a bridge between the modes, which its continuous
// generator cannot avoid (docs/methods/uotm.md).
// Not tested here, because the math says otherwise: the paper's own 1-D setting (source N(0, 1),
// outliers at -1, cost 0.05). Its optimum sends 0.0215 of the source to the outliers, more than the
// data's 0.01, and a trained UOTM there reaches that (seed 0: 0.0227 at step 2500) before it drops
// the mode again (0 from step 3000 on), so "no outliers" at a fixed step depends on where the
// trajectory is, which changes with the BLAS kernels.
class FarOutliers : public ::testing::TestWithParam<int> {};

namespace {

struct OutlierFit {
  double outlier_mass, main_fraction, main_mean, main_std;
};

OutlierFit far_outlier_fit(int seed, bool balanced, double r1_gamma, int steps) {
  std::vector<std::string> sets = {
      "seed=" + std::to_string(seed), "train.steps=" + std::to_string(steps), "eval.n=0",
      "train.snapshot_every=0", "loss.r1_gamma=" + std::to_string(r1_gamma)};
  if (balanced) {
    sets.insert(sets.end(), {"loss.phi1=linear", "loss.phi2=linear"});
  }
  const std::string who = balanced ? "otm_" : "uotm_";
  const auto tag = "far-" + who + std::to_string(seed) + (r1_gamma > 0 ? "-r1" : "");
  const auto run = train_in_temp(toy_config("uotm_far_outlier1d.json", sets), tag);
  auto x = sample_run(run, 400000, 7, true).flatten().to(torch::kFloat64);
  auto main = x.index({(x > 0.5) & (x < 1.5)});
  OutlierFit fit{(x < -1).to(torch::kFloat64).mean().item<double>(),
                 static_cast<double>(main.numel()) / static_cast<double>(x.numel()),
                 main.mean().item<double>(), main.std().item<double>()};
  ::testing::Test::RecordProperty(who + "outlier_mass", std::to_string(fit.outlier_mass));
  ::testing::Test::RecordProperty(who + "main_fraction", std::to_string(fit.main_fraction));
  ::testing::Test::RecordProperty(who + "main_mean", std::to_string(fit.main_mean));
  ::testing::Test::RecordProperty(who + "main_std", std::to_string(fit.main_std));
  return fit;
}

void expect_main_mode_fitted(const OutlierFit& fit, const char* who) {
  EXPECT_GE(fit.main_fraction, 0.97) << who;
  EXPECT_NEAR(fit.main_mean, 1.0, 0.03) << who;  // the main mode N(1, 0.1^2)
  EXPECT_NEAR(fit.main_std, 0.1, 0.025) << who;
}

constexpr double kDataOutlierMass = 0.01;

}  // namespace

TEST_P(FarOutliers, UotmDropsThemAsItsOptimumDoesAndFitsTheInliers) {
  torch::set_num_threads(1);
  const auto uotm =
      far_outlier_fit(GetParam(), /*balanced=*/false, /*r1_gamma=*/0.0, /*steps=*/1500);
  EXPECT_LT(uotm.outlier_mass, 0.25 * kDataOutlierMass);
  expect_main_mode_fitted(uotm, "UOTM");
}

// The paper's comparison, at identical settings: UOTM and OTM with R1 0.01 on the data, which keeps
// OTM's potential from running away here (without it all of OTM's mass jumps to the outliers by
// step 500), 2500 steps. Both fit the main mode; UOTM moves less than a quarter of the data's
// outlier mass below -1, OTM at least half. OTM's share settles only after step 1500 (seeds 0-2
// there: 0.0044 to 0.0062 with the generic kernels, 0.0048 to 0.0057 with the AVX-512 ones; at
// 2500: 0.0053 to 0.0066 and 0.0056 to 0.0067), and about half of it is on a bridge towards the
// main mode, not on the outlier mode (docs/methods/uotm.md). Slow: 6 runs of 2500 steps.
TEST_P(FarOutliers, WithR1OtmMovesHalfOfThemAndUotmDropsThem_Slow) {
  torch::set_num_threads(1);
  const auto uotm =
      far_outlier_fit(GetParam(), /*balanced=*/false, /*r1_gamma=*/0.01, /*steps=*/2500);
  EXPECT_LT(uotm.outlier_mass, 0.25 * kDataOutlierMass);
  expect_main_mode_fitted(uotm, "UOTM");
  const auto otm =
      far_outlier_fit(GetParam(), /*balanced=*/true, /*r1_gamma=*/0.01, /*steps=*/2500);
  EXPECT_GE(otm.outlier_mass, 0.5 * kDataOutlierMass);
  expect_main_mode_fitted(otm, "OTM");
}

INSTANTIATE_TEST_SUITE_P(UotmQuality, FarOutliers, ::testing::Values(0, 1, 2),
                         [](const auto& info) { return "Seed" + std::to_string(info.param); });
