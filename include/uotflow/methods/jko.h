// What the JKO flows share (SW-JKO, JKO-ICNN, S-JKO): the proximal term of a step, the flow time
// a step stands for, the entropy of a measure pushed through the gradient of a convex potential
// (log det of its Hessian, exact or stochastic), and the closed-form checks of a Fokker-Planck
// flow between Gaussians.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/methods/method.h"
#include "uotflow/metrics/gaussian.h"

namespace uotflow {

/// The metric a JKO step is proximal in, and so the clock of its flow.
enum class JkoDistance {
  kW2,   ///< W2: a step of size tau advances the flow by tau in W-time
  kSW2,  ///< SW2: a step of size tau advances SW-time by tau; the flow follows the W2 flow at
         ///< W-time d * tau (the SWGF dilation, exact for Gaussians with isotropic steps)
};

/// The flow time of a JKO scheme: how many W-time units the steps done stand for, and the name of
/// the axis its own time is measured on.
///
///   FlowClock clock{JkoDistance::kSW2, 2};
///   clock.w_time(0.5);   // 1.0: SW-time 0.5 in d = 2
struct FlowClock {
  JkoDistance distance = JkoDistance::kW2;
  int64_t dim = 1;

  /// W-time of `own_time` (the summed step sizes).
  double w_time(double own_time) const {
    return distance == JkoDistance::kSW2 ? own_time * static_cast<double>(dim) : own_time;
  }
  /// "W-time" or "SW-time": the axis of own_time, as eval.jsonl rows name it ("time_axis").
  const char* axis() const {
    return distance == JkoDistance::kSW2 ? "SW-time" : "W-time";
  }
};

/// How many optimiser steps each JKO step takes: `first` gives the counts of the first JKO steps in
/// order, every later one takes `iterations` (the reference trains its first image steps longer).
/// Optimiser steps are numbered across the whole run; JKO step k covers [start(k), start(k + 1)).
///
///   JkoSchedule schedule(4, 100, {300});  // 300 + 100 + 100 + 100 steps
///   schedule.phase_of(350);               // 1
///   schedule.time(350, 0.1);              // 0.15: 1.5 JKO steps of 0.1 done
class JkoSchedule {
 public:
  /// Throws ConfigError (naming `key`, the config key of `first`) when `first` holds more counts
  /// than there are JKO steps or a count below 1.
  JkoSchedule(int64_t n_phases, int64_t iterations, std::vector<int64_t> first = {},
              const std::string& key = "first_iterations");

  int64_t n_phases() const {
    return n_phases_;
  }
  /// Optimiser steps of JKO step k.
  int64_t iterations_of(int64_t k) const;
  /// The first optimiser step of JKO step k; start(n_phases) is the run's length.
  int64_t start(int64_t k) const;
  /// The JKO step that optimiser step `step` belongs to (the last one past the end).
  int64_t phase_of(int64_t step) const;
  /// The flow's own time after `steps_done` optimiser steps of JKO steps of size `step_size`:
  /// step_size per JKO step done, and the fraction of the current one.
  double time(int64_t steps_done, double step_size) const;
  /// Phase k ends at optimiser step start(k + 1) and W-time clock.w_time((k + 1) step_size).
  std::vector<Phase> phases(double step_size, const FlowClock& clock) const;

