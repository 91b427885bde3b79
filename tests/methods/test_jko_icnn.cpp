// JKO-ICNN runs: the Fokker-Planck closed form in d = 2 (make test; d = 8 slow), a Bayesian
// posterior with the stochastic log det, exact resume in the middle of a JKO step, sampling a
// finished run, and settings rejected before a run directory exists.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "checks.h"
#include "run_checks.h"
#include "uotflow/io/npy.h"
#include "uotflow/methods/jko.h"
#include "uotflow/run/run.h"
#include "uotflow_build_info.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::flow_config;
using uotflow::testing::fresh_test_dir;
using uotflow::testing::read_jsonl;
using uotflow::testing::run_in_fresh_dir;

namespace {

// metric -> JKO steps done -> value.
std::map<std::string, std::map<int64_t, double>> eval_values(const std::string& run_dir) {
  const auto iterations = get<int64_t>(load_run_config(run_dir), "jko_icnn.iterations");
  std::map<std::string, std::map<int64_t, double>> out;
  for (const auto& row : read_jsonl(run_dir + "/eval.jsonl")) {
    const auto& value = row["value"];
    out[row["metric"].get<std::string>()][row["step"].get<int64_t>() / iterations] =
        value.is_number() ? value.get<double>() : NAN;
  }
  return out;
}

// The flow tracks the closed form: at every JKO step k = 1..K, KL(rho_k | exact at t = k h) by
// the density (change of variables through every map) is below `bound`, as are the Gaussian-fit
// checks (sym_kl by the method, ou_kl by the run); at the end, the exact solution at t = K h fits
// the samples at least 10x better than the solutions at t / 2 and 2 t (the clock is right), and
// the flow moved towards the target.
void expect_tracks_fokker_planck(const std::string& run_dir, int64_t steps, double bound) {
  auto rows = eval_values(run_dir);
  ASSERT_TRUE(rows.count("kl_density")) << run_dir;
  for (int64_t k = 1; k <= steps; ++k) {
    const double kl = rows["kl_density"].at(k);
    EXPECT_TRUE(std::isfinite(kl)) << "step " << k;
    EXPECT_LT(std::abs(kl), bound) << "step " << k;
    EXPECT_LT(rows["sym_kl"].at(k), 4 * bound) << "step " << k;
    EXPECT_LT(rows["ou_kl"].at(k), 2 * bound) << "step " << k;
  }
  const auto config = load_run_config(run_dir);
  const GaussianFlowCheck check(make_problem(config));
  const double t = steps * get<double>(config, "jko_icnn.jko_step_size");
  char last[64];
  std::snprintf(last, sizeof(last), "/samples/phase-%04lld.npy", static_cast<long long>(steps - 1));
  const auto x = load_npy(run_dir + last);
  const double at_t = check.fitted_kl(x, t);
  EXPECT_LT(10 * at_t, check.fitted_kl(x, t / 2)) << at_t;
  EXPECT_LT(10 * at_t, check.fitted_kl(x, 2 * t)) << at_t;
  EXPECT_LT(rows["target_kl"].at(steps), 0.7 * rows["target_kl"].at(0));
}

// Threshold 0.005: the measured KL is 1e-4 to 2e-4 at every step here, and up to 0.0015 with 400
// iterations per step (what Adam's noise at a constant lr of 5e-3 leaves, seed to seed); the
// Monte Carlo error of N = 10,000 draws is ~2e-4. The sharper checks are the clock (the solution
// at t / 2 or 2 t must fit 10x worse) and the target (the flow must move).
TEST(JkoIcnnRun, TracksTheOrnsteinUhlenbeckClosedFormInTwoDimensions) {
  const auto dir = run_in_fresh_dir(flow_config("jko_icnn_ou_d2.json"));
  expect_tracks_fokker_planck(dir, 5, 0.005);
  for (const char* file : {"samples/phase-0004.npy", "samples/phases.png", "plots/kl_density.png",
                           "final/model.safetensors"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + file)) << file;
  }
  // The finished run samples from its final weights, the same for the same seed.
  auto again = sample_run(dir, 100, 3, false);
  EXPECT_EQ(again.sizes(), (std::vector<int64_t>{100, 2}));
  EXPECT_TRUE(torch::equal(again, sample_run(dir, 100, 3, false)));
  EXPECT_TRUE(torch::isfinite(again).all().item<bool>());
}

