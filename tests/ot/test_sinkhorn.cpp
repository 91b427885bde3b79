// Tests of entropic OT (Sinkhorn, balanced and unbalanced) and the Sinkhorn divergence: POT as the
// reference, primal-dual consistency, closed forms, invariances and input checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "checks.h"
#include "python_oracle.h"
#include "uotflow/core/error.h"
#include "uotflow/ot/sinkhorn.h"

using namespace uotflow;
using uotflow::testing::expect_config_error;
using uotflow::testing::relative_error;

namespace {

const auto kDouble64 = torch::dtype(torch::kFloat64);

class SinkhornTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
  }
};

double item(const torch::Tensor& t) {
  return t.item<double>();
}

double largest_abs(const torch::Tensor& t) {
  return item(t.abs().max());
}

// Converged to the rounding floor, with the plan.
SinkhornOptions tight(double epsilon, double rho = -1.0) {
  SinkhornOptions o;
  o.epsilon = epsilon;
  o.rho = rho;
  o.tolerance = 1e-13;
  o.max_iter = 100000;
  o.return_plan = true;
  return o;
}

// Generalised KL(p | q) = sum p log(p / q) - p + q, with 0 log 0 = 0.
double kl(const torch::Tensor& p, const torch::Tensor& q) {
  const auto log_ratio = torch::where(p > 0, (p / q).log(), torch::zeros_like(p));
  return item((p * log_ratio - p + q).sum());
}

// The primal objective of a plan: <P, C> + eps KL(P | a x b) [+ rho KL(P 1 | a) + rho KL(P^T 1 |
// b)].
double primal(const torch::Tensor& plan, const torch::Tensor& cost, const torch::Tensor& a,
              const torch::Tensor& b, double eps, double rho) {
  double value = item((plan * cost).sum()) + eps * kl(plan, a.unsqueeze(1) * b.unsqueeze(0));
  if (rho > 0) {
    value += rho * (kl(plan.sum(1), a) + kl(plan.sum(0), b));
  }
  return value;
}

struct SinkhornInstance {
  torch::Tensor x, y, a, b;  // x: [N, D], y: [M, D], a: [N], b: [M]
  torch::Tensor cost;        // [N, M]
  double eps = 0.0;
};

// Random weights of total mass a_mass and b_mass; epsilon relative to the mean cost.
SinkhornInstance random_instance(int64_t n, int64_t m, int64_t d, double relative_eps,
                                 double a_mass = 1.0, double b_mass = 1.0) {
  SinkhornInstance s;
  s.x = torch::randn({n, d}, kDouble64);
  s.y = torch::randn({m, d}, kDouble64) * 1.5 + 0.5;
  s.a = torch::rand({n}, kDouble64) + 0.1;
  s.b = torch::rand({m}, kDouble64) + 0.1;
  s.a *= a_mass / s.a.sum();
  s.b *= b_mass / s.b.sum();
  s.cost = squared_euclidean_cost(s.x, s.y);
  s.eps = relative_eps * item(s.cost.mean());
  return s;
}

std::string describe(const SinkhornInstance& s) {
  return "N = " + std::to_string(s.x.size(0)) + ", M = " + std::to_string(s.y.size(0)) +
         ", D = " + std::to_string(s.x.size(1)) + ", eps = " + std::to_string(s.eps);
}

void put_instances(const uotflow::testing::PythonOracle& py,
                   const std::vector<SinkhornInstance>& instances) {
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto key = std::to_string(k);
    const auto& s = instances[k];
    py.put("a" + key, s.a);
    py.put("b" + key, s.b);
    py.put("C" + key, s.cost);
    py.put("eps" + key, torch::full({1}, s.eps, kDouble64));
  }
}

}  // namespace

// The direct low-dimensional kernel (D <= 16 on the CPU) and the GEMM expansion (larger D) against
// the differences; batched and unbatched, float64 and float32, also far from the origin.
TEST_F(SinkhornTest, CostMatchesTheDifferences) {
  for (int64_t d : {1, 2, 16, 17, 300}) {
    for (double offset : {0.0, 1e3}) {
      const auto x = torch::randn({3, 37, d}, kDouble64) + offset;
      const auto y = torch::randn({3, 29, d}, kDouble64) * 2.0 + offset;
      const auto ref = (x.unsqueeze(2) - y.unsqueeze(1)).square().sum(-1);
      const auto c = squared_euclidean_cost(x, y);
      EXPECT_LT(largest_abs(c - ref) / largest_abs(ref), 1e-12)
          << "d " << d << ", offset " << offset;
      EXPECT_LT(largest_abs(squared_euclidean_cost(x[1], y[1]) - ref[1]) / largest_abs(ref), 1e-12);
      // float32: against the differences of the rounded points.
      const auto x32 = x.to(torch::kFloat32);
      const auto y32 = y.to(torch::kFloat32);
      const auto ref32 =
          (x32.to(torch::kFloat64).unsqueeze(2) - y32.to(torch::kFloat64).unsqueeze(1))
              .square()
              .sum(-1);
      const auto c32 = squared_euclidean_cost(x32, y32).to(torch::kFloat64);
      EXPECT_LT(largest_abs(c32 - ref32) / largest_abs(ref32), 1e-5)
          << "d " << d << ", offset " << offset;
      EXPECT_GE(item(squared_euclidean_cost(x, x).min()), 0.0);
    }
  }
}

