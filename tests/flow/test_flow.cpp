// Flow building blocks: RealNVP (inverse, log-determinant, entropy two ways), the functionals
// (closed forms, finite differences, brute force), simplex projection, KDE and grid entropies.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "checks.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/nets/realnvp.h"

using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::relative_error;

namespace {

class FlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(7);
  }
};

// A RealNVP with all weights random (not the identity it starts as), in float64.
RealNVP random_flow(int64_t dim, int64_t couplings = 4, double weight_std = 0.4) {
  RealNVP flow(RealNVPOptions(dim).couplings(couplings).width(16));
  torch::NoGradGuard no_grad;
  for (auto& p : flow->parameters()) {
    p.normal_(0.0, weight_std);
  }
  flow->to(torch::kDouble);
  return flow;
}

TEST_F(FlowTest, RealNVPStartsAsTheIdentity) {
  RealNVP flow(RealNVPOptions(5));
  auto z = torch::randn({64, 5});
  auto [x, log_det] = flow->forward(z);
  EXPECT_TRUE(torch::equal(x, z));
  EXPECT_EQ(log_det.abs().max().item<float>(), 0.0f);
}

TEST_F(FlowTest, RealNVPInverseUndoesForwardForEvenAndOddDimensions) {
  for (int64_t d : {2, 3, 10}) {
    auto flow = random_flow(d, 5);
    auto z = torch::randn({128, d}, torch::kDouble);
    auto [x, log_det] = flow->forward(z);
    auto [back, inv_log_det] = flow->inverse(x);
    EXPECT_LT((back - z).abs().max().item<double>(), 1e-10) << "d = " << d;
    EXPECT_LT((log_det + inv_log_det).abs().max().item<double>(), 1e-10) << "d = " << d;
    EXPECT_GT((x - z).abs().max().item<double>(), 1e-2) << "the flow is not trivial";
  }
}

TEST_F(FlowTest, RealNVPLogDetEqualsTheJacobianDeterminant) {
  const int64_t d = 4;
  auto flow = random_flow(d);
  auto z = torch::randn({5, d}, torch::kDouble);
  auto [x, log_det] = flow->forward(z);
  for (int64_t i = 0; i < z.size(0); ++i) {
    auto zi = z[i].unsqueeze(0).clone().requires_grad_(true);
    auto xi = flow->forward(zi).first.squeeze(0);
    auto jac = torch::zeros({d, d}, torch::kDouble);
    for (int64_t r = 0; r < d; ++r) {
      jac[r] = torch::autograd::grad({xi[r]}, {zi}, {}, true)[0].squeeze(0);
    }
    auto [sign, logabs] = torch::linalg_slogdet(jac);
    EXPECT_NEAR(logabs.item<double>(), log_det[i].item<double>(), 1e-9);
  }
}

// -E log rho by the log-determinant (Monte Carlo over z) and by integrating -rho log rho over a
// fine 2-D grid with rho from inversion: they agree, and rho integrates to 1.
TEST_F(FlowTest, RealNVPEntropyByLogDetMatchesNumericalIntegration) {
  auto flow = random_flow(2, 3, 0.25);
  torch::NoGradGuard no_grad;
  auto z = torch::randn({400000, 2}, torch::kDouble);
  auto [x, log_det] = flow->forward(z);
  auto log_rho = standard_normal_log_prob(z) - log_det;
  const double mc = -log_rho.mean().item<double>();
  const double mc_se = log_rho.std().item<double>() / std::sqrt(400000.0);
  // Integration window: wide enough to hold all but a negligible mass.
  const double lo = -12.0, hi = 12.0;
  const int64_t m = 1200;
  const double h = (hi - lo) / m;
  auto ticks = torch::arange(m, torch::kDouble) * h + lo + h / 2;
  auto mesh = torch::meshgrid({ticks, ticks}, "ij");
  auto points = torch::stack({mesh[0].reshape(-1), mesh[1].reshape(-1)}, 1);
  auto lp = flow->log_prob(points);
  const double mass = (lp.exp().sum() * h * h).item<double>();
  const double integral = -(lp.exp() * lp).sum().item<double>() * h * h;
  EXPECT_NEAR(mass, 1.0, 2e-3) << "MC " << mc << " grid " << integral;
  EXPECT_NEAR(mc, integral, std::max(5 * mc_se, 5e-3)) << "MC " << mc << " grid " << integral;
  // Not the standard normal's entropy: the flow changed it.
  EXPECT_GT(std::abs(integral - std::log(2 * M_PI * M_E)), 0.05);
}

