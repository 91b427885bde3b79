// Tests of the evaluation suite: sliced Wasserstein (weighted, any p) against POT, MMD and KID
// against direct NumPy sums, Gaussian diagnostics against SciPy and Monte Carlo, mixture
// diagnostics, degenerate inputs, and `uotflow eval`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "checks.h"
#include "cli_runner.h"
#include "python_oracle.h"
#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/io/npy.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/ot/sliced.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::PythonOracle;
using uotflow::testing::relative_error;

namespace {

torch::Tensor randn64(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn(shape, gen, torch::kFloat64);
}

torch::Tensor rand64(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::rand(shape, gen, torch::kFloat64);
}

}  // namespace

// Given the same directions, SW is a deterministic function of the samples: ours and POT's
// (ot.sliced_wasserstein_distance, exact 1-D OT on each projection) agree to round-off. Covers
// equal and unequal sizes, weights and p in {1, 2, 3}.
TEST(SlicedMetricTest, MatchesPotWithGivenDirections) {
  PythonOracle py;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto theta = random_directions(3, 64, gen, torch::kFloat64);
  auto x = randn64({40, 3}, 1);
  auto y = randn64({55, 3}, 2) * 1.5 + 0.3;
  auto a = rand64({40}, 3) + 0.1;
  auto b = rand64({55}, 4) + 0.1;
  auto y_same = randn64({40, 3}, 5) - 0.7;
  py.put("x", x);
  py.put("y", y);
  py.put("ys", y_same);
  py.put("a", a / a.sum());
  py.put("b", b / b.sum());
  py.put("theta", theta);
  py.run(
      "import ot\n"
      "x, y, ys, a, b, th = (load(n) for n in ['x', 'y', 'ys', 'a', 'b', 'theta'])\n"
      "L = th.shape[1]\n"
      "for p in (1, 2, 3):\n"
      "    save('eq%d' % p, ot.sliced_wasserstein_distance(x, ys, n_projections=L, p=p, "
      "projections=th))\n"
      "    save('neq%d' % p, ot.sliced_wasserstein_distance(x, y, n_projections=L, p=p, "
      "projections=th))\n"
      "    save('w%d' % p, ot.sliced_wasserstein_distance(x, y, a, b, n_projections=L, p=p, "
      "projections=th))\n");
  for (int p : {1, 2, 3}) {
    auto ours = [&](const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& wu,
                    const torch::Tensor& wv) {
      return std::pow(sliced_wasserstein_pp(u, v, theta, p, wu, wv).item<double>(), 1.0 / p);
    };
    const auto ps = std::to_string(p);
    EXPECT_LT(relative_error(ours(x, y_same, {}, {}), py.get("eq" + ps).item<double>()), 1e-10)
        << p;
    EXPECT_LT(relative_error(ours(x, y, {}, {}), py.get("neq" + ps).item<double>()), 1e-10) << p;
    EXPECT_LT(relative_error(ours(x, y, a, b), py.get("w" + ps).item<double>()), 1e-10) << p;
  }
}

TEST(SlicedMetricTest, WeightsActLikeRepeatedPoints) {
  auto x = randn64({6, 2}, 7);
  auto y = randn64({9, 2}, 8);
  // Point 0 with weight 3 equals point 0 listed three times.
  auto repeated = torch::cat({x, x.slice(0, 0, 1), x.slice(0, 0, 1)});
  auto w = torch::ones({6}, torch::kFloat64);
  w[0] = 3.0;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto theta = random_directions(2, 50, gen, torch::kFloat64);
  const double weighted = sliced_wasserstein_pp(x, y, theta, 2.0, w, {}).item<double>();
  const double listed = sliced_wasserstein_pp(repeated, y, theta, 2.0).item<double>();
  EXPECT_NEAR(weighted, listed, 1e-12);
  // Uniform weights given explicitly equal the unweighted sort path.
  auto ys = randn64({6, 2}, 9);
  EXPECT_NEAR(sliced_wasserstein_pp(x, ys, theta, 2.0, torch::ones({6}, torch::kFloat64), {})
                  .item<double>(),
              sliced_wasserstein_pp(x, ys, theta, 2.0).item<double>(), 1e-12);
  // Zero weight removes a point.
  auto w0 = torch::ones({6}, torch::kFloat64);
  w0[5] = 0.0;
  EXPECT_NEAR(sliced_wasserstein_pp(x, y, theta, 1.0, w0, {}).item<double>(),
              sliced_wasserstein_pp(x.slice(0, 0, 5), y, theta, 1.0).item<double>(), 1e-12);
}