// POT's log-domain Sinkhorn run to its rounding floor: same plan, same <P, C>; our dual value
// equals the primal objective of POT's plan. n != m, random weights, d from 1 to 1000.
TEST_F(SinkhornTest, BalancedMatchesPot) {
  std::vector<SinkhornInstance> instances = {
      random_instance(30, 45, 3, 0.1), random_instance(64, 20, 2, 0.02),
      random_instance(25, 33, 1, 0.05), random_instance(20, 24, 1000, 0.1)};
  uotflow::testing::PythonOracle py;
  put_instances(py, instances);
  py.run(
      "import ot\n"
      "for k in range(" +
      std::to_string(instances.size()) +
      "):\n"
      "    a, b, C, eps = (load(n + str(k)) for n in ('a', 'b', 'C', 'eps'))\n"
      "    kw = dict(method='sinkhorn_log', stopThr=1e-13, numItermax=100000)\n"
      "    save('P' + str(k), ot.sinkhorn(a, b, C, eps[0], **kw))\n"
      "    save('w' + str(k), [ot.sinkhorn2(a, b, C, eps[0], **kw)])\n");
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto& s = instances[k];
    const auto key = std::to_string(k);
    const auto pot_plan = py.get("P" + key);
    const double pot_cost = item(py.get("w" + key)[0]);
    const auto r = sinkhorn(s.cost, s.a, s.b, tight(s.eps));
    EXPECT_LT(relative_error(item(r.transport_cost), pot_cost), 1e-6) << describe(s);
    EXPECT_LT(largest_abs(r.plan - pot_plan) / largest_abs(pot_plan), 1e-6) << describe(s);
    const double pot_primal = primal(pot_plan, s.cost, s.a, s.b, s.eps, -1.0);
    EXPECT_LT(relative_error(item(r.value), pot_primal), 1e-6) << describe(s);
    EXPECT_LT(relative_error(item(r.value), primal(r.plan, s.cost, s.a, s.b, s.eps, -1.0)), 1e-9)
        << describe(s);
    EXPECT_GE(item(r.value), 0.0);
    EXPECT_LT(largest_abs(r.plan.sum(1) - s.a), 1e-10) << describe(s);
    EXPECT_LT(largest_abs(r.plan.sum(0) - s.b), 1e-10) << describe(s);
    EXPECT_LT(r.marginal_error, 1e-12);
    // The plan is the Gibbs form of the returned potentials.
    const auto gibbs = s.a.unsqueeze(1) * s.b.unsqueeze(0) *
                       ((r.f.unsqueeze(1) + r.g.unsqueeze(0) - s.cost) / s.eps).exp();
    EXPECT_LT(largest_abs(gibbs - r.plan) / largest_abs(r.plan), 1e-9) << describe(s);
  }
}

// POT's unbalanced Sinkhorn uses the entropy reference 1 instead of a x b: with the cost
// C - eps (log a_i + log b_j) it solves our problem, so the plans agree and sinkhorn_unbalanced2
// returns <P, C - eps (log a + log b)>. Masses differ (1.4 vs 0.6) and are kept.
TEST_F(SinkhornTest, UnbalancedMatchesPot) {
  std::vector<SinkhornInstance> instances = {random_instance(30, 45, 3, 0.1, 1.4, 0.6),
                                             random_instance(40, 25, 2, 0.05, 0.5, 2.0)};
  const std::vector<double> relative_rho = {0.3, 3.0};
  uotflow::testing::PythonOracle py;
  put_instances(py, instances);
  py.put("rho", torch::tensor(relative_rho, kDouble64));
  py.run(
      "import ot\n"
      "rho = load('rho')\n"
      "for k in range(" +
      std::to_string(instances.size()) +
      "):\n"
      "    a, b, C, eps = (load(n + str(k)) for n in ('a', 'b', 'C', 'eps'))\n"
      "    M = C - eps[0] * (np.log(a)[:, None] + np.log(b)[None, :])\n"
      "    for r in range(len(rho)):\n"
      "        reg_m = rho[r] * C.mean()\n"
      "        kw = dict(stopThr=1e-14, numItermax=20000)\n"
      "        P = ot.unbalanced.sinkhorn_unbalanced(a, b, M, eps[0], reg_m, **kw)\n"
      "        w = ot.unbalanced.sinkhorn_unbalanced2(a, b, M, eps[0], reg_m, **kw)\n"
      "        save('P%d_%d' % (k, r), P)\n"
      "        save('w%d_%d' % (k, r), [float(np.sum(P * C)), float(np.ravel(w)[0])])\n");
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto& s = instances[k];
    for (size_t j = 0; j < relative_rho.size(); ++j) {
      const auto key = std::to_string(k) + "_" + std::to_string(j);
      const double rho = relative_rho[j] * item(s.cost.mean());
      const auto pot_plan = py.get("P" + key);
      const auto pot = py.get("w" + key);
      const auto r = sinkhorn(s.cost, s.a, s.b, tight(s.eps, rho));
      const std::string what = describe(s) + ", rho = " + std::to_string(rho);
      EXPECT_LT(largest_abs(r.plan - pot_plan) / largest_abs(pot_plan), 1e-7) << what;
      EXPECT_LT(relative_error(item(r.transport_cost), item(pot[0])), 1e-7) << what;
      const auto shifted = s.cost - s.eps * (s.a.log().unsqueeze(1) + s.b.log().unsqueeze(0));
      EXPECT_LT(relative_error(item((r.plan * shifted).sum()), item(pot[1])), 1e-7) << what;
      // Dual value = primal objective at the optimum, and > 0.
      EXPECT_LT(relative_error(item(r.value), primal(r.plan, s.cost, s.a, s.b, s.eps, rho)), 1e-9)
          << what;
      EXPECT_GT(item(r.value), 0.0) << what;
      // First-order conditions: P 1 = a exp(-f / rho), P^T 1 = b exp(-g / rho).
      EXPECT_LT(largest_abs(r.plan.sum(1) - s.a * (-r.f / rho).exp()), 1e-10) << what;
      EXPECT_LT(largest_abs(r.plan.sum(0) - s.b * (-r.g / rho).exp()), 1e-10) << what;
    }
  }
}

