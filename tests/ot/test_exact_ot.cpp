// Tests of exact OT (network simplex): POT's ot.emd2 as the reference, plan feasibility, closed
// forms, invariances and input checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "checks.h"
#include "python_oracle.h"
#include "uotflow/core/error.h"
#include "uotflow/ot/exact.h"
#include "uotflow/ot/sliced.h"

using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::PythonOracle;
using uotflow::testing::relative_error;

namespace {

const auto kF64 = torch::dtype(torch::kFloat64);

class ExactOtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!exact_ot_available()) {
      GTEST_SKIP() << "this build has no LEMON";
    }
    torch::manual_seed(0);
  }
};

// [N, M] |x_i - y_j|^p from the differences, the reference cost on the C++ side.
torch::Tensor pow_distances(const torch::Tensor& x, const torch::Tensor& y, double p) {
  auto d = (x.unsqueeze(1) - y.unsqueeze(0)).square().sum(-1);
  return p == 2.0 ? d : d.sqrt().pow(p);
}

// Both sides solve the LP exactly, so the optimal values agree up to float rounding: POT's double
// flows, our 2^-56 mass units and cost grid (exact.cpp), sums over N + M - 1 basic arcs. The
// largest difference seen on these instances is 1.1e-14 relative; 1e-6 leaves room for other
// BLAS / POT builds and is still far below the gap to any suboptimal basis here.
constexpr double kPotRelTol = 1e-6;

struct Instance {
  torch::Tensor x, y, a, b;  // x: [N, D], y: [M, D], a: [N], b: [M] (sum 1)
};

Instance random_instance(int64_t seed, int64_t n, int64_t m, int64_t d, bool uniform) {
  torch::manual_seed(seed);
  Instance s;
  s.x = torch::randn({n, d}, kF64);
  s.y = torch::randn({m, d}, kF64) * 1.5 + 0.5;
  s.a = uniform ? torch::ones({n}, kF64) : torch::rand({n}, kF64) + 0.05;
  s.b = uniform ? torch::ones({m}, kF64) : torch::rand({m}, kF64) + 0.05;
  s.a /= s.a.sum();
  s.b /= s.b.sum();
  return s;
}

// Our exact_ot on a generic cost and wasserstein_exact for p = 1, 2 against POT on the same data,
// in one Python run for all instances.
void expect_matches_pot(const std::vector<Instance>& instances) {
  PythonOracle py;
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto& s = instances[k];
    const auto key = std::to_string(k);
    py.put("x" + key, s.x);
    py.put("y" + key, s.y);
    py.put("a" + key, s.a);
    py.put("b" + key, s.b);
    py.put("C" + key, pow_distances(s.x, s.y, 2.0));
  }
  py.put("count", torch::tensor({static_cast<double>(instances.size())}, kF64));
  py.run(
      "import ot\n"
      "for k in range(int(load('count')[0])):\n"
      "    x, y, a, b, C = (load(name + str(k)) for name in ('x', 'y', 'a', 'b', 'C'))\n"
      "    dist = ot.dist(x, y, metric='euclidean')\n"
      "    save('emd' + str(k), [ot.emd2(a, b, C, numItermax=10**8),\n"
      "                          ot.emd2(a, b, dist, numItermax=10**8),\n"
      "                          ot.emd2(a, b, dist ** 2, numItermax=10**8)])\n");
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto& s = instances[k];
    const auto ref = py.get("emd" + std::to_string(k));
    const std::string what =
        "instance " + std::to_string(k) + ": N = " + std::to_string(s.x.size(0)) +
        ", M = " + std::to_string(s.y.size(0)) + ", D = " + std::to_string(s.x.size(1));
    const double cost = exact_ot(s.a, s.b, pow_distances(s.x, s.y, 2.0)).cost;
    EXPECT_LT(relative_error(cost, ref[0].item<double>()), kPotRelTol) << what;
    const double w1 = wasserstein_exact(s.x, s.y, 1.0, s.a, s.b);
    EXPECT_LT(relative_error(w1, ref[1].item<double>()), kPotRelTol) << what;
    const double w2 = wasserstein_exact(s.x, s.y, 2.0, s.a, s.b);
    EXPECT_LT(relative_error(w2 * w2, ref[2].item<double>()), kPotRelTol) << what;
  }
}

}  // namespace

