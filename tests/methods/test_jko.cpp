// The shared JKO machinery: Hessian log-determinants (exact against the closed form of a
// quadratic, stochastic against exact in value and gradient), the JKO-ICNN step objective's
// gradient against finite differences, and the closed-form Gaussian flow checks.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "checks.h"
#include "uotflow/data/dataset.h"
#include "uotflow/flow/functional.h"
#include "uotflow/methods/jko.h"
#include "uotflow/nets/icnn.h"

using namespace uotflow;

namespace {

at::Generator gen_of(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// A random convex psi (projected random weights), float64.
Icnn random_convex_net(int64_t dim, uint64_t seed) {
  Icnn psi(dim, IcnnOptions().width(16).depth(2).activation("softplus").strong_convexity(0.1));
  psi.to(torch::kDouble);
  torch::NoGradGuard no_grad;
  auto gen = gen_of(seed);
  for (auto& p : psi.parameters()) {
    p.copy_(torch::randn(p.sizes(), gen, p.options()) * 0.5);
  }
  psi.project();
  return psi;
}

// Longer first JKO steps: 300 + 100 + 100 + 100 optimiser steps.
TEST(JkoSchedule, FirstIterationsLengthenTheFirstStepsAndTimeFollowsTheSteps) {
  const JkoSchedule schedule(4, 100, {300});
  EXPECT_EQ(schedule.start(0), 0);
  EXPECT_EQ(schedule.start(1), 300);
  EXPECT_EQ(schedule.start(4), 600);
  EXPECT_EQ(schedule.phase_of(299), 0);
  EXPECT_EQ(schedule.phase_of(300), 1);
  EXPECT_EQ(schedule.phase_of(599), 3);
  EXPECT_EQ(schedule.phase_of(700), 3) << "past the end: the last JKO step";
  EXPECT_DOUBLE_EQ(schedule.time(150, 0.1), 0.05);
  EXPECT_DOUBLE_EQ(schedule.time(350, 0.1), 0.15);
  EXPECT_DOUBLE_EQ(schedule.time(600, 0.1), 0.4);
  const auto phases = schedule.phases(0.5, FlowClock{JkoDistance::kSW2, 2});
  ASSERT_EQ(phases.size(), 4u);
  EXPECT_EQ(phases[0].end_step, 300);
  EXPECT_EQ(phases[3].end_step, 600);
  EXPECT_DOUBLE_EQ(phases[3].flow_time, 4.0) << "SW-time 2 is W-time 4 in d = 2";
  // Without first counts every step is alike, with the times of earlier versions to the bit
  // (tau * done / iterations); a list of the same counts agrees.
  const JkoSchedule uniform(3, 7), listed(3, 7, {7, 7, 7});
  for (int64_t step = 0; step < 25; ++step) {
    EXPECT_EQ(uniform.phase_of(step), std::min<int64_t>(step / 7, 2));
    EXPECT_EQ(uniform.phase_of(step), listed.phase_of(step));
    EXPECT_EQ(uniform.time(step, 0.3), 0.3 * step / 7);
    EXPECT_DOUBLE_EQ(uniform.time(step, 0.3), listed.time(step, 0.3));
  }
  uotflow::testing::expect_config_error(
      [] {
        JkoSchedule(2, 10, {5, 5, 5}, "swjko.first_iterations");
      },
      "more counts than steps", "swjko.first_iterations");
  uotflow::testing::expect_config_error([] { JkoSchedule(2, 10, {0}, "swjko.first_iterations"); },
                                        "zero count", "swjko.first_iterations");
}

TEST(JkoLogDet, ExactIsTheLogDetOfALinearMapsMatrix) {
  auto gen = gen_of(0);
  for (int64_t d : {1, 3, 8}) {
    auto m = torch::randn({d, d}, gen, torch::kDouble);
    auto a = m.matmul(m.t()) + torch::eye(d, torch::kDouble);  // SPD
    auto x = torch::randn({5, d}, gen, torch::kDouble).requires_grad_(true);
    auto y = x.matmul(a);
    auto ld = log_det_hessian_exact(y, x, false);
    const double expected = std::get<1>(torch::linalg_slogdet(a)).item<double>();
    EXPECT_NEAR((ld - expected).abs().max().item<double>(), 0.0, 1e-10) << "d " << d;
  }
}

// Stated error: each probe's Lanczos quadrature is exact once lanczos_steps >= D, so the value's
// error is the Hutchinson variance; over R independent runs the mean is within 5 standard errors
// of exact for every row. The gradient (CG surrogate) is unbiased: its mean over R runs points
// along the exact gradient (cosine > 0.995) with a relative error under 0.08 (measured: 0.9998 and
// 0.02 in d = 8).
TEST(JkoLogDet, StochasticAgreesWithExactInValueAndGradient) {
  for (int64_t d : {2, 8}) {
    auto psi = random_convex_net(d, 10 + d);
    auto x = (torch::randn({64, d}, gen_of(d), torch::kDouble) * 1.5).requires_grad_(true);
    auto y = psi.gradient(x, true);
    auto exact = log_det_hessian_exact(y, x, true);
    auto params = psi.parameters();
    // The linear term a^T x of psi does not reach the Hessian: its gradient is zero (unused).
    auto gradient_of = [&params](const torch::Tensor& value) {
      auto g = torch::autograd::grad({value}, params, {}, true, false, /*allow_unused=*/true);
      for (size_t i = 0; i < g.size(); ++i) {
        if (!g[i].defined()) {
          g[i] = torch::zeros_like(params[i]);
        }
      }
      return g;
    };
    auto exact_grad = gradient_of(exact.mean());
    const int64_t runs = 200;
    LogDetOptions options;
    options.probes = 2;
    options.lanczos_steps = d;
    options.cg_iterations = 4 * d;
    options.cg_tolerance = 1e-10;
    auto gen = gen_of(100 + d);
    std::vector<torch::Tensor> values;
    std::vector<torch::Tensor> grad_sum;
    for (int64_t r = 0; r < runs; ++r) {
      auto estimate = log_det_hessian_stochastic(y, x, options, gen, true);
      values.push_back(estimate.detach());
      auto g = gradient_of(estimate.mean());
      if (grad_sum.empty()) {
        grad_sum = g;
      } else {
        for (size_t i = 0; i < g.size(); ++i) {
          grad_sum[i] = grad_sum[i] + g[i];
        }
      }
    }
    auto stacked = torch::stack(values);  // [R, N]
    auto mean = stacked.mean(0);
    auto se = stacked.std(0) / std::sqrt(double(runs));
    auto z = ((mean - exact.detach()).abs() / (se + 1e-12)).max().item<double>();
    EXPECT_LT(z, 5.0) << "d " << d;
    std::vector<torch::Tensor> flat_exact, flat_mean;
    for (size_t i = 0; i < params.size(); ++i) {
      flat_exact.push_back(exact_grad[i].reshape(-1));
      flat_mean.push_back(grad_sum[i].reshape(-1) / double(runs));
    }
    auto ge = torch::cat(flat_exact), gm = torch::cat(flat_mean);
    const double cosine = (ge.dot(gm) / (ge.norm() * gm.norm())).item<double>();
    const double relative = ((gm - ge).norm() / ge.norm()).item<double>();
    EXPECT_GT(cosine, 0.995) << "d " << d;
    EXPECT_LT(relative, 0.08) << "d " << d;
  }
}

// A diagonal Hessian: v^T log(H) v = tr log H for every Rademacher v, so the Lanczos value is exact
// with one probe, and the CG surrogate's value is v^T v = D.
TEST(JkoLogDet, StochasticIsExactForADiagonalHessian) {
  auto gen = gen_of(2);
  for (int64_t d : {1, 4, 8}) {
    auto c = torch::rand({d}, gen, torch::kDouble) * 3 + 0.1;
    auto x = torch::randn({10, d}, gen, torch::kDouble).requires_grad_(true);
    auto y = x * c;
    LogDetOptions options;
    options.lanczos_steps = d;
    auto estimate = log_det_hessian_stochastic(y, x, options, gen, true);
    EXPECT_LT((estimate - c.log().sum()).abs().max().item<double>(), 1e-8) << "d " << d;
  }
}

// The JKO-ICNN objective of one step, E |x - T x|^2 / (2h) + E V(T x) - E log det DT(x) (KL
// up to its constant, V(y) = (y - b)^T A (y - b) / 2), differentiated by autograd through the
// double backward, against central finite differences in every weight (float64).
TEST(JkoObjective, GradientMatchesFiniteDifferences) {
  const int64_t d = 2;
  auto psi = random_convex_net(d, 3);
  auto x = torch::randn({16, d}, gen_of(4), torch::kDouble);
  auto gen = gen_of(5);
  auto m = torch::randn({d, d}, gen, torch::kDouble);
  auto a = m.matmul(m.t()) + torch::eye(d, torch::kDouble);
  auto b = torch::randn({d}, gen, torch::kDouble);
  auto objective = [&]() {
    auto input = x.clone().requires_grad_(true);
    auto y = psi.gradient(input, true);
    auto potential = 0.5 * ((y - b).matmul(a) * (y - b)).sum(1).mean();  // E V(T x)
    return w2_proximal_term(input, y, 0.1) + potential -
           log_det_hessian_exact(y, input, true).mean();
  };
  auto params = psi.parameters();
  auto grads = torch::autograd::grad({objective()}, params);
  for (size_t i = 0; i < params.size(); ++i) {
    auto fd = uotflow::testing::finite_difference([&] { return objective().item<double>(); },
                                                  params[i].detach(), 1e-6);
    EXPECT_LT((fd - grads[i]).abs().max().item<double>(),
              1e-6 * (1 + grads[i].abs().max().item<double>()))
        << "parameter " << i;
  }
}

TEST(GaussianFlowCheck, DensityKlIsZeroAtTheExactSolutionAndMatchesTheClosedFormElsewhere) {
  Problem problem;
  problem.dim = 2;
  problem.source = make_dataset(Json{{"name", "gaussian"}, {"params", {{"dim", 2}}}});
  problem.functional = make_functional(
      Json{
          {"name", "kl"},
          {"params", {{"target", {{"name", "quadratic"}, {"params", {{"dim", 2}, {"seed", 0}}}}}}}},
      2);
  GaussianFlowCheck check(problem);
  ASSERT_TRUE(check.defined());
  auto gen = gen_of(1);
  const auto at_one = check.exact(1.0);
  auto log_density = [&](const GaussianFit& g) {
    return [g](const torch::Tensor& y) { return gaussian_log_prob(y, g); };
  };
  auto x = gaussian_draw(at_one, 20000, gen).to(torch::kFloat32);
  EXPECT_NEAR(
      check.density_symmetric_kl(x, gaussian_log_prob(x, at_one), log_density(at_one), 1.0, gen),
      0.0, 1e-12);
  // rho = the start N(0, I), compared with t = 1: the closed form KL + KL within MC error.
  const auto start = check.exact(0.0);
  auto x0 = gaussian_draw(start, 20000, gen).to(torch::kFloat32);
  const double mc =
      check.density_symmetric_kl(x0, gaussian_log_prob(x0, start), log_density(start), 1.0, gen);
  const double closed = gaussian_symmetric_kl(start, at_one);
  EXPECT_NEAR(mc, closed, 0.05 * closed + 0.02);
  EXPECT_NEAR(check.fitted_symmetric_kl(x0, 1.0), closed, 0.05 * closed + 0.02);
  EXPECT_NEAR(check.density_kl(x0, gaussian_log_prob(x0, start), 1.0), gaussian_kl(start, at_one),
              0.05 * closed + 0.02);
  EXPECT_TRUE(std::isnan(check.fitted_kl(x0.index({torch::indexing::Slice(0, 1)}), 1.0)));
}

}  // namespace