TEST_F(SinkhornTest, LargeRhoApproachesBalanced) {
  const auto s = random_instance(30, 40, 2, 0.1);
  const auto balanced = sinkhorn(s.cost, s.a, s.b, tight(s.eps));
  double previous = INFINITY;
  for (double rho : {1e1, 1e3, 1e5}) {
    const auto r = sinkhorn(s.cost, s.a, s.b, tight(s.eps, rho));
    const double gap = largest_abs(r.plan - balanced.plan);
    EXPECT_LT(gap, previous) << "rho = " << rho;
    previous = gap;
  }
  const auto r = sinkhorn(s.cost, s.a, s.b, tight(s.eps, 1e5));
  EXPECT_LT(relative_error(item(r.transport_cost), item(balanced.transport_cost)), 1e-4);
  EXPECT_LT(relative_error(item(r.value), item(balanced.value)), 1e-4);
}

// epsilon = 1e-3 x mean cost (costs up to 1e4 epsilon): finite everywhere, close to exact OT;
// also without annealing, in float32, unbalanced, and with clouds of very different scales.
TEST_F(SinkhornTest, SmallEpsilonIsStableAndApproachesExactOt) {
  std::vector<SinkhornInstance> instances = {random_instance(150, 120, 2, 1e-3)};
  SinkhornInstance far;  // tiny cloud against a wide one 1e3 away: costs ~1e6, epsilon 1e-2
  far.x = torch::randn({60, 2}, kDouble64) * 1e-3;
  far.y = torch::randn({50, 2}, kDouble64) * 10.0 + 1e3;
  far.a = torch::full({60}, 1.0 / 60, kDouble64);
  far.b = torch::full({50}, 1.0 / 50, kDouble64);
  far.cost = squared_euclidean_cost(far.x, far.y);
  far.eps = 1e-2;
  instances.push_back(far);
  uotflow::testing::PythonOracle py;
  put_instances(py, instances);
  py.run(
      "import ot\n"
      "for k in range(" +
      std::to_string(instances.size()) +
      "):\n"
      "    a, b, C = (load(n + str(k)) for n in ('a', 'b', 'C'))\n"
      "    save('emd' + str(k), [ot.emd2(a, b, C, numItermax=10**8)])\n");
  auto expect_finite = [](const SinkhornResult& r, const std::string& what) {
    for (const auto& t : {r.transport_cost, r.value, r.f, r.g}) {
      EXPECT_TRUE(t.isfinite().all().item<bool>()) << what;
    }
    if (r.plan.defined()) {
      EXPECT_TRUE(r.plan.isfinite().all().item<bool>()) << what;
    }
  };
  for (size_t k = 0; k < instances.size(); ++k) {
    const auto& s = instances[k];
    const double exact = item(py.get("emd" + std::to_string(k))[0]);
    auto options = tight(s.eps);
    options.tolerance = 1e-9;
    const auto r = sinkhorn(s.cost, s.a, s.b, options);
    expect_finite(r, describe(s));
    // The entropic bias of <P, C> is O(eps log(N M)) at most.
    EXPECT_LT(std::abs(item(r.transport_cost) - exact), 10 * s.eps) << describe(s);
    EXPECT_LT(r.marginal_error, 1e-9) << describe(s);
    EXPECT_LT(largest_abs(r.plan.sum(0) - s.b), 1e-12) << describe(s);

    auto cold = options;  // no annealing: thousands of iterations, must stay finite
    cold.epsilon_scaling = 0.0;
    cold.max_iter = 300;
    expect_finite(sinkhorn(s.cost, s.a, s.b, cold), describe(s) + ", no annealing");
    auto single = options;
    single.tolerance = 1e-6;
    const auto r32 = sinkhorn(s.cost.to(torch::kFloat32), s.a.to(torch::kFloat32),
                              s.b.to(torch::kFloat32), single);
    expect_finite(r32, describe(s) + ", float32");
    EXPECT_LT(std::abs(item(r32.transport_cost) - exact), 10 * s.eps + 1e-5 * exact) << describe(s);
    cold.tolerance = 1e-6;
    expect_finite(sinkhorn(s.cost.to(torch::kFloat32), s.a.to(torch::kFloat32),
                           s.b.to(torch::kFloat32), cold),
                  describe(s) + ", float32 without annealing");
    const auto ru = sinkhorn(s.cost, s.a, s.b, tight(s.eps, 1e-2 * item(s.cost.mean())));
    expect_finite(ru, describe(s) + ", unbalanced");
  }
}