TEST(SlicedMetricTest, BatchedWeightsEqualOneCallPerSet) {
  auto x = randn64({3, 20, 4}, 1);
  auto y = randn64({3, 30, 4}, 2);
  auto a = rand64({3, 20}, 3);
  auto b = rand64({3, 30}, 4);
  auto batched = sliced_wasserstein(x, y, 40, 5, 2.0, a, b);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(batched[i].item<double>(),
                sliced_wasserstein(x[i], y[i], 40, 5, 2.0, a[i], b[i]).item<double>(), 1e-12);
  }
}

// Unbiased MMD^2: the same U-statistic written as full NumPy matrices (no blocks, no shortcuts).
TEST(MmdTest, MatchesDirectNumpySums) {
  PythonOracle py;
  // 2100 points cross the 2048-row block boundary.
  auto x = randn64({2100, 3}, 1);
  auto y = randn64({300, 3}, 2) * 0.8 + 0.5;
  py.put("x", x);
  py.put("y", y);
  py.run(
      "from scipy.spatial.distance import cdist\n"
      "x, y = load('x'), load('y')\n"
      "def u(k, n): return (k.sum() - np.trace(k)) / (n * (n - 1))\n"
      "def mmd(kern):\n"
      "    kxx, kyy, kxy = kern(cdist(x, x)), kern(cdist(y, y)), kern(cdist(x, y))\n"
      "    return u(kxx, len(x)) + u(kyy, len(y)) - 2 * kxy.mean()\n"
      "s = [0.3, 1.0, 2.5]\n"
      "save('gauss', mmd(lambda d: sum(np.exp(-d**2 / (2 * b * b)) for b in s)))\n"
      "save('lap', mmd(lambda d: sum(np.exp(-d / b) for b in s)))\n"
      "save('energy', mmd(lambda d: -d))\n"
      "p = np.concatenate([x[::2100 // 500 + 1], y[::1]])\n"
      "dp = cdist(p, p)[np.triu_indices(len(p), 1)]\n"
      "save('median', np.median(dp))\n"
      "cubic = lambda a, c: (a @ c.T / a.shape[1] + 1) ** 3\n"
      "save('kid', u(cubic(x, x), len(x)) + u(cubic(y, y), len(y)) - 2 * cubic(x, y).mean())\n");
  const std::vector<double> s = {0.3, 1.0, 2.5};
  EXPECT_LT(
      relative_error(mmd2_unbiased(x, y, Kernel{"gaussian", s}), py.get("gauss").item<double>()),
      1e-9);
  EXPECT_LT(
      relative_error(mmd2_unbiased(x, y, Kernel{"laplacian", s}), py.get("lap").item<double>()),
      1e-9);
  EXPECT_LT(relative_error(energy_distance(x, y), py.get("energy").item<double>()), 1e-9);
  EXPECT_LT(
      relative_error(kernel_inception_distance(x, y, 5000, 1).mean, py.get("kid").item<double>()),
      1e-9);
  // The median heuristic takes at most 500 points of each set with a fixed stride.
  EXPECT_LT(relative_error(median_distance(x, y), py.get("median").item<double>()), 1e-12);
}

TEST(MmdTest, KidSubsetsAreSeededAndCloseToTheFullEstimate) {
  auto x = randn64({1500, 8}, 1);
  auto y = randn64({1500, 8}, 2) + 0.3;
  const auto a = kernel_inception_distance(x, y, 500, 20, 7);
  const auto b = kernel_inception_distance(x, y, 500, 20, 7);
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_GT(a.std, 0.0);
  const double full = kernel_inception_distance(x, y, 1500, 1).mean;
  // Each subset estimate is unbiased for the same MMD^2; the mean of 20 is within a few of its
  // standard errors (computed from the subset spread) of the full-set estimate.
  EXPECT_NEAR(a.mean, full, 4.0 * a.std / std::sqrt(20.0));
}

