// Quality tests of UOTM training (CI-sized): 8 Gaussians against the data noise floor, and the
// paper's 1-D outlier-robustness claim, UOTM against OTM at equal budget.
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

// The paper's robustness claim on its 1-D experiment (99% N(1, 0.1^2) + 1% N(-1, 0.1^2), source
// N(0, 1), the reference's cost 0.05 and source-side gradient penalty 0.01), UOTM (kl/kl) against
// OTM (both marginals hard) at identical settings, one seed per test: UOTM puts less than a quarter
// of the data's outlier mass below 0, OTM at least half of it, and both fit the main mode. Before
// the source-side penalty the balanced potential grew without bound (losses 1e11 to 1e14) and OTM's
// outlier mass depended on the seed (0 / 0.0103 / 0.0812); docs/methods/uotm.md. 2000 of the
// configs' 4000 steps (seeds 0-2 gave OTM 0.0081 / 0.0094 / 0.0088, UOTM 0 / 0 / 0, inlier means
// 0.989-0.998, stds 0.105-0.118): two runs of about 75 s each on one core per seed.
class OutlierRobustness : public ::testing::TestWithParam<int> {};

TEST_P(OutlierRobustness, UotmDropsTheOutliersOtmKeepsThemBothFitTheInliers) {
  torch::set_num_threads(1);
  const int seed = GetParam();
  const double data_outlier_mass = 0.01;
  for (const std::string model : {"uotm", "otm"}) {
    SCOPED_TRACE(model + " seed " + std::to_string(seed));
    auto config = toy_config(
        model + "_outlier1d.json",
        {"seed=" + std::to_string(seed), "train.steps=2000", "eval.n=0", "train.snapshot_every=0"});
    const auto run = train_in_temp(config, model + "-outliers-" + std::to_string(seed));
    auto x = sample_run(run, 100000, 7, true).flatten().to(torch::kFloat64);
    const double outlier_mass = (x < 0).to(torch::kFloat64).mean().item<double>();
    auto inliers = x.index({x > 0});
    const double mean = inliers.mean().item<double>();
    const double std = inliers.std().item<double>();
    RecordProperty(model + "_outlier_mass", std::to_string(outlier_mass));
    RecordProperty(model + "_inlier_mean", std::to_string(mean));
    RecordProperty(model + "_inlier_std", std::to_string(std));
    if (model == "uotm") {
      EXPECT_LT(outlier_mass, 0.25 * data_outlier_mass);
    } else {
      EXPECT_GE(outlier_mass, 0.5 * data_outlier_mass);
    }
    EXPECT_NEAR(mean, 1.0, 0.03);  // the main mode N(1, 0.1^2)
    EXPECT_NEAR(std, 0.1, 0.025);
  }
}

INSTANTIATE_TEST_SUITE_P(UotmQuality, OutlierRobustness, ::testing::Values(0, 1, 2),
                         [](const auto& info) { return "Seed" + std::to_string(info.param); });