// A target point far from everything (cost ~900 against ~1 elsewhere) with small epsilon: its
// kernel column underflows. Unbalanced, the optimum sends it no mass; the answer must still be
// finite and optimal, certified by a zero duality gap (dual value = primal objective of the plan).
TEST_F(SinkhornTest, UnderflowingRowsAndColumnsStayExact) {
  const auto x = torch::randn({50, 2}, kDouble64);
  auto y = torch::randn({40, 2}, kDouble64);
  y[0][0] = 30.0;
  const auto cost = squared_euclidean_cost(x, y);
  const auto a = torch::full({50}, 1.0 / 50, kDouble64);
  const auto b = torch::full({40}, 1.0 / 40, kDouble64);
  const double mean = item(cost.mean());
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double tol = dtype == torch::kFloat64 ? 1e-9 : 2e-4;
    for (double scaling : {0.5, 0.0}) {
      for (bool fused : {true, false}) {
        for (double rho : {1.0, -1.0}) {
          auto options = tight(rho > 0 ? 1e-3 * mean : 2e-2 * mean, rho);
          options.epsilon_scaling = scaling;
          options.fused_cpu_pass = fused;
          options.tolerance = dtype == torch::kFloat64 ? 1e-10 : 1e-6;
          const auto r = sinkhorn(cost.to(dtype), a.to(dtype), b.to(dtype), options);
          const std::string what = std::string(dtype == torch::kFloat64 ? "float64" : "float32") +
                                   ", scaling " + std::to_string(scaling) + ", fused " +
                                   std::to_string(fused) + ", rho " + std::to_string(rho);
          ASSERT_TRUE(r.plan.isfinite().all().item<bool>()) << what;
          ASSERT_TRUE(r.f.isfinite().all().item<bool>() && r.g.isfinite().all().item<bool>())
              << what;
          EXPECT_LT(r.iterations, options.max_iter) << what;
          const auto plan = r.plan.to(torch::kFloat64);
          const double gap = item(r.value) - primal(plan, cost, a, b, options.epsilon, rho);
          EXPECT_LT(std::abs(gap), tol * std::abs(item(r.value))) << what;
          if (rho > 0) {
            EXPECT_LT(item(plan.select(1, 0).sum()), 1e-30) << what << ": the outlier's mass";
          } else {
            EXPECT_NEAR(item(plan.select(1, 0).sum()), 1.0 / 40, 1e-6) << what;
          }
        }
      }
    }
  }
}

TEST_F(SinkhornTest, BatchEqualsOneCallPerElement) {
  const int64_t batch = 3;
  const auto x = torch::randn({batch, 20, 2}, kDouble64);
  const auto y = torch::randn({batch, 30, 2}, kDouble64) + 0.5;
  const auto a = torch::rand({batch, 20}, kDouble64) + 0.1;
  const auto b = torch::rand({batch, 30}, kDouble64) + 0.1;
  for (double rho : {-1.0, 2.0}) {
    for (bool fused : {true, false}) {
      auto options = tight(0.2, rho);
      options.fused_cpu_pass = fused;
      const auto r = sinkhorn_points(x, y, options, a, b);
      ASSERT_EQ(r.transport_cost.sizes(), torch::IntArrayRef({batch}));
      ASSERT_EQ(r.plan.sizes(), torch::IntArrayRef({batch, 20, 30}));
      for (int64_t k = 0; k < batch; ++k) {
        const auto one = sinkhorn_points(x[k], y[k], options, a[k], b[k]);
        const std::string what = "rho " + std::to_string(rho) + ", fused " + std::to_string(fused) +
                                 ", element " + std::to_string(k);
        EXPECT_NEAR(item(r.transport_cost[k]), item(one.transport_cost), 1e-10) << what;
        EXPECT_NEAR(item(r.value[k]), item(one.value), 1e-10) << what;
        EXPECT_LT(largest_abs(r.plan[k] - one.plan), 1e-10) << what;
        EXPECT_LT(largest_abs(r.f[k] - one.f), 1e-8) << what;
        EXPECT_LT(largest_abs(r.g[k] - one.g), 1e-8) << what;
      }
      // Weights shared by the batch: [N] and [M].
      const auto shared = sinkhorn_points(x, y, options, a[0], b[0]);
      const auto last = sinkhorn_points(x[2], y[2], options, a[0], b[0]);
      EXPECT_NEAR(item(shared.value[2]), item(last.value), 1e-10);
    }
  }
  // The generic torch path (other devices) and the fused CPU pass agree.
  auto generic = tight(0.2);
  generic.fused_cpu_pass = false;
  const auto r1 = sinkhorn_points(x, y, tight(0.2), a, b);
  const auto r2 = sinkhorn_points(x, y, generic, a, b);
  EXPECT_LT(largest_abs(r1.plan - r2.plan), 1e-12);
}