TEST(MmdTest, DetectsAShiftAndIsNearZeroForTheSameLaw) {
  auto x = randn64({800, 2}, 1);
  auto same = randn64({800, 2}, 2);
  auto shifted = randn64({800, 2}, 3) + 0.5;
  for (const std::string kernel : {"gaussian", "laplacian"}) {
    const Kernel k{kernel, resolve_bandwidths(x, same, {})};
    const double null_value = mmd2_unbiased(x, same, k);
    const double alt_value = mmd2_unbiased(x, shifted, k);
    EXPECT_GT(alt_value, 20.0 * std::abs(null_value)) << kernel;
  }
}

// Closed-form Gaussian quantities against SciPy: the Frechet distance with scipy.linalg.sqrtm (the
// FID formula), KL against a Monte Carlo average of log-density differences.
TEST(GaussianMetricTest, FrechetMatchesScipySqrtmAndKlMatchesMonteCarlo) {
  PythonOracle py;
  auto x = randn64({500, 5}, 1).matmul(randn64({5, 5}, 2)) + 1.0;
  auto y = randn64({700, 5}, 3).matmul(randn64({5, 5}, 4) * 0.5) - 0.2;
  py.put("x", x);
  py.put("y", y);
  py.run(
      "from scipy import linalg, stats\n"
      "x, y = load('x'), load('y')\n"
      "m1, m2 = x.mean(0), y.mean(0)\n"
      "s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)\n"
      "covmean = linalg.sqrtm(s1 @ s2).real\n"
      "save('fid', ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))\n"
      "p, q = stats.multivariate_normal(m1, s1), stats.multivariate_normal(m2, s2)\n"
      "z = p.rvs(size=400000, random_state=np.random.default_rng(0))\n"
      "d = p.logpdf(z) - q.logpdf(z)\n"
      "save('kl', [d.mean(), d.std() / np.sqrt(len(d))])\n");
  EXPECT_LT(relative_error(frechet_distance(x, y), py.get("fid").item<double>()), 1e-6);
  auto kl = py.get("kl");
  const double ours = gaussian_kl(fit_gaussian(x), fit_gaussian(y));
  EXPECT_NEAR(ours, kl[0].item<double>(), 4.0 * kl[1].item<double>());
  EXPECT_NEAR(std::sqrt(frechet_distance(x, y)), compute_metric("gauss_w2", x, y), 1e-12);
}

TEST(GaussianMetricTest, ClosedFormsAndInvariances) {
  // 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2 and KL = log(s2/s1) + (s1^2 + dm^2) / (2 s2^2) - 1/2.
  GaussianFit p{torch::tensor({0.5}, torch::kFloat64), torch::tensor({{4.0}}, torch::kFloat64)};
  GaussianFit q{torch::tensor({-1.0}, torch::kFloat64), torch::tensor({{1.0}}, torch::kFloat64)};
  EXPECT_NEAR(gaussian_w2_squared(p, q), 1.5 * 1.5 + 1.0, 1e-12);
  EXPECT_NEAR(gaussian_kl(p, q), std::log(0.5) + (4.0 + 2.25) / 2.0 - 0.5, 1e-12);
  EXPECT_NEAR(gaussian_symmetric_kl(p, q), gaussian_kl(p, q) + gaussian_kl(q, p), 1e-15);
  auto x = randn64({300, 4}, 5);
  auto y = randn64({400, 4}, 6) * 1.3 + 0.2;
  EXPECT_NEAR(gaussian_kl(fit_gaussian(x), fit_gaussian(x)), 0.0, 1e-12);
  EXPECT_NEAR(frechet_distance(x, x), 0.0, 1e-10);
  // KL is invariant under a common invertible affine map; Frechet scales with the square.
  auto a = randn64({4, 4}, 7) + 3.0 * torch::eye(4, torch::kFloat64);
  const double kl = gaussian_kl(fit_gaussian(x), fit_gaussian(y));
  EXPECT_NEAR(gaussian_kl(fit_gaussian(x.matmul(a) + 5.0), fit_gaussian(y.matmul(a) + 5.0)), kl,
              1e-8 * kl);
  for (double scale : {1e-3, 1e3}) {
    EXPECT_LT(relative_error(frechet_distance(x * scale, y * scale),
                             scale * scale * frechet_distance(x, y)),
              1e-8);
  }
}

