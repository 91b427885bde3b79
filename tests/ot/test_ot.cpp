// Tests of the OT layer: Psi* conjugates, costs, sliced Wasserstein, semi-dual losses and R1.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "checks.h"
#include "uotflow/core/error.h"
#include "uotflow/metrics/mmd.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/cost.h"
#include "uotflow/ot/phi.h"
#include "uotflow/ot/semidual.h"
#include "uotflow/ot/sliced.h"

using namespace uotflow;
using uotflow::testing::finite_difference;

namespace {

class OtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
  }
};

double phi_value(const Phi& phi, double s) {
  return phi(torch::tensor({s}, torch::kFloat64)).item<double>();
}

}  // namespace

TEST_F(OtTest, PhiClosedForms) {
  for (double s : {-3.0, -1.0, 0.0, 0.5, 2.0}) {
    EXPECT_NEAR(phi_value(Phi("linear"), s), s, 1e-12);
    EXPECT_NEAR(phi_value(Phi("kl"), s), std::exp(s) - 1, 1e-12);
    const double y = std::max(s, -2.0);
    EXPECT_NEAR(phi_value(Phi("chi2"), s), y * y / 4 + y, 1e-12);
    EXPECT_NEAR(phi_value(Phi("softplus"), s), 2 * std::log1p(std::exp(s)) - 2 * std::log(2.0),
                1e-12);
    // alpha * Psi*(s / alpha)
    EXPECT_NEAR(phi_value(Phi("kl", 0.5), s), 0.5 * (std::exp(s / 0.5) - 1), 1e-9);
  }
  for (const auto& name : phi_registry().names()) {
    Phi phi(name);
    EXPECT_NEAR(phi_value(phi, 0.0), 0.0, 1e-12) << name << ": Psi*(0) = 0";
    auto s = torch::zeros({1}, torch::dtype(torch::kFloat64).requires_grad(true));
    phi(s).sum().backward();
    EXPECT_NEAR(s.grad().item<double>(), 1.0, 1e-12) << name << ": Psi*'(0) = 1";
  }
  EXPECT_THROW(Phi("nope"), ConfigError);
  EXPECT_THROW(Phi("kl", 0.0), ConfigError);
}

// Psi*(s) = sup_t (s t - Psi(t)), checked by brute force on a fine grid of t, also with a weight.
TEST_F(OtTest, PhiIsTheConjugateOfItsDivergence) {
  for (const auto& name : {"kl", "chi2", "softplus"}) {
    for (double alpha : {1.0, 0.5}) {
      Phi phi(name, alpha);
      for (double s = -3.0; s <= 1.51; s += 0.25) {
        double best = -INFINITY;
        for (double t = 0.0; t <= 25.0; t += 2e-4) {
          best = std::max(best, s * t - phi.primal(t));
        }
        EXPECT_NEAR(phi_value(phi, s), best, 2e-4) << name << " alpha " << alpha << " s " << s;
      }
    }
  }
  // Linear: Psi is the indicator of t = 1.
  EXPECT_EQ(Phi("linear").primal(1.0), 0.0);
  EXPECT_TRUE(std::isinf(Phi("linear").primal(1.5)));
}

TEST_F(OtTest, PhiIsConvexAndNonDecreasing) {
  auto s = torch::linspace(-6, 4, 2001, torch::kFloat64);
  for (const auto& name : phi_registry().names()) {
    auto y = Phi(name)(s);
    auto d1 = y.slice(0, 1) - y.slice(0, 0, -1);
    auto d2 = d1.slice(0, 1) - d1.slice(0, 0, -1);
    EXPECT_GE(d1.min().item<double>(), -1e-12) << name;
    EXPECT_GE(d2.min().item<double>(), -1e-12) << name;
  }
}