// Above 2^18 kernel entries the fused CPU pass splits the rows over threads.
TEST_F(SinkhornTest, ThreadedPassMatchesTheGenericPath) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  const auto s = random_instance(530, 500, 2, 0.05);
  for (double rho : {-1.0, 1.0}) {
    auto options = tight(s.eps, rho);
    options.tolerance = 0.0;  // the same 30 iterations on both paths
    options.max_iter = 30;
    const auto fused = sinkhorn(s.cost, s.a, s.b, options);
    options.fused_cpu_pass = false;
    const auto generic = sinkhorn(s.cost, s.a, s.b, options);
    EXPECT_LT(largest_abs(fused.plan - generic.plan) / largest_abs(generic.plan), 1e-12) << rho;
    EXPECT_LT(relative_error(item(fused.value), item(generic.value)), 1e-12) << rho;
  }
  torch::set_num_threads(threads);
}

TEST_F(SinkhornTest, Float32AgreesWithFloat64) {
  const auto s = random_instance(50, 40, 3, 0.05);
  const auto r64 = sinkhorn_points(s.x, s.y, tight(s.eps), s.a, s.b);
  for (bool fused : {true, false}) {
    auto options = tight(s.eps);
    options.fused_cpu_pass = fused;
    const auto r32 = sinkhorn_points(s.x.to(torch::kFloat32), s.y.to(torch::kFloat32), options,
                                     s.a.to(torch::kFloat32), s.b.to(torch::kFloat32));
    EXPECT_EQ(r32.transport_cost.scalar_type(), torch::kFloat32);
    EXPECT_EQ(r32.plan.scalar_type(), torch::kFloat32);
    EXPECT_LT(relative_error(item(r32.transport_cost), item(r64.transport_cost)), 1e-4);
    EXPECT_LT(relative_error(item(r32.value), item(r64.value)), 1e-4);
    EXPECT_LT(r32.iterations, options.max_iter) << "float32 stops at its rounding floor";
  }
}

TEST_F(SinkhornTest, DivergenceIsZeroForIdenticalSetsAndPositiveOtherwise) {
  const auto x = torch::randn({40, 2}, kDouble64);
  const auto a = torch::rand({40}, kDouble64) + 0.1;
  SinkhornOptions options;
  options.epsilon = 0.1;
  for (double rho : {-1.0, 1.0}) {
    options.rho = rho;
    EXPECT_EQ(item(sinkhorn_divergence(x, x.clone(), options)), 0.0) << "rho " << rho;
    EXPECT_EQ(item(sinkhorn_divergence(x, x, options, a, a)), 0.0) << "rho " << rho;
    EXPECT_EQ(item(sinkhorn_divergence(x.to(torch::kFloat32), x.to(torch::kFloat32), options)),
              0.0);
    // Same set in another order: zero up to the solver's tolerance.
    const auto perm = torch::randperm(40);
    EXPECT_NEAR(item(sinkhorn_divergence(x, x.index_select(0, perm), options)), 0.0, 1e-10);
    for (int trial = 0; trial < 4; ++trial) {
      const auto y = torch::randn({30, 2}, kDouble64) * (0.5 + trial) + 0.1 * trial;
      const auto b = torch::rand({30}, kDouble64) * (trial + 1);
      const double s_xy = item(sinkhorn_divergence(x, y, options, a, b));
      const double s_yx = item(sinkhorn_divergence(y, x, options, b, a));
      EXPECT_GT(s_xy, 0.0) << "rho " << rho << ", trial " << trial;
      EXPECT_NEAR(s_xy, s_yx, 1e-9 * std::abs(s_xy)) << "symmetry, rho " << rho;
      // Nearby sets: still >= 0.
      const auto near = x + 1e-3 * torch::randn_like(x);
      EXPECT_GE(item(sinkhorn_divergence(x, near, options, a, a)), 0.0) << "rho " << rho;
    }
  }
  // Balanced, squared Euclidean: a translation by t only shifts the potentials, so
  // S(x, x + t) = |t|^2 exactly, whatever epsilon.
  options.rho = -1.0;
  const auto t = torch::tensor({0.3, -0.2}, kDouble64);
  for (double eps : {0.01, 1.0}) {
    options.epsilon = eps;
    EXPECT_NEAR(item(sinkhorn_divergence(x, x + t, options, a, a)), 0.13, 1e-9) << eps;
  }
  // Batched: [B] values, identical pairs exactly 0.
  const auto xs = torch::randn({2, 10, 3}, kDouble64);
  auto ys = torch::randn({2, 12, 3}, kDouble64);
  const auto batched = sinkhorn_divergence(xs, xs, options);
  EXPECT_EQ(batched.sizes(), torch::IntArrayRef({2}));
  EXPECT_EQ(largest_abs(batched), 0.0);
  const auto apart = sinkhorn_divergence(xs, ys, options);
  EXPECT_NEAR(item(apart[1]), item(sinkhorn_divergence(xs[1], ys[1], options)), 1e-10);
}