TEST_F(ExactOtTest, MatchesPotOnRandomInstances) {
  std::vector<Instance> instances;
  for (int64_t seed : {1, 2, 3}) {
    for (int64_t d : {1, 2, 5}) {
      for (bool uniform : {true, false}) {
        instances.push_back(random_instance(seed * 100 + d, 40, 40, d, uniform));
        instances.push_back(random_instance(seed * 100 + d, 37, 61, d, uniform));
      }
    }
  }
  expect_matches_pot(instances);
}

TEST_F(ExactOtTest, MatchesPotInHighDimension) {
  expect_matches_pot(
      {random_instance(7, 12, 9, 1000, true), random_instance(8, 15, 20, 1000, false)});
}

// A cost that is no distance at all (random, with ties), against POT.
TEST_F(ExactOtTest, MatchesPotOnArbitraryCosts) {
  PythonOracle py;
  const auto a = torch::rand({50}, kF64);
  const auto b = torch::rand({70}, kF64);
  const auto cost = torch::randint(0, 5, {50, 70}, kF64) + torch::rand({50, 70}, kF64) * 1e-3;
  py.put("a", a / a.sum());
  py.put("b", b / b.sum());
  py.put("C", cost);
  py.run("import ot\nsave('emd', [ot.emd2(load('a'), load('b'), load('C'))])");
  // Unnormalised weights: exact_ot normalises them itself.
  const double reference = py.get("emd")[0].item<double>();
  EXPECT_LT(relative_error(exact_ot(a, b, cost).cost, reference), kPotRelTol);
  // Shifting every cost shifts the optimum by the same amount, negative costs included.
  EXPECT_LT(relative_error(exact_ot(a, b, cost - 10.0).cost, reference - 10.0), kPotRelTol);
}

TEST_F(ExactOtTest, PlanIsFeasibleAndAttainsTheCost) {
  for (bool uniform : {true, false}) {
    const auto s = random_instance(11, 60, 45, 3, uniform);
    const auto cost = pow_distances(s.x, s.y, 2.0);
    const auto result = exact_ot(s.a * 3.0, s.b * 0.5, cost, /*return_plan=*/true);
    ASSERT_TRUE(result.plan.defined());
    ASSERT_EQ(result.plan.sizes(), cost.sizes());
    EXPECT_EQ(result.plan.scalar_type(), torch::kFloat64);
    EXPECT_GE(result.plan.min().item<double>(), 0.0);
    EXPECT_LT((result.plan.sum(1) - s.a).abs().max().item<double>(), 1e-9);
    EXPECT_LT((result.plan.sum(0) - s.b).abs().max().item<double>(), 1e-9);
    EXPECT_LT(relative_error((result.plan * cost).sum().item<double>(), result.cost), 1e-12);
    // A basic solution: at most N + M - 1 positive entries.
    EXPECT_LE(result.plan.gt(0).sum().item<int64_t>(), 60 + 45 - 1);
  }
  EXPECT_FALSE(exact_ot(torch::ones({3}), torch::ones({2}), torch::rand({3, 2})).plan.defined());
}

TEST_F(ExactOtTest, IdenticalSetsAreAtDistanceZero) {
  const auto x = torch::randn({80, 3}, kF64);
  const auto a = torch::rand({80}, kF64);
  EXPECT_NEAR(wasserstein_exact(x, x, 2.0), 0.0, 1e-12);
  EXPECT_NEAR(wasserstein_exact(x, x, 1.0, a, a * 7.0), 0.0, 1e-12);
  // The same set in another order.
  const auto perm = torch::randperm(80);
  EXPECT_NEAR(wasserstein_exact(x, x.index_select(0, perm), 1.5, a, a.index_select(0, perm)), 0.0,
              1e-12);
}

// Everything must move to the one point: W_p^p = sum_j b_j |x0 - y_j|^p.
TEST_F(ExactOtTest, OnePointAgainstManyIsTheWeightedMean) {
  const auto x0 = torch::randn({1, 4}, kF64);
  const auto y = torch::randn({30, 4}, kF64);
  const auto b = torch::rand({30}, kF64);
  for (double p : {1.0, 2.0, 3.0}) {
    const auto dist = (y - x0).norm(2, 1);
    const double expected =
        std::pow((dist.pow(p) * b).sum().item<double>() / b.sum().item<double>(), 1.0 / p);
    EXPECT_NEAR(wasserstein_exact(x0, y, p, {}, b), expected, 1e-12 * expected) << "p = " << p;
    EXPECT_NEAR(wasserstein_exact(y, x0, p, b, {}), expected, 1e-12 * expected) << "p = " << p;
  }
  EXPECT_NEAR(wasserstein_exact(x0, x0 + 2.0, 2.0), 4.0, 1e-12);  // |(2, 2, 2, 2)|
}