TEST_F(OtTest, QuadraticCostReductions) {
  auto x = torch::tensor({{0.0, 0.0}, {1.0, 2.0}}, torch::kFloat64);
  auto y = torch::tensor({{1.0, 1.0}, {1.0, 0.0}}, torch::kFloat64);
  auto sum = QuadraticCost(0.5, CostReduction::kSum)(x, y);
  auto mean = QuadraticCost(0.5, CostReduction::kMean)(x, y);
  EXPECT_TRUE(torch::allclose(sum, torch::tensor({1.0, 2.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::allclose(mean, torch::tensor({0.5, 1.0}, torch::kFloat64)));
  EXPECT_THROW(parse_cost_reduction("max"), ConfigError);
  EXPECT_THROW(QuadraticCost(-1.0), ConfigError);
}

TEST_F(OtTest, SlicedW2MatchesGaussianClosedForm) {
  // theta . X ~ N(theta . m, s^2) for isotropic Gaussians, so
  // SW2^2 = E_theta (theta . (m1 - m2))^2 + (s1 - s2)^2 = |m1 - m2|^2 / d + (s1 - s2)^2.
  const int64_t d = 3;
  const int64_t n = 20000;
  auto m = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  auto x = torch::randn({n, d}, torch::kFloat64);
  auto y = 2.0 * torch::randn({n, d}, torch::kFloat64) + m;
  const double expected = m.pow(2).sum().item<double>() / d + 1.0;
  const double sw2 = sliced_wasserstein(x, y, 2000, 7).item<double>();
  EXPECT_NEAR(sw2 * sw2, expected, 0.03 * expected);
}

TEST_F(OtTest, SlicedWassersteinInvariances) {
  auto x = torch::randn({500, 4}, torch::kFloat64);
  auto y = torch::randn({500, 4}, torch::kFloat64) + 1.0;
  EXPECT_NEAR(sliced_wasserstein(x, x, 100, 1).item<double>(), 0.0, 1e-12);
  auto perm = torch::randperm(500, torch::kLong);
  const double a = sliced_wasserstein(x, y, 100, 1).item<double>();
  const double b = sliced_wasserstein(x.index_select(0, perm), y, 100, 1).item<double>();
  EXPECT_NEAR(a, b, 1e-12);
  EXPECT_GT(a, 0.5);
  // Same seed, same directions; another seed, other directions.
  EXPECT_EQ(a, sliced_wasserstein(x, y, 100, 1).item<double>());
  EXPECT_NE(a, sliced_wasserstein(x, y, 100, 2).item<double>());
  // Batched [B, N, D] equals one call per batch element.
  auto xb = torch::stack({x, y});
  auto yb = torch::stack({y, x * 2});
  auto batched = sliced_wasserstein(xb, yb, 100, 3);
  EXPECT_NEAR(batched[0].item<double>(), sliced_wasserstein(x, y, 100, 3).item<double>(), 1e-12);
  EXPECT_NEAR(batched[1].item<double>(), sliced_wasserstein(y, x * 2, 100, 3).item<double>(),
              1e-12);
}

// In 1-D the sorted form is exact: it equals the O(n^2) energy distance for any directions.
TEST_F(OtTest, SlicedEnergyIsExactInOneDimension) {
  auto x = torch::randn({300, 1}, torch::kFloat64);
  auto y = 1.5 * torch::randn({250, 1}, torch::kFloat64) + 0.4;
  const double exact = energy_distance(x, y);
  EXPECT_NEAR(sliced_energy_distance(x, y, 1, 0).item<double>(), exact, 1e-12 * std::abs(exact));
  EXPECT_NEAR(sliced_energy_distance(x, y, 7, 3).item<double>(), exact, 1e-12 * std::abs(exact));
  // The U-statistic of a set against itself is <= 0, as the exact one.
  EXPECT_NEAR(sliced_energy_distance(x, x, 1, 0).item<double>(), energy_distance(x, x), 1e-12);
}

// In D dimensions it estimates the exact energy distance without bias: the error shrinks like
// 1 / sqrt(L), and directions processed in blocks give the same value as all at once.
TEST_F(OtTest, SlicedEnergyConvergesToTheExactOneWithMoreDirections) {
  auto x = torch::randn({1500, 5}, torch::kFloat64);
  auto y = 1.2 * torch::randn({1200, 5}, torch::kFloat64) + 0.3;
  const double exact = energy_distance(x, y);
  ASSERT_GT(exact, 0.1);
  double previous_error = 1e9;
  for (int64_t directions : {100, 10000}) {
    double error = 0.0;  // mean over 4 seeds
    for (uint64_t seed = 0; seed < 4; ++seed) {
      error += std::abs(sliced_energy_distance(x, y, directions, seed).item<double>() - exact) / 4;
    }
    EXPECT_LT(error, previous_error) << directions;
    previous_error = error;
  }
  EXPECT_LT(previous_error, 0.02 * exact);
  // 300 directions run in blocks of 2^18 / (N + M) = 97: the same value as three calls of 100.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto theta = random_directions(5, 300, gen, x.options());
  const double blocked = sliced_energy_distance(x, y, theta).item<double>();
  double by_hand = 0.0;
  for (int64_t l = 0; l < 300; l += 100) {
    by_hand += sliced_energy_distance(x, y, theta.slice(1, l, l + 100)).item<double>() / 3;
  }
  EXPECT_NEAR(blocked, by_hand, 1e-10 * std::abs(blocked));
}

// The loss is differentiable in both sets: autograd against central differences in float64.
TEST_F(OtTest, SlicedEnergyGradientsMatchFiniteDifferences) {
  auto x = torch::randn({6, 3}, torch::kFloat64).requires_grad_(true);
  auto y = torch::randn({5, 3}, torch::kFloat64).requires_grad_(true);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto theta = random_directions(3, 9, gen, torch::dtype(torch::kFloat64));
  sliced_energy_distance(x, y, theta).backward();
  for (auto* t : {&x, &y}) {
    auto expected = finite_difference(
        [&] { return sliced_energy_distance(x, y, theta).item<double>(); }, t->detach());
    EXPECT_TRUE(torch::allclose(t->grad(), expected, 0, 1e-6));
  }
}

// The equal-size W2 path with gradients (what `swjko` runs) has its own backward. It must equal
// autograd through torch::sort (values, first and second derivatives, float32 and float64), agree
// with finite differences, and leave the no-gradient path's values unchanged.
TEST_F(OtTest, SortedW2BackwardEqualsAutogradThroughSort) {
  auto by_autograd = [](const torch::Tensor& u, const torch::Tensor& v) {
    return (std::get<0>(u.sort(-1)) - std::get<0>(v.sort(-1))).square().mean(-1);
  };
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
    auto u = torch::randn({3, 4, 50}, dtype).requires_grad_(true);
    auto v = torch::randn({3, 4, 50}, dtype).requires_grad_(true);
    auto w = torch::randn({3, 4}, dtype);
    auto mine = wasserstein_1d_pp(u, v, 2.0);
    auto ref = by_autograd(u, v);
    EXPECT_TRUE(torch::allclose(mine, ref, tol, tol));
    EXPECT_TRUE(
        torch::allclose(mine.detach(), wasserstein_1d_pp(u.detach(), v.detach()), tol, tol));
    // First derivatives: the plain backward (the permutation loop) and the differentiable one
    // (gather/scatter, kept for the second derivatives).
    auto g_fast = torch::autograd::grad({(mine * w).sum()}, {u, v}, {}, true, false);
    auto g_mine = torch::autograd::grad({(mine * w).sum()}, {u, v}, {}, true, true);
    auto g_ref = torch::autograd::grad({(ref * w).sum()}, {u, v}, {}, true, true);
    for (int k = 0; k < 2; ++k) {
      EXPECT_TRUE(torch::allclose(g_fast[k], g_ref[k], tol, tol)) << k;
      EXPECT_TRUE(torch::allclose(g_mine[k], g_ref[k], tol, tol)) << k;
    }
    // Second derivatives: d/du of <grad_u, r> for a fixed r.
    auto r = torch::randn_like(u);
    auto h_mine = torch::autograd::grad({(g_mine[0] * r).sum()}, {u, v})[0];
    auto h_ref = torch::autograd::grad({(g_ref[0] * r).sum()}, {u, v})[0];
    EXPECT_TRUE(torch::allclose(h_mine, h_ref, tol, tol));
  }
  // Finite differences through the whole sliced distance (projections and the backward), float64.
  auto x = torch::randn({12, 3}, torch::kFloat64).requires_grad_(true);
  auto y = torch::randn({12, 3}, torch::kFloat64);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const auto theta = random_directions(3, 7, gen, torch::dtype(torch::kFloat64));
  sliced_wasserstein_pp(x, y, theta).backward();
  auto expected = finite_difference(
      [&] { return sliced_wasserstein_pp(x, y, theta).item<double>(); }, x.detach());
  EXPECT_TRUE(torch::allclose(x.grad(), expected, 0, 1e-7));
}

// Without autograd the directions go in blocks of about 2^20 projected values; with it, in one.
TEST_F(OtTest, SlicedW2InBlocksEqualsOneBlock) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto theta = random_directions(3, 700, gen, torch::dtype(torch::kFloat64));
  for (const auto& [n, m] : std::vector<std::pair<int64_t, int64_t>>{{3000, 3000}, {3000, 1700}}) {
    const auto x = torch::randn({n, 3}, torch::kFloat64);
    const auto y = torch::randn({m, 3}, torch::kFloat64) * 1.5 + 0.2;
    const auto blocked = sliced_wasserstein_pp(x, y, theta);  // 700 x 6000 > 2^20: 174 a block
    const auto whole = sliced_wasserstein_pp(x.clone().requires_grad_(true), y, theta);
    EXPECT_NEAR(blocked.item<double>(), whole.item<double>(), 1e-12 * whole.item<double>()) << m;
    // Batched inputs: [B] values, each as its own call.
    const auto xb = torch::stack({x, x * 0.5});
    const auto yb = torch::stack({y, y});
    const auto batched = sliced_wasserstein_pp(xb, yb, theta);
    EXPECT_NEAR(batched[1].item<double>(), sliced_wasserstein_pp(x * 0.5, y, theta).item<double>(),
                1e-12 * batched[1].item<double>());
  }
}

TEST_F(OtTest, Wasserstein1dQuantilePathMatchesSortPath) {
  auto u = torch::randn({3, 7}, torch::kFloat64);
  auto v = torch::randn({3, 7}, torch::kFloat64);
  // Repeating every point of v twice gives the same measure with 14 atoms: the unequal-size path.
  auto v2 = v.repeat_interleave(2, 1);
  for (double p : {1.0, 2.0, 3.0}) {
    EXPECT_TRUE(torch::allclose(wasserstein_1d_pp(u, v, p), wasserstein_1d_pp(u, v2, p), 1e-10));
  }
  // Hand example: {0, 1} vs {0, 0, 3}: quantile levels 1/3, 1/2, 2/3, 1.
  auto a = torch::tensor({0.0, 1.0}, torch::kFloat64);
  auto b = torch::tensor({0.0, 0.0, 3.0}, torch::kFloat64);
  // levels (0,1/3]: 0 vs 0; (1/3,1/2]: 0 vs 0; (1/2,2/3]: 1 vs 0; (2/3,1]: 1 vs 3.
  const double expected = (1.0 / 6.0) * 1.0 + (1.0 / 3.0) * 4.0;
  EXPECT_NEAR(wasserstein_1d_pp(a, b, 2.0).item<double>(), expected, 1e-12);
}

TEST_F(OtTest, SemiDualLossGradientsMatchFiniteDifferences) {
  const int64_t d = 2;
  Json gen_section{{"net", "mlp"}, {"width", 6}, {"depth", 1}, {"nz", 1}};
  Json pot_section{{"net", "mlp"}, {"width", 6}, {"depth", 2}};
  for (const auto& [phi1, phi2] : std::vector<std::pair<std::string, std::string>>{
           {"kl", "kl"}, {"linear", "chi2"}, {"softplus", "softplus"}, {"linear", "linear"}}) {
    auto gen = make_generator(d, gen_section);
    auto pot = make_potential(d, pot_section);
    gen->to(torch::kFloat64);
    pot->to(torch::kFloat64);
    SemiDualLoss loss{Phi(phi1, 0.7), Phi(phi2, 0.7)};
    QuadraticCost cost(0.3);
    auto x = torch::randn({5, d}, torch::kFloat64);
    auto z = torch::randn({5, 1}, torch::kFloat64);
    auto real = torch::randn({6, d}, torch::kFloat64);
    const double r1_gamma = 0.4;

    // Potential loss with R1 (needs the double backward) with respect to the potential's weights.
    auto potential_loss = [&]() {
      auto fake = gen->forward(x, z).detach();
      auto r = real.detach().clone().requires_grad_(true);
      auto v_real = pot->forward(r);
      return loss.potential(pot->forward(fake), cost(x, fake), v_real) +
             0.5 * r1_gamma * gradient_penalty(v_real, r);
    };
    auto generator_loss = [&]() {
      auto fake = gen->forward(x, z);
      return loss.generator(pot->forward(fake), cost(x, fake));
    };
    for (auto& p : pot->parameters()) {
      pot->zero_grad();
      potential_loss().backward();
      auto fd = finite_difference([&] { return potential_loss().item<double>(); }, p.data());
      EXPECT_TRUE(torch::allclose(p.grad(), fd, 1e-5, 1e-7)) << phi1 << "/" << phi2;
    }
    for (auto& p : gen->parameters()) {
      gen->zero_grad();
      generator_loss().backward();
      auto fd = finite_difference([&] { return generator_loss().item<double>(); }, p.data());
      EXPECT_TRUE(torch::allclose(p.grad(), fd, 1e-5, 1e-7)) << phi1 << "/" << phi2;
    }
  }
}

TEST_F(OtTest, GradientPenaltyOfALinearPotential) {
  // v(y) = w . y has gradient w everywhere: E ||grad v||^2 = |w|^2.
  auto w = torch::tensor({3.0, -4.0}, torch::kFloat64);
  auto y = torch::randn({10, 2}, torch::kFloat64).requires_grad_(true);
  auto v = y.matmul(w);
  EXPECT_NEAR(gradient_penalty(v, y).item<double>(), 25.0, 1e-12);
}

TEST_F(OtTest, ReferenceToyNetworkSizes) {
  // ResNet_FC(2, 128, 3) generator and potential of the reference code.
  auto gen = make_generator(2, default_generator_section());
  auto pot = make_potential(2, default_potential_section());
  EXPECT_EQ(count_parameters(*gen), 182658);
  EXPECT_EQ(count_parameters(*pot), 165633);
  auto out = gen->forward(torch::randn({4, 2}), torch::randn({4, 2}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(pot->forward(out).sizes(), (std::vector<int64_t>{4}));
  EXPECT_THROW(make_generator(2, Json{{"net", "nope"}}), ConfigError);
  EXPECT_THROW(make_generator(2, Json{{"net", "mlp"}, {"width", 0}, {"depth", 1}, {"nz", 1}}),
               ConfigError);
}