// Unbalanced, different masses: the mass term eps (m(a) - m(b))^2 / 2 keeps S >= 0 and S is zero
// only for the same measure.
TEST_F(SinkhornTest, UnbalancedDivergenceAccountsForMass) {
  const auto x = torch::randn({25, 2}, kDouble64);
  const auto a = torch::full({25}, 1.0 / 25, kDouble64);
  SinkhornOptions options;
  options.epsilon = 0.1;
  options.rho = 1.0;
  for (double mass : {0.5, 0.9, 1.1, 3.0}) {
    const double s = item(sinkhorn_divergence(x, x, options, a, a * mass));
    EXPECT_GT(s, 0.0) << "mass " << mass;
  }
  const double s = item(sinkhorn_divergence(x, x, options, a, a));
  EXPECT_EQ(s, 0.0);
}

TEST_F(SinkhornTest, OnePointAndDuplicatedPoints) {
  // One point against many: the only plan is a x b, so <P, C> = sum_j b_j |x - y_j|^2 and the
  // entropy term is zero.
  const auto x = torch::randn({1, 3}, kDouble64);
  const auto y = torch::randn({7, 3}, kDouble64);
  const auto b = torch::rand({7}, kDouble64) + 0.1;
  const auto bn = b / b.sum();
  const double expected = item((bn * (y - x).square().sum(1)).sum());
  for (const auto& [p, q, wp, wq] :
       {std::tuple{x, y, torch::Tensor(), b}, std::tuple{y, x, b, torch::Tensor()}}) {
    const auto r = sinkhorn_points(p, q, tight(0.05), wp, wq);
    EXPECT_NEAR(item(r.transport_cost), expected, 1e-12);
    EXPECT_NEAR(item(r.value), expected, 1e-12);
  }
  const auto single = sinkhorn_points(x, x + 1.0, tight(0.05));
  EXPECT_NEAR(item(single.transport_cost), 3.0, 1e-12);
  EXPECT_NEAR(item(single.value), 3.0, 1e-12);

  // A point given twice with its weight split is the same measure.
  const auto xs = torch::randn({10, 2}, kDouble64);
  const auto ys = torch::randn({12, 2}, kDouble64);
  const auto a = torch::rand({10}, kDouble64) + 0.1;
  const auto doubled = torch::cat({xs, xs.narrow(0, 0, 3)});
  const auto split =
      torch::cat({a.narrow(0, 0, 3) * 0.3, a.narrow(0, 3, 7), a.narrow(0, 0, 3) * 0.7});
  for (double rho : {-1.0, 0.5}) {
    const auto r1 = sinkhorn_points(xs, ys, tight(0.1, rho), a);
    const auto r2 = sinkhorn_points(doubled, ys, tight(0.1, rho), split);
    EXPECT_NEAR(item(r1.transport_cost), item(r2.transport_cost), 1e-10) << rho;
    EXPECT_NEAR(item(r1.value), item(r2.value), 1e-10) << rho;
  }
}

// OT_eps(s x, s y) with epsilon s^2 eps is s^2 OT_eps(x, y), from 1e-4 to 1e4.
TEST_F(SinkhornTest, ScalesWithThePoints) {
  const auto s = random_instance(30, 35, 2, 0.05);
  for (double rho : {-1.0, 0.5}) {
    const auto ref = sinkhorn_points(s.x, s.y, tight(s.eps, rho), s.a, s.b);
    for (double scale : {1e-4, 1e4}) {
      const double s2 = scale * scale;
      const auto r = sinkhorn_points(s.x * scale, s.y * scale,
                                     tight(s.eps * s2, rho > 0 ? rho * s2 : rho), s.a, s.b);
      EXPECT_LT(relative_error(item(r.transport_cost) / s2, item(ref.transport_cost)), 1e-9)
          << scale;
      EXPECT_LT(relative_error(item(r.value) / s2, item(ref.value)), 1e-9) << scale;
    }
    // Translation-invariant cost: far from the origin changes nothing.
    const auto moved = sinkhorn_points(s.x + 1e5, s.y + 1e5, tight(s.eps, rho), s.a, s.b);
    EXPECT_LT(relative_error(item(moved.transport_cost), item(ref.transport_cost)), 1e-6);
  }
}