TEST(JkoIcnnRun, TracksTheOrnsteinUhlenbeckClosedFormInEightDimensions_Slow) {
  const auto dir = run_in_fresh_dir(flow_config(
      "jko_icnn_ou_d2.json", {"functional.params.target.params.dim=8", "jko_icnn.iterations=500"}));
  expect_tracks_fokker_planck(dir, 5, 0.02);
}

// F from the shared functional registry, and the stochastic log det in a run: the posterior of
// Bayesian logistic regression on diabetes (D = 10), 3 JKO steps of 50 iterations. Bound 0.76 is
// the SW-JKO test's and under the reference's 0.773 (measured here: 0.825 at step 3; the prior's
// draws score 0.64).
TEST(JkoIcnnRun, BayesianLogisticRegressionWithTheStochasticLogDet) {
  const auto dir = run_in_fresh_dir(flow_config(
      "jko_icnn_blr_diabetes.json", {"jko_icnn.n_phases=3", "jko_icnn.iterations=50",
                                     "functional.params.target.params.data_dir=" +
                                         std::string(UOTFLOW_SOURCE_DIR) + "/data/tabular"}));
  auto rows = eval_values(dir);
  EXPECT_GE(rows["test_accuracy"].at(3), 0.76);
  EXPECT_GT(rows["test_loglik"].at(3), rows["test_loglik"].at(0) + 0.1);
  EXPECT_LT(rows["functional_kl"].at(3), rows["functional_kl"].at(0));
}

TEST(JkoIcnnRun, ResumeInsideAJkoStepIsBitIdentical) {
  for (const std::string log_det : {"exact", "stochastic"}) {
    auto config = flow_config(
        "jko_icnn_ou_d2.json",
        {"jko_icnn.n_phases=4", "jko_icnn.iterations=5", "jko_icnn.batch_size=64",
         "jko_icnn.log_det=" + log_det, "icnn.width=16", "eval.n=300", "train.checkpoint_every=3"});
    TrainOptions options;
    options.out_root = fresh_test_dir().string() + "/" + log_det;
    const auto whole = train(config, options).run_dir;
    auto half = config;
    half["jko_icnn"]["n_phases"] = 2;
    const auto part = train(half, options).run_dir;
    // Resume from step 9, inside JKO step 2, not from the phase end at step 10.
    fs::remove(part + "/checkpoints/step-00000010.ckpt");
    ASSERT_TRUE(fs::exists(part + "/checkpoints/step-00000009.ckpt"));
    auto rest = load_run_config(part);
    rest["jko_icnn"]["n_phases"] = 4;
    TrainOptions resume = options;
    resume.resume_dir = part;
    EXPECT_EQ(train(rest, resume).step, 4 * 5);
    for (const char* file : {"samples/phase-0003.npy", "samples/phase-0002.npy"}) {
      EXPECT_TRUE(torch::equal(load_npy(whole + "/" + file), load_npy(part + "/" + file)))
          << log_det << " " << file;
    }
    uotflow::testing::expect_same_weights(whole + "/final/model.safetensors",
                                          part + "/final/model.safetensors");
    // Four maps in final/: sampling a finished run pushes through all of them.
    EXPECT_TRUE(torch::equal(sample_run(whole, 50, 1, false), sample_run(part, 50, 1, false)));
  }
}

TEST(JkoIcnnRun, BadSettingsAreConfigErrorsBeforeAnyRunDirectory) {
  const auto root = fresh_test_dir();
  auto attempt = [&](const std::vector<std::string>& sets) {
    return [sets, root] {
      TrainOptions options;
      options.out_root = root.string();
      train(flow_config("jko_icnn_ou_d2.json", sets), options);
    };
  };
  expect_config_error(attempt({"jko_icnn.log_det=lanczos"}), "log_det", "jko_icnn.log_det");
  expect_config_error(attempt({"jko_icnn.n_phases=0"}), "n_phases", "jko_icnn.n_phases");
  expect_config_error(attempt({"icnn.activation=relu"}), "activation", "activation");
  expect_config_error(attempt({"source.name=moons"}), "entropy without a source density",
                      "gaussian source");
  EXPECT_TRUE(fs::is_empty(root));
}

}  // namespace