Json quadratic_section(int64_t dim, uint64_t seed) {
  return Json{{"name", "quadratic"}, {"params", {{"dim", dim}, {"seed", seed}}}};
}

TEST_F(FlowTest, QuadraticPotentialHasTheGaussianClosedFormAndGibbsMeasure) {
  auto f = make_functional(quadratic_section(3, 4), 0);
  ASSERT_EQ(f->dim(), 3);
  auto target = f->gibbs_gaussian();
  auto precision = torch::linalg_inv(target.covariance);
  // E_{N(m, S)} V = (tr(A S) + (m - b)^T A (m - b)) / 2, by Monte Carlo in float64.
  auto m = torch::tensor({0.3, -0.2, 1.0}, torch::kDouble);
  auto x = m + torch::randn({400000, 3}, torch::kDouble);
  FlowBatch batch{x.to(torch::kFloat32)};
  const double mc = f->value(batch).item<double>();
  auto dm = m - target.mean;
  const double exact = 0.5 * (precision.trace() + dm.dot(precision.matmul(dm))).item<double>();
  EXPECT_LT(relative_error(mc, exact), 0.01) << mc << " vs " << exact;
  EXPECT_TRUE(f->gaussian_target().mean.defined() == false) << "a potential is not a KL";
  auto kl =
      make_functional(Json{{"name", "kl"}, {"params", {{"target", quadratic_section(3, 4)}}}}, 0);
  EXPECT_TRUE(torch::allclose(kl->gaussian_target().mean, target.mean));
  EXPECT_TRUE(kl->needs_entropy());
}

TEST_F(FlowTest, OneComponentMixtureIsAQuadraticPlusItsNormaliser) {
  auto f = make_functional(
      Json{{"name", "gmm"}, {"params", {{"means", {{1.0, -1.0}}}, {"std", 0.5}}}}, 2);
  auto x = torch::randn({50, 2});
  const double s = 0.5;
  auto expected = ((x - torch::tensor({1.0f, -1.0f})).pow(2).sum(1) / (2 * s * s) +
                   2 * std::log(s) + std::log(2 * M_PI))
                      .mean();
  EXPECT_NEAR(f->value(FlowBatch{x}).item<double>(), expected.item<double>(), 1e-4);
}

TEST_F(FlowTest, InteractionEnergyMatchesBruteForceAndFiniteDifferences) {
  auto x = torch::randn({12, 2}, torch::kDouble);
  for (auto [a, b] : {std::pair{4.0, 2.0}, std::pair{2.0, 0.0}, std::pair{3.0, 1.5}}) {
    double brute = 0.0;
    for (int64_t i = 0; i < 12; ++i) {
      for (int64_t j = 0; j < 12; ++j) {
        if (i != j) {
          const double r = (x[i] - x[j]).norm().item<double>();
          brute += std::pow(r, a) / a - (b == 0.0 ? std::log(r) : std::pow(r, b) / b);
        }
      }
    }
    brute *= 0.5 / (12 * 11);
    auto xv = x.clone().requires_grad_(true);
    auto value = interaction_energy(xv, {}, a, b);
    EXPECT_NEAR(value.item<double>(), brute, 1e-12);
    auto grad = torch::autograd::grad({value}, {xv})[0];
    const double eps = 1e-6;
    for (int64_t k : {0, 5, 17}) {
      auto xp = x.clone(), xm = x.clone();
      xp.view(-1)[k] += eps;
      xm.view(-1)[k] -= eps;
      const double fd =
          (interaction_energy(xp, {}, a, b) - interaction_energy(xm, {}, a, b)).item<double>() /
          (2 * eps);
      EXPECT_NEAR(grad.view(-1)[k].item<double>(), fd, 1e-6) << "a " << a << " b " << b;
    }
  }
}

TEST_F(FlowTest, SimplexProjectionSolvesTheKktConditions) {
  auto v = torch::randn({6, 40}, torch::kDouble) * 0.3;
  auto p = project_to_simplex(v);
  EXPECT_LT((p.sum(1) - 1).abs().max().item<double>(), 1e-12);
  EXPECT_GE(p.min().item<double>(), 0.0);
  // p = max(v - theta, 0): a single shift theta per row on the support.
  for (int64_t r = 0; r < 6; ++r) {
    auto support = p[r] > 0;
    auto shifts = (v[r] - p[r]).masked_select(support);
    EXPECT_LT((shifts.max() - shifts.min()).item<double>(), 1e-12);
    // Off the support, v <= theta.
    auto off = v[r].masked_select(~support);
    if (off.numel() > 0) {
      EXPECT_LE(off.max().item<double>(), shifts[0].item<double>() + 1e-12);
    }
  }
  auto q = torch::softmax(torch::randn({30}, torch::kDouble), 0);
  EXPECT_LT((project_to_simplex(q) - q).abs().max().item<double>(), 1e-12) << "idempotent";
}