// Duplicated points act as one point with their weights added.
TEST_F(ExactOtTest, DuplicatedPointsAddTheirWeights) {
  const auto x = torch::randn({20, 2}, kF64);
  const auto y = torch::randn({25, 2}, kF64);
  const auto doubled = torch::cat({x, x.narrow(0, 0, 5)});  // the first 5 points twice
  auto merged_weights = torch::ones({20}, kF64);
  merged_weights.narrow(0, 0, 5).fill_(2.0);
  for (double p : {1.0, 2.0}) {
    EXPECT_NEAR(wasserstein_exact(doubled, y, p), wasserstein_exact(x, y, p, merged_weights),
                1e-12);
  }
  EXPECT_NEAR(wasserstein_exact(torch::cat({x, x}), x, 2.0), 0.0, 1e-12);
}

TEST_F(ExactOtTest, ScalesLinearlyWithThePoints) {
  const auto s = random_instance(5, 50, 40, 2, false);
  for (double p : {1.0, 2.0}) {
    const double w = wasserstein_exact(s.x, s.y, p, s.a, s.b);
    for (double scale : {1e3, 1e-3}) {
      const double scaled = wasserstein_exact(s.x * scale, s.y * scale, p, s.a, s.b);
      EXPECT_LT(relative_error(scaled, scale * w), 1e-9) << "p = " << p << ", scale " << scale;
    }
    // Far from the origin: differences, not |x|^2 + |y|^2 - 2 x.y, keep the small distances.
    EXPECT_LT(relative_error(wasserstein_exact(s.x + 1e6, s.y + 1e6, p, s.a, s.b), w), 1e-6);
  }
}

// On the line W_p^p is the integral of |F^-1 - G^-1|^p (wasserstein_1d_pp). p = 1 there is highly
// degenerate: with double costs the simplex cycled on it forever.
TEST_F(ExactOtTest, OneDimensionMatchesTheQuantileFormula) {
  for (double p : {1.0, 2.0, 3.0}) {
    const auto u = torch::randn({300}, kF64);
    const auto v = torch::randn({300}, kF64) * 2.0 + 1.0;
    const double expected = wasserstein_1d_pp(u, v, p).item<double>();
    const double w = wasserstein_exact(u.unsqueeze(1), v.unsqueeze(1), p);
    EXPECT_LT(relative_error(std::pow(w, p), expected), 1e-9) << "p = " << p;
  }
  // Weighted, N != M.
  const auto u = torch::randn({70}, kF64);
  const auto v = torch::randn({110}, kF64);
  const auto a = torch::rand({70}, kF64);
  const auto b = torch::rand({110}, kF64);
  const double expected = wasserstein_1d_pp(u, v, 2.0, a, b).item<double>();
  const double w = wasserstein_exact(u.unsqueeze(1), v.unsqueeze(1), 2.0, a, b);
  EXPECT_LT(relative_error(w * w, expected), 1e-9);
}

// Points without mass are left out of the problem and get empty rows / columns in the plan.
TEST_F(ExactOtTest, ZeroWeightPointsCarryNoMass) {
  const auto s = random_instance(9, 30, 25, 2, false);
  auto a = s.a.clone();
  auto b = s.b.clone();
  a.index_fill_(0, torch::tensor({0, 7, 29}), 0.0);
  b.index_fill_(0, torch::tensor({3, 4}), 0.0);
  const auto cost = pow_distances(s.x, s.y, 2.0);
  const auto result = exact_ot(a, b, cost, /*return_plan=*/true);
  for (int64_t i : {0, 7, 29}) {
    EXPECT_EQ(result.plan[i].abs().sum().item<double>(), 0.0) << "row " << i;
  }
  for (int64_t j : {3, 4}) {
    EXPECT_EQ(result.plan.select(1, j).abs().sum().item<double>(), 0.0) << "column " << j;
  }
  EXPECT_LT((result.plan.sum(1) - a / a.sum()).abs().max().item<double>(), 1e-9);
  EXPECT_LT((result.plan.sum(0) - b / b.sum()).abs().max().item<double>(), 1e-9);
  // The same as solving without those points, and as POT with the zeros in.
  const auto keep_a = a.nonzero().squeeze(1);
  const auto keep_b = b.nonzero().squeeze(1);
  const double reduced = exact_ot(a.index_select(0, keep_a), b.index_select(0, keep_b),
                                  cost.index_select(0, keep_a).index_select(1, keep_b))
                             .cost;
  EXPECT_LT(relative_error(result.cost, reduced), 1e-12);
  PythonOracle py;
  py.put("a", a / a.sum());
  py.put("b", b / b.sum());
  py.put("C", cost);
  py.run("import ot\nsave('emd', [ot.emd2(load('a'), load('b'), load('C'))])");
  EXPECT_LT(relative_error(result.cost, py.get("emd")[0].item<double>()), kPotRelTol);
  // Only one point with mass on a side: everything goes there.
  auto single = torch::zeros({30}, kF64);
  single[4] = 2.5;
  const auto one = exact_ot(single, b, cost, /*return_plan=*/true);
  EXPECT_LT(relative_error(one.cost, (cost[4] * b).sum().item<double>() / b.sum().item<double>()),
            1e-12);
}

