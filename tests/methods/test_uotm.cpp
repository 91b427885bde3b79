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

// Acceptance: SW2 against 10k fresh data within a small factor of the data-vs-data noise floor, all
// 8 modes covered, within about 3 minutes of one core (3000 steps of the demo config: about 75 s).
TEST(UotmQuality, EightGaussiansReachesTheNoiseFloorAndCoversAllModes) {
  torch::set_num_threads(1);
  auto config = toy_config("uotm_8gaussians.json",
                           {"seed=11", "train.steps=3000", "eval.n=0", "train.snapshot_every=0"});
  const auto run = train_in_temp(config, "8g");
  auto samples = sample_run(run, 10000, 1, true).to(torch::kFloat64);
  auto data = make_dataset(at_path(config, "data"));
  auto g1 = make_stream(101, "reference");
  auto g2 = make_stream(102, "reference");
  auto reference = data->sample(10000, g1).to(torch::kFloat64);
  auto fresh = data->sample(10000, g2).to(torch::kFloat64);
  const double sw2 = sliced_wasserstein(samples, reference, 1000, 5).item<double>();
  const double floor = sliced_wasserstein(fresh, reference, 1000, 5).item<double>();
  RecordProperty("sw2", std::to_string(sw2));
  RecordProperty("floor", std::to_string(floor));
  EXPECT_LT(sw2, 3.0 * floor) << "sw2 " << sw2 << " floor " << floor;
  auto modes = mode_statistics(samples, data->centres(), data->mode_std());
  EXPECT_EQ(modes.covered, 8);
  EXPECT_GT(modes.hq_fraction, 0.9);
}

// The UOTM side of the robustness claim, in `make test` (one run, about 90 s): on 99% N(1, 0.1^2) +
// 1% N(-1, 0.1^2) UOTM (kl/kl) fits the inliers and drops the outliers. Six runs (seeds 1-3, 1% and
// 5% outliers) gave outlier mass 0 to 3e-5, inlier mean 0.979-0.982 (the KL relaxation pulls it a
// little towards the source) and std 0.108-0.109.
TEST(UotmQuality, OutlierRobustUotmFitsTheInliersAndDropsTheOutliers) {
  torch::set_num_threads(1);
  auto config = toy_config("uotm_outlier1d.json", {"seed=2", "eval.n=0", "train.snapshot_every=0"});
  const auto run = train_in_temp(config, "uotm-outliers");
  auto x = sample_run(run, 100000, 7, true).flatten().to(torch::kFloat64);
  const double outlier_mass = (x < 0).to(torch::kFloat64).mean().item<double>();
  auto inliers = x.index({x > 0});
  const double mean = inliers.mean().item<double>();
  const double std = inliers.std().item<double>();
  RecordProperty("outlier_mass", std::to_string(outlier_mass));
  RecordProperty("inlier_mean", std::to_string(mean));
  RecordProperty("inlier_std", std::to_string(std));
  EXPECT_LT(outlier_mass, 0.0025);
  EXPECT_NEAR(mean, 0.985, 0.035);
  EXPECT_NEAR(std, 0.11, 0.02);
}

// Acceptance (the paper's robustness claim): on 99% N(1, 0.1^2) + 1% N(-1, 0.1^2), UOTM (kl/kl)
// puts less than a quarter of the data's outlier mass (x < 0) into its samples; OTM, same budget
// and settings, at least half of it. Two runs of about 2 minutes each on one core. Slow-labelled:
// the balanced potential is unbounded and the OTM side depends on the seed (0.0103 / 0.0812 / 0 for
// seeds 1 / 2 / 3; docs/methods/uotm.md), so it runs with `make test-slow`.
TEST(UotmQuality, OutlierRobustnessUotmAgainstOtm_Slow) {
  torch::set_num_threads(1);
  const double data_outlier_mass = 0.01;
  auto outlier_mass = [](const std::string& config_name) {
    auto config = toy_config(config_name, {"seed=1", "eval.n=0", "train.snapshot_every=0"});
    const auto run = train_in_temp(config, config_name);
    auto samples = sample_run(run, 100000, 7, true);
    return (samples < 0).to(torch::kFloat64).mean().item<double>();
  };
  const double uotm = outlier_mass("uotm_outlier1d.json");
  const double otm = outlier_mass("otm_outlier1d.json");
  RecordProperty("uotm_outlier_mass", std::to_string(uotm));
  RecordProperty("otm_outlier_mass", std::to_string(otm));
  EXPECT_LT(uotm, 0.25 * data_outlier_mass) << "UOTM outlier mass " << uotm;
  EXPECT_GE(otm, 0.5 * data_outlier_mass) << "OTM outlier mass " << otm;
}