TEST_F(SinkhornTest, AnnealingAndCheckIntervalDoNotChangeTheAnswer) {
  const auto s = random_instance(40, 30, 2, 0.05);
  const auto ref = sinkhorn(s.cost, s.a, s.b, tight(s.eps));
  auto cold = tight(s.eps);
  cold.epsilon_scaling = 0.0;
  cold.check_every = 1;
  const auto r = sinkhorn(s.cost, s.a, s.b, cold);
  EXPECT_LT(largest_abs(r.plan - ref.plan), 1e-12);
  EXPECT_NEAR(item(r.value), item(ref.value), 1e-12);
  // Fixed work: tolerance 0 runs exactly max_iter iterations.
  auto fixed = tight(s.eps);
  fixed.tolerance = 0.0;
  fixed.max_iter = 37;
  EXPECT_EQ(sinkhorn(s.cost, s.a, s.b, fixed).iterations, 37);
}

TEST_F(SinkhornTest, ZeroWeightPointsCarryNoMass) {
  const auto x = torch::randn({8, 2}, kDouble64);
  const auto y = torch::randn({6, 2}, kDouble64);
  auto a = torch::rand({8}, kDouble64) + 0.1;
  a[2] = 0.0;
  a[5] = 0.0;
  const auto keep = torch::tensor({0, 1, 3, 4, 6, 7});
  const auto r = sinkhorn_points(x, y, tight(0.1), a);
  const auto ref = sinkhorn_points(x.index_select(0, keep), y, tight(0.1), a.index_select(0, keep));
  EXPECT_NEAR(item(r.transport_cost), item(ref.transport_cost), 1e-12);
  EXPECT_NEAR(item(r.value), item(ref.value), 1e-12);
  EXPECT_EQ(item(r.plan[2].abs().sum()), 0.0);
  EXPECT_TRUE(r.f.isfinite().all().item<bool>());
}

TEST_F(SinkhornTest, RunsOnCuda) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device";
  }
  const auto s = random_instance(200, 150, 3, 0.01);
  for (double rho : {-1.0, 1.0}) {
    const auto cpu = sinkhorn(s.cost, s.a, s.b, tight(s.eps, rho));
    const auto gpu = sinkhorn(s.cost.cuda(), s.a.cuda(), s.b.cuda(), tight(s.eps, rho));
    EXPECT_TRUE(gpu.plan.is_cuda());
    EXPECT_LT(relative_error(item(gpu.transport_cost.cpu()), item(cpu.transport_cost)), 1e-9);
    EXPECT_LT(largest_abs(gpu.plan.cpu() - cpu.plan), 1e-12);
  }
  SinkhornOptions options;
  EXPECT_EQ(item(sinkhorn_divergence(s.x.cuda(), s.x.cuda(), options).cpu()), 0.0);
}