TEST(GaussianMetricTest, SingularCovarianceIsAClearError) {
  auto x = randn64({50, 1000}, 1);  // fewer points than dimensions
  try {
    gaussian_kl(fit_gaussian(x), fit_gaussian(x));
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("singular"), std::string::npos) << e.what();
  }
  // The Frechet distance needs no inverse: fine on the same singular inputs.
  EXPECT_NEAR(frechet_distance(x, x), 0.0, 1e-8);
  EXPECT_THROW(fit_gaussian(x.slice(0, 0, 1)), ConfigError);
}

TEST(MixtureMetricTest, ModesAndMassNearOutliers) {
  auto centres = torch::tensor({{0.0, 0.0}, {10.0, 0.0}}, torch::kFloat64);
  auto x = torch::cat({torch::zeros({7, 2}, torch::kFloat64) + 0.1,
                       torch::zeros({2, 2}, torch::kFloat64) + torch::tensor({10.0, 0.0}),
                       torch::full({1, 2}, 50.0, torch::kFloat64)});
  auto stats = mode_statistics(x, centres, 0.5);
  EXPECT_EQ(stats.counts, (std::vector<int64_t>{7, 2}));
  EXPECT_EQ(stats.covered, 2);  // 2 >= 10 / 2 / 4
  EXPECT_NEAR(stats.hq_fraction, 0.9, 1e-12);
  EXPECT_NEAR(mass_within(x, torch::tensor({{50.0, 50.0}}, torch::kFloat64), 1.0), 0.1, 1e-12);
  EXPECT_NEAR(mass_within(x, centres, 0.2), 0.9, 1e-12);
  MetricContext context;
  context.outliers = torch::tensor({{50.0, 50.0}}, torch::kFloat64);
  context.outlier_radius = 1.0;
  EXPECT_NEAR(compute_metric("outlier_mass", x, x, context), 0.1, 1e-12);
  EXPECT_THROW(compute_metric("outlier_mass", x, x), ConfigError);
  EXPECT_THROW(compute_metric("modes", x, x), ConfigError);
}

// Every registered metric on degenerate inputs: a finite number or a ConfigError, never NaN.
TEST(MetricRegistryTest, DegenerateInputsBehave) {
  MetricContext context;
  context.n_projections = 200;
  context.centres = torch::zeros({1, 1}, torch::kFloat64);
  context.mode_std = 1.0;
  context.outliers = torch::zeros({1, 1}, torch::kFloat64);
  context.outlier_radius = 1.0;
  auto x = randn64({60, 1}, 1);
  for (const auto& name : metric_registry().names()) {
    SCOPED_TRACE(name);
    MetricContext c = context;
    // d = 1.
    const double value = compute_metric(name, x, randn64({70, 1}, 2) + 1.0, c);
    EXPECT_TRUE(std::isfinite(value));
    // Identical sets: every distance is 0 (the unbiased MMD estimates are O(1/n) instead).
    const double same = compute_metric(name, x, x, c);
    // (-2 / (n (n - 1)) (tr K - 1'K1 / n) <= 0 for these positive or conditionally negative
    // definite kernels).
    if (name.rfind("mmd", 0) == 0 || name.rfind("energy", 0) == 0 || name == "kid") {
      EXPECT_LE(same, 0.0);
    } else if (name != "modes" && name != "hq_fraction" && name != "outlier_mass") {
      EXPECT_NEAR(same, 0.0, 1e-6);
    }
    // Duplicated points: the set listed twice is the same measure (the moment fits and the
    // U-statistics use N - 1 and so are not functions of the measure alone).
    static const std::set<std::string> measure_functions = {
        "w1", "w2", "sw1", "sw2", "sinkhorn", "mean_error", "hq_fraction", "outlier_mass"};
    if (measure_functions.count(name) > 0) {
      EXPECT_NEAR(compute_metric(name, torch::cat({x, x}), x, c), same, 1e-6);
    }
  }
}