// Float32, non-contiguous and integer inputs are converted to contiguous CPU float64.
TEST_F(ExactOtTest, AcceptsAnyDtypeAndLayout) {
  const auto x = torch::randn({40, 3}, kF64);
  const auto y = torch::randn({3, 35}, kF64).t();  // non-contiguous [35, 3]
  const double reference = wasserstein_exact(x, y.contiguous(), 2.0);
  EXPECT_LT(relative_error(wasserstein_exact(x, y, 2.0), reference), 1e-15);
  const auto x32 = x.to(torch::kFloat32);
  const auto y32 = y.to(torch::kFloat32);
  EXPECT_LT(
      relative_error(wasserstein_exact(x32, y32, 2.0),
                     wasserstein_exact(x32.to(torch::kFloat64), y32.to(torch::kFloat64), 2.0)),
      1e-15);
  const auto cost = torch::randint(0, 10, {4, 5}, torch::kInt64);
  EXPECT_NEAR(
      exact_ot(torch::ones({4}, torch::kInt32), torch::ones({5}, torch::kFloat32), cost).cost,
      exact_ot(torch::ones({4}, kF64), torch::ones({5}, kF64), cost.to(torch::kFloat64)).cost,
      1e-15);
  if (torch::cuda::is_available()) {
    EXPECT_LT(relative_error(wasserstein_exact(x.cuda(), y.cuda(), 2.0), reference), 1e-15);
  }
}

TEST_F(ExactOtTest, BadInputsRaiseOneLineConfigErrors) {
  const auto a = torch::ones({3}, kF64);
  const auto b = torch::ones({4}, kF64);
  const auto cost = torch::rand({3, 4}, kF64);
  auto with = [](torch::Tensor t, int64_t i, double value) {
    t = t.clone();
    t.view(-1)[i] = value;
    return t;
  };
  expect_config_error([&] { exact_ot(torch::ones({3, 1}), b, cost); }, "2-D a");
  expect_config_error([&] { exact_ot(a, torch::ones({0}), torch::rand({3, 0})); }, "empty b");
  expect_config_error([&] { exact_ot(a, b, {}); }, "undefined cost");
  expect_config_error([&] { exact_ot(a, b, torch::rand({4, 3})); }, "transposed cost");
  expect_config_error([&] { exact_ot(a, b, torch::rand({3, 4, 1})); }, "3-D cost");
  expect_config_error([&] { exact_ot(with(a, 1, -0.5), b, cost); }, "negative weight");
  expect_config_error([&] { exact_ot(a, with(b, 2, NAN), cost); }, "NaN weight");
  expect_config_error([&] { exact_ot(with(a, 0, INFINITY), b, cost); }, "infinite weight");
  expect_config_error([&] { exact_ot(torch::zeros({3}), b, cost); }, "all-zero a");
  expect_config_error([&] { exact_ot(a, b, with(cost, 5, NAN)); }, "NaN cost");
  expect_config_error([&] { exact_ot(a, b, with(cost, 0, -INFINITY)); }, "infinite cost");
  expect_config_error([&] { exact_ot(a, b, with(with(cost, 0, -1e308), 1, 1e308)); }, "cost range");
  const auto x = torch::randn({3, 2});
  const auto y = torch::randn({4, 2});
  expect_config_error([&] { wasserstein_exact(torch::randn({3}), y); }, "1-D x");
  expect_config_error([&] { wasserstein_exact(x, torch::randn({4, 3})); }, "dimension mismatch");
  expect_config_error([&] { wasserstein_exact(x, torch::randn({0, 2})); }, "empty y");
  expect_config_error([&] { wasserstein_exact(x, y, 0.5); }, "p < 1");
  expect_config_error([&] { wasserstein_exact(x, y, INFINITY); }, "infinite p");
  expect_config_error([&] { wasserstein_exact(with(x, 3, NAN), y); }, "NaN point");
  expect_config_error([&] { wasserstein_exact(x, y, 2.0, torch::ones({4})); },
                      "a of the wrong size");
  expect_config_error([&] { wasserstein_exact(x, y, 2.0, a, with(b, 0, -1.0)); }, "negative b");
}