TEST_F(SinkhornTest, BadInputsRaiseOneLineConfigErrors) {
  const auto cost = torch::rand({3, 4}, kDouble64);
  const auto a = torch::ones({3}, kDouble64);
  const auto b = torch::ones({4}, kDouble64);
  auto with = [](torch::Tensor t, int64_t i, double value) {
    t = t.clone();
    t.view(-1)[i] = value;
    return t;
  };
  auto opts = [](double eps, double rho = -1.0) {
    SinkhornOptions o;
    o.epsilon = eps;
    o.rho = rho;
    return o;
  };
  expect_config_error([&] { sinkhorn(cost, a, b, opts(0.0)); }, "epsilon 0");
  expect_config_error([&] { sinkhorn(cost, a, b, opts(-1.0)); }, "negative epsilon");
  expect_config_error([&] { sinkhorn(cost, a, b, opts(NAN)); }, "NaN epsilon");
  expect_config_error([&] { sinkhorn(cost, a, b, opts(0.1, NAN)); }, "NaN rho");
  auto o = opts(0.1);
  o.epsilon_scaling = 1.5;
  expect_config_error([&] { sinkhorn(cost, a, b, o); }, "epsilon_scaling 1.5");
  o = opts(0.1);
  o.max_iter = 0;
  expect_config_error([&] { sinkhorn(cost, a, b, o); }, "max_iter 0");
  expect_config_error([&] { sinkhorn(cost, torch::ones({4}), b); }, "a of the wrong size");
  expect_config_error([&] { sinkhorn(cost, a, torch::ones({2, 4})); }, "2-D b, unbatched cost");
  expect_config_error([&] { sinkhorn(cost.unsqueeze(0), a, torch::ones({2, 4})); }, "b batch size");
  expect_config_error([&] { sinkhorn(torch::rand({3}), {}, {}); }, "1-D cost");
  expect_config_error([&] { sinkhorn({}, {}, {}); }, "undefined cost");
  expect_config_error([&] { sinkhorn(torch::rand({0, 4}), {}, {}); }, "empty cost");
  expect_config_error([&] { sinkhorn(torch::ones({3, 4}, torch::kInt64), {}, {}); }, "int cost");
  expect_config_error([&] { sinkhorn(with(cost, 5, NAN), a, b); }, "NaN cost");
  expect_config_error([&] { sinkhorn(with(cost, 0, INFINITY), a, b); }, "infinite cost");
  expect_config_error([&] { sinkhorn(cost, with(a, 1, -0.5), b); }, "negative weight");
  expect_config_error([&] { sinkhorn(cost, a, with(b, 2, NAN)); }, "NaN weight");
  expect_config_error([&] { sinkhorn(cost, torch::zeros({3}), b); }, "all-zero weights");
  const auto x = torch::randn({3, 2}, kDouble64);
  const auto y = torch::randn({4, 2}, kDouble64);
  expect_config_error([&] { sinkhorn_points(x, torch::randn({4, 3}, kDouble64)); }, "D mismatch");
  expect_config_error([&] { sinkhorn_points(x, torch::randn({4}, kDouble64)); }, "1-D y");
  expect_config_error(
      [&] {
        sinkhorn_points(x.unsqueeze(0), y.expand({2, 4, 2}));
      },
      "batch mismatch");
  expect_config_error([&] { sinkhorn_points(x, y.to(torch::kFloat32)); }, "mixed dtypes");
  expect_config_error([&] { sinkhorn_points(with(x, 1, NAN), y); }, "NaN point");
  expect_config_error([&] { sinkhorn_divergence(x, with(y, 0, INFINITY)); }, "infinite point");
  expect_config_error([&] { sinkhorn_divergence(x, y, opts(0.0)); }, "divergence epsilon 0");
  expect_config_error([&] { sinkhorn_divergence(x, y, {}, with(a, 0, -1.0)); }, "divergence a");
}

// The online solver (kernel on the fly, tile by tile) against the dense one: same potentials,
// values and transport costs, balanced and unbalanced, with weights, ragged tiles, with and without
// annealing, in float64 and float32.
TEST_F(SinkhornTest, OnlineSolverEqualsTheDenseOne) {
  auto x = torch::randn({300, 3}, kDouble64) + 2.0;  // off the origin: the centring matters
  auto y = torch::randn({250, 3}, kDouble64) * 1.5;
  auto a = torch::rand({300}, kDouble64) + 0.1;
  auto b = torch::rand({250}, kDouble64) + 0.1;
  for (double rho : {-1.0, 2.0}) {
    for (double scaling : {0.5, 0.0}) {
      SCOPED_TRACE("rho " + std::to_string(rho) + ", epsilon_scaling " + std::to_string(scaling));
      SinkhornOptions o;
      o.epsilon = 0.3;
      o.rho = rho;
      o.epsilon_scaling = scaling;
      o.tolerance = 1e-11;
      o.max_iter = 5000;
      const auto dense = sinkhorn_points(x, y, o, a, b);
      const auto online = sinkhorn_points_online(x, y, o, a, b, /*tile=*/64);
      EXPECT_LT(online.marginal_error, 1e-11);
      EXPECT_NEAR(item(online.value), item(dense.value), 1e-9 * std::abs(item(dense.value)));
      EXPECT_NEAR(item(online.transport_cost), item(dense.transport_cost),
                  1e-8 * item(dense.transport_cost));
      EXPECT_LT(largest_abs(online.f - dense.f), 1e-8);
      EXPECT_LT(largest_abs(online.g - dense.g), 1e-8);
    }
  }
  // float32: the same answer to float32 accuracy.
  SinkhornOptions o;
  o.epsilon = 0.3;
  const auto dense = sinkhorn_points(x, y, o, a, b);
  const auto online = sinkhorn_points_online(x.to(torch::kFloat32), y.to(torch::kFloat32), o,
                                             a.to(torch::kFloat32), b.to(torch::kFloat32), 100);
  EXPECT_NEAR(item(online.value), item(dense.value), 1e-4 * std::abs(item(dense.value)));
}

TEST_F(SinkhornTest, OnlineSolverRejectsWhatItCannotDo) {
  auto x = torch::randn({10, 2}, kDouble64);
  SinkhornOptions with_plan;
  with_plan.return_plan = true;
  expect_config_error([&] { sinkhorn_points_online(x, x, with_plan); }, "online plan",
                      "return_plan");
  expect_config_error([&] { sinkhorn_points_online(x.unsqueeze(0), x.unsqueeze(0)); },
                      "online batch", "no batch");
  expect_config_error([&] { sinkhorn_points_online(x, x, {}, {}, {}, 0); }, "online tile", "tile");
  auto bad = x.clone();
  bad[3][1] = std::nan("");
  expect_config_error([&] { sinkhorn_points_online(bad, x); }, "online NaN", "NaN");
}