TEST(MetricRegistryTest, ScaleCovarianceOfTheDistances) {
  auto x = randn64({200, 3}, 1);
  auto y = randn64({150, 3}, 2) * 2.0 + 1.0;
  for (double scale : {1e-3, 1e3}) {
    for (const std::string name : {"sw1", "sw2", "gauss_w2", "energy", "energy_sliced"}) {
      EXPECT_LT(relative_error(compute_metric(name, x * scale, y * scale),
                               scale * compute_metric(name, x, y)),
                1e-8)
          << name << " " << scale;
    }
    // Median-heuristic bandwidths scale with the data, so MMD is scale-free.
    for (const std::string name : {"mmd_gaussian", "mmd_laplacian", "gauss_kl"}) {
      EXPECT_LT(
          relative_error(compute_metric(name, x * scale, y * scale), compute_metric(name, x, y)),
          1e-6)
          << name << " " << scale;
    }
  }
}

TEST(MetricRegistryTest, HighDimensionRuns) {
  auto x = randn64({100, 1000}, 1);
  auto y = randn64({120, 1000}, 2) + 0.1;
  MetricContext c;
  c.n_projections = 100;
  for (const std::string name :
       {"sw2", "mmd_gaussian", "energy", "energy_sliced", "frechet", "kid"}) {
    EXPECT_TRUE(std::isfinite(compute_metric(name, x, y, c))) << name;
  }
  EXPECT_THROW(compute_metric("gauss_kl", x, y, c), ConfigError);
}

TEST(MetricRegistryTest, BadInputIsAConfigError) {
  auto x = randn64({10, 2}, 1);
  EXPECT_THROW(compute_metric("sw2", x, randn64({10, 3}, 2)), ConfigError);
  EXPECT_THROW(compute_metric("sw2", x, torch::zeros({0, 2}, torch::kFloat64)), ConfigError);
  auto bad = x.clone();
  bad[3][1] = std::nan("");
  EXPECT_THROW(compute_metric("energy", bad, x), ConfigError);
  EXPECT_THROW(compute_metric("no_such_metric", x, x), ConfigError);
  EXPECT_THROW(compute_metric("mmd_gaussian", x.slice(0, 0, 1), x), ConfigError);
}

class EvalCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("uotflow-eval-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }
  std::string put(const std::string& name, const torch::Tensor& t) {
    const auto path = (dir_ / (name + ".npy")).string();
    save_npy(path, t);
    return path;
  }
  fs::path dir_;
};

TEST_F(EvalCliTest, PrintsOneJsonObjectInTheOrderAsked) {
  auto x = randn64({300, 2}, 1);
  auto y = randn64({250, 2}, 2) + 0.5;
  const auto xs = put("x", x);
  const auto ys = put("y", y);
  const std::string names =
      "sw2,sw1,mmd_gaussian,mmd_laplacian,energy,gauss_kl,gauss_w2,frechet,kid";
  auto r = uotflow::testing::run_cli("eval --samples " + xs + " --reference " + ys + " --metrics " +
                                     names + " --seed 4 --projections 300");
  ASSERT_EQ(r.code, 0) << r.output;
  auto out = nlohmann::ordered_json::parse(r.output);
  std::string order;
  for (const auto& [key, value] : out.items()) {
    order += (order.empty() ? "" : ",") + key;
  }
  EXPECT_EQ(order, names);
  MetricContext c;
  c.seed = 4;
  c.n_projections = 300;
  for (const auto& [key, value] : out.items()) {
    EXPECT_NEAR(value.get<double>(), compute_metric(key, x, y, c), 1e-6) << key;
  }
  // Modes from a built-in data set's centres, and explicit bandwidths.
  auto m = uotflow::testing::run_cli("eval --samples " + xs + " --reference " + ys +
                                     " --metrics modes,hq_fraction,mmd_gaussian --data "
                                     "8gaussians --bandwidths 0.5,1");
  ASSERT_EQ(m.code, 0) << m.output;
  auto mo = nlohmann::json::parse(m.output);
  EXPECT_NEAR(mo["mmd_gaussian"].get<double>(), mmd2_unbiased(x, y, Kernel{"gaussian", {0.5, 1.0}}),
              1e-9);
  EXPECT_GE(mo["hq_fraction"].get<double>(), 0.0);
}