// wasserstein_exact on more than 2^20 pairs in low dimension grows a sparse arc set by pricing
// (exact.cpp); it must reach the same optimum as exact_ot on the complete graph, and as POT.
TEST_F(ExactOtTest, MultiscaleMatchesTheCompleteGraph) {
  const int64_t n = 1100;
  const int64_t m = 1000;
  PythonOracle py;
  std::vector<double> values;  // W_p^p, multiscale
  for (int64_t d : {2, 3}) {
    for (double p : {1.0, 2.0}) {
      const auto x = torch::randn({n, d}, kF64);
      const auto y = torch::randn({m, d}, kF64) * 0.5 + 1.0;
      auto a = torch::rand({n}, kF64);
      const auto b = torch::rand({m}, kF64);
      a.narrow(0, 0, 20).zero_();  // also through the compaction of zero weights
      const auto cost = pow_distances(x, y, p);
      values.push_back(std::pow(wasserstein_exact(x, y, p, a, b), p));
      EXPECT_LT(relative_error(values.back(), exact_ot(a, b, cost).cost), 1e-12)
          << "d = " << d << ", p = " << p;
      const auto key = std::to_string(values.size() - 1);
      py.put("a" + key, a / a.sum());
      py.put("b" + key, b / b.sum());
      py.put("C" + key, cost);
    }
  }
  py.put("count", torch::tensor({static_cast<double>(values.size())}, kF64));
  py.run(
      "import ot\n"
      "for k in map(str, range(int(load('count')[0]))):\n"
      "    a, b, C = load('a' + k), load('b' + k), load('C' + k)\n"
      "    save('emd' + k, [ot.emd2(a, b, C, numItermax=10**8)])\n");
  for (size_t k = 0; k < values.size(); ++k) {
    const double reference = py.get("emd" + std::to_string(k))[0].item<double>();
    EXPECT_LT(relative_error(values[k], reference), kPotRelTol) << "instance " << k;
  }
}

// Degenerate cases on the multiscale path: identical sets, duplicates, the line (W1 there has many
// optimal plans).
TEST_F(ExactOtTest, MultiscaleDegenerateCases) {
  const auto x = torch::randn({1100, 2}, kF64);
  EXPECT_NEAR(wasserstein_exact(x, x.flip(0), 2.0), 0.0, 1e-12);
  const auto doubled = torch::cat({x, x});
  EXPECT_NEAR(wasserstein_exact(doubled, x, 1.0), 0.0, 1e-12);
  const auto u = torch::randn({1100}, kF64);
  const auto v = torch::randn({1100}, kF64) + 0.5;
  for (double p : {1.0, 2.0}) {
    const double expected = wasserstein_1d_pp(u, v, p).item<double>();
    const double w = wasserstein_exact(u.unsqueeze(1), v.unsqueeze(1), p);
    EXPECT_LT(relative_error(std::pow(w, p), expected), 1e-9) << "p = " << p;
  }
}

// The largest size the w1 / w2 metrics accept, on the complete graph (with the plan) and
// multiscale; about 8 s here, so it stays in `make test`.
TEST_F(ExactOtTest, FiveThousandPoints) {
  const int64_t n = 5000;
  const auto x = torch::randn({n, 2}, kF64);
  const auto y = torch::randn({n, 2}, kF64) + 1.0;
  const auto cost = pow_distances(x, y, 2.0);
  const auto result = exact_ot(torch::ones({n}), torch::ones({n}), cost, /*return_plan=*/true);
  EXPECT_LT((result.plan.sum(1) - 1.0 / n).abs().max().item<double>(), 1e-9);
  EXPECT_LT((result.plan.sum(0) - 1.0 / n).abs().max().item<double>(), 1e-9);
  EXPECT_GE(result.plan.min().item<double>(), 0.0);
  EXPECT_LT(relative_error((result.plan * cost).sum().item<double>(), result.cost), 1e-12);
  // Two Gaussians with the same covariance: W2^2 = |m1 - m2|^2 = 2, up to sampling error.
  EXPECT_NEAR(result.cost, 2.0, 0.2);
  const double w = wasserstein_exact(x, y, 2.0);
  EXPECT_LT(relative_error(w * w, result.cost), 1e-12);
}