TEST_F(FlowTest, KdeEntropyOfAGaussianSampleIsCloseToTheClosedForm) {
  const double s = 0.7;
  auto x = s * torch::randn({3000, 2}, torch::kDouble);
  const double neg_entropy = kde_neg_entropy(x, scott_bandwidth(x)).item<double>();
  const double exact = -std::log(2 * M_PI * M_E * s * s);  // -(d/2) log(2 pi e s^2), d = 2
  // The KDE smooths by the bandwidth (about 0.26 s here): a bias of about +-0.1 is expected.
  EXPECT_NEAR(neg_entropy, exact, 0.12);
}

TEST_F(FlowTest, GridEntropyOfUniformWeightsIsMinusLogArea) {
  Json section = default_parametrization_section();
  section["name"] = "grid";
  section["grid"]["radius"] = 2.0;
  section["grid"]["size"] = 20;
  auto uniform = make_dataset("gaussian", Json{{"dim", 2}, {"std", 1e6}});  // (numerically)
  auto grid = make_parametrization(section, *uniform, torch::kCPU);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto batch = grid->draw(0, gen, true);
  EXPECT_NEAR(batch.neg_entropy.item<double>(), -std::log(16.0), 1e-5);
  EXPECT_NEAR(batch.weights.sum().item<double>(), 1.0, 1e-6);
  EXPECT_EQ(batch.x.size(0), 400);
}

TEST_F(FlowTest, ParametrizationsStartAtTheConfiguredGaussian) {
  for (const std::string name : {"particles", "generator", "realnvp"}) {
    Json section = default_parametrization_section();
    section["name"] = name;
    auto source = make_dataset("gaussian", Json{{"mean", {1.0, -2.0}}, {"std", 0.5}});
    section["particles"]["n"] = 20000;
    auto rho = make_parametrization(section, *source, torch::kCPU);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    auto x = rho->sample(20000, gen).x;
    EXPECT_LT((x.mean(0) - torch::tensor({1.0f, -2.0f})).abs().max().item<float>(), 0.02) << name;
    EXPECT_LT((x.std(0) - 0.5).abs().max().item<float>(), 0.02) << name;
  }
}

TEST_F(FlowTest, BadFunctionalAndParametrizationConfigsNameTheProblem) {
  expect_config_error(
      [] {
        make_functional(Json{{"name", "nope"}}, 2);
      },
      "unknown functional", "known:");
  expect_config_error(
      [] {
        make_functional(Json{{"name", "interaction"}, {"params", {{"kernel", "x"}}}}, 2);
      },
      "unknown kernel", "kernel");
  expect_config_error(
      [] {
        make_functional(Json{{"name", "quadratic"}, {"params", {{"dim", 3}}}}, 2);
      },
      "dimension clash", "dim");
  expect_config_error(
      [] {
        make_functional(Json{{"name", "kl"}, {"params", Json::object()}}, 2);
      },
      "kl without target", "target");
  Json grid = default_parametrization_section();
  grid["name"] = "grid";
  auto in_3d = make_dataset("gaussian", Json{{"dim", 3}});
  expect_config_error([&] { make_parametrization(grid, *in_3d, torch::kCPU); }, "3-D grid", "2-D");
  expect_config_error([] { RealNVP(RealNVPOptions(1)); }, "1-D RealNVP", "dim >= 2");
  // Nets and grids start from an isotropic Gaussian source; particles from any.
  Json realnvp = default_parametrization_section();
  auto skewed = make_dataset("gaussian", Json{{"covariance", {{1.0, 0.5}, {0.5, 1.0}}}});
  expect_config_error([&] { make_parametrization(realnvp, *skewed, torch::kCPU); },
                      "anisotropic source", "isotropic Gaussian");
  auto moons = make_dataset("moons", Json::object());
  realnvp["name"] = "particles";
  EXPECT_EQ(make_parametrization(realnvp, *moons, torch::kCPU)->dim(), 2);
}

}  // namespace