 private:
  int64_t n_phases_;
  int64_t iterations_;
  std::vector<int64_t> first_;
};

/// The defaults a JKO flow of a functional adds to a run: "dim" 0 (the functional's own), the
/// functional KL to a Gaussian, the run's length from the phases with one log row, evaluation
/// and checkpoint per JKO step, rho_0 evaluated too, no data metrics.
Json functional_flow_defaults();

/// The proximal term of a W2 JKO step over pairs: E |x - y|^2 / (2 tau), x, y: [N, D] -> [].
torch::Tensor w2_proximal_term(const torch::Tensor& x, const torch::Tensor& y, double tau);

/// log det of the Jacobian of y = T(x) for each row, where T is the gradient of a convex potential
/// (its Jacobian, the Hessian, is symmetric positive definite). x: [N, D] requires grad and y:
/// [N, D] carries the graph from x (built with create_graph). Returns [N], differentiable in the
/// potential's parameters when `create_graph`.
/// Exact: the D Hessian rows by double backward, then slogdet: O(D) backward passes.
torch::Tensor log_det_hessian_exact(const torch::Tensor& y, const torch::Tensor& x,
                                    bool create_graph);

/// The stochastic estimator's settings (Hutchinson probes, Lanczos steps for the value, conjugate
/// gradient iterations for the gradient).
struct LogDetOptions {
  int64_t probes = 1;          ///< Rademacher probes per row
  int64_t lanczos_steps = 10;  ///< steps of stochastic Lanczos quadrature (capped at D)
  int64_t cg_iterations = 20;  ///< conjugate gradient iterations at most
  double cg_tolerance = 1e-6;  ///< relative residual at which CG stops early
};

/// Stochastic log det of the Hessian, for larger D: the value by stochastic Lanczos quadrature
/// (Hutchinson over `probes` Rademacher probes v of v^T log(H) v), and the gradient in the
/// potential's parameters through the surrogate w^T H v with w = H^-1 v solved by conjugate
/// gradients (whose gradient, w^T dH v, estimates tr(H^-1 dH) = d log det H). Each costs one
/// Hessian-vector product (a double backward) per step. Returns [N]: the value is the Lanczos
/// estimate, the gradient the surrogate's. Unbiased in the gradient when CG converges; the value
/// is exact for each probe when lanczos_steps >= D (the error is then the probes' variance).
torch::Tensor log_det_hessian_stochastic(const torch::Tensor& y, const torch::Tensor& x,
                                         const LogDetOptions& options, at::Generator& gen,
                                         bool create_graph);

/// The closed-form checks of a flow of KL(. | N(b, A^-1)) started at a Gaussian: the Fokker-Planck
/// (Ornstein-Uhlenbeck) solution at any W-time, against which a method's samples (through their
/// Gaussian fit) or its density (by Monte Carlo) are compared.
///
///   GaussianFlowCheck check(problem);
///   if (check.defined()) rows.push_back({"sym_kl", check.fitted_symmetric_kl(x, t)});
class GaussianFlowCheck {
 public:
  GaussianFlowCheck() = default;
  /// Defined when the problem's source is a Gaussian and its target (the data's law or the
  /// functional's minimiser) is a known Gaussian.
  explicit GaussianFlowCheck(const Problem& problem);

  bool defined() const {
    return start_.mean.defined() && target_.mean.defined();
  }
  /// The exact solution at W-time t.
  GaussianFit exact(double w_time) const;

  /// KL(fit of x | exact at t), x: [N, D]; NaN when x is not finite or its fit is singular.
  double fitted_kl(const torch::Tensor& x, double w_time) const;
  /// KL(fit | exact) + KL(exact | fit).
  double fitted_symmetric_kl(const torch::Tensor& x, double w_time) const;
  /// KL(rho | exact at t) by Monte Carlo from x ~ rho and log rho(x): [N] (float64 sums).
  double density_kl(const torch::Tensor& x, const torch::Tensor& log_rho, double w_time) const;
  /// KL(rho | exact) + KL(exact | rho) by Monte Carlo: x ~ rho with log rho(x), and as many draws
  /// of the exact solution (from gen) evaluated by `log_density`.
  double density_symmetric_kl(const torch::Tensor& x, const torch::Tensor& log_rho,
                              const std::function<torch::Tensor(const torch::Tensor&)>& log_density,
                              double w_time, at::Generator& gen) const;

 private:
  GaussianFit start_, target_;
};

/// log N(x; m, S) for the rows of x: [N, D] -> [N] (float64).
torch::Tensor gaussian_log_prob(const torch::Tensor& x, const GaussianFit& g);

/// n draws of N(m, S): [n, D] (float64).
torch::Tensor gaussian_draw(const GaussianFit& g, int64_t n, at::Generator& gen);

}  // namespace uotflow