TEST_F(EvalCliTest, BadInputIsOneLineAndExitCode2) {
  const auto x = put("x", randn64({30, 2}, 1));
  const auto y3 = put("y3", randn64({30, 3}, 2));
  const auto empty = put("empty", torch::zeros({0, 2}));
  auto nan_t = randn64({30, 2}, 3);
  nan_t[0][0] = std::nan("");
  const auto nan_path = put("nan", nan_t);
  const auto garbage = (dir_ / "garbage.npy").string();
  std::ofstream(garbage) << "not an npy file";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--samples " + x + " --reference " + y3, "holds points of dimension 2 but --reference"},
      {"--samples " + x + " --reference " + empty, "must hold points [N, D] with N >= 1"},
      {"--samples " + x + " --reference " + nan_path, "non-finite"},
      {"--samples " + x + " --reference " + garbage, "garbage.npy"},
      {"--samples " + x + " --reference " + (dir_ / "missing.npy").string(), "missing.npy"},
      {"--samples " + x + " --reference " + x + " --metrics sw2,bogus", "bogus"},
      // The library's "(centres and mode_std, ...)" in the command line's flags.
      {"--samples " + x + " --reference " + x + " --metrics modes", "(--centres FILE --mode-std S"},
      {"--samples " + x + " --reference " + x + " --metrics outlier_mass", "(--outliers FILE"},
      {"--samples " + x + " --reference " + x + " --epsilon -1", "epsilon"},
  };
  for (const auto& [args, fragment] : cases) {
    auto r = uotflow::testing::run_cli("eval " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(fragment), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

// The closed-form Fokker-Planck (OU) solution: right at t = 0, at the target for large t, and it
// solves the moment equations dm/dt = -A (m - b), dS/dt = -(A S + S A) + 2 I (central
// differences, step 1e-4: truncation error O(1e-8) against derivatives of order 1).
TEST(GaussianDiagnostics, FokkerPlanckClosedFormSolvesTheMomentEquations) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  const int64_t d = 4;
  auto m = torch::randn({d, d}, gen, torch::kDouble);
  const auto a = m.matmul(m.t()) / d + 0.5 * torch::eye(d, torch::kDouble);  // precision
  const GaussianFit target{torch::randn({d}, gen, torch::kDouble), torch::linalg_inv(a)};
  auto s = torch::randn({d, d}, gen, torch::kDouble);
  const GaussianFit start{torch::randn({d}, gen, torch::kDouble),
                          s.matmul(s.t()) / d + 0.1 * torch::eye(d, torch::kDouble)};
  const auto at0 = fokker_planck_gaussian(start, target, 0.0);
  EXPECT_TRUE(torch::allclose(at0.mean, start.mean, 0, 1e-12));
  EXPECT_TRUE(torch::allclose(at0.cov, start.cov, 0, 1e-12));
  const auto late = fokker_planck_gaussian(start, target, 200.0);
  EXPECT_TRUE(torch::allclose(late.mean, target.mean, 0, 1e-10));
  EXPECT_TRUE(torch::allclose(late.cov, target.cov, 0, 1e-10));

  const double t = 0.3, h = 1e-4;
  const auto now = fokker_planck_gaussian(start, target, t);
  const auto up = fokker_planck_gaussian(start, target, t + h);
  const auto down = fokker_planck_gaussian(start, target, t - h);
  const auto dm = (up.mean - down.mean) / (2 * h);
  const auto ds = (up.cov - down.cov) / (2 * h);
  EXPECT_TRUE(torch::allclose(dm, -a.matmul(now.mean - target.mean), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(
      ds, -(a.matmul(now.cov) + now.cov.matmul(a)) + 2 * torch::eye(d, torch::kDouble), 0, 1e-6));
}
