// Entropic optimal transport: log-stabilised Sinkhorn, balanced and unbalanced, and the debiased
// Sinkhorn divergence. Batched over a leading dimension; runs on any device.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace uotflow {

/// The problem solved, with reference measure a x b for the entropy (as in GeomLoss and OTT):
///
///   OT_eps(a, b) = min_{P >= 0} <P, C> + eps KL(P | a x b) [+ rho KL(P 1 | a) + rho KL(P^T 1 | b)]
///
/// with the generalised KL(p | q) = sum p log(p / q) - p + q. Balanced (rho <= 0): the marginals
/// are constraints, P 1 = a and P^T 1 = b, and a, b are first normalised to sum 1. Unbalanced
/// (rho > 0): the marginals are KL-relaxed with weight rho (UOTM's Psi1 = Psi2 = kl, weighted by
/// rho, plus entropy) and a, b keep their mass; undefined weights are uniform 1/N, 1/M (mass 1).
/// POT's ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg=eps, reg_m=rho) uses the reference 1
/// instead of a x b: it solves this problem for the cost M = C - eps (log a_i + log b_j).
///
///   SinkhornOptions options;
///   options.epsilon = 0.01;
///   auto result = sinkhorn(cost, /*a=*/{}, /*b=*/{}, options);  // cost: [N, M]
///   double w = result.transport_cost.item<double>();
struct SinkhornOptions {
  double epsilon = 0.1;     ///< entropic regularisation, in units of the cost (absolute)
  double rho = -1.0;        ///< KL marginal weight (unbalanced); <= 0 means balanced
  int64_t max_iter = 1000;  ///< Sinkhorn iterations at the final epsilon
  /// Stop when marginal_error falls below this, checked every check_every iterations; 0 runs
  /// max_iter iterations. In float32 a positive tolerance is raised to 1e-6 (rounding noise).
  double tolerance = 1e-9;
  bool return_plan = false;
  /// Epsilon annealing: epsilon runs from max(C) down to `epsilon` by this factor per stage, a few
  /// iterations each, before the final stage; in (0, 1), or 0 to start at `epsilon` directly.
  /// For small epsilon it makes a limited budget count (at 1e-3 x mean cost, after 1000
  /// iterations, `value` is within 1e-5 relative instead of 1e-2); the final rate to a tight
  /// tolerance is Sinkhorn's own, and a moderate epsilon pays a few kernel rebuilds for nothing.
  double epsilon_scaling = 0.5;
  int64_t check_every = 10;  ///< iterations between stopping checks (each is a device sync)
  /// On the CPU, fuse both matrix-vector products of an iteration into one pass over the kernel
  /// (half the memory traffic); false takes the generic torch path that other devices use.
  bool fused_cpu_pass = true;
};

struct SinkhornResult {
  torch::Tensor transport_cost;  ///< <P, C>: [] or [B]
  /// OT_eps above, evaluated by its dual at the final potentials:
  ///   balanced:   <a, f> + <b, g> - eps (<a x b, exp((f + g - C) / eps)> - 1)
  ///   unbalanced: rho <a, 1 - exp(-f/rho)> + rho <b, 1 - exp(-g/rho)>
  ///               - eps (<a x b, exp((f + g - C) / eps)> - m(a) m(b))
  /// A lower bound of OT_eps (which is >= 0 for a cost >= 0), tight at convergence. [] or [B].
  torch::Tensor value;
  /// Dual potentials: [N] / [M] or [B, N] / [B, M]. Balanced, they are unique up to f + c, g - c;
  /// c is fixed by <a, f> = <b, g>.
  torch::Tensor f, g;
  torch::Tensor plan;      ///< P = (a x b) exp((f + g - C) / eps): [N, M] or [B, N, M]
  int64_t iterations = 0;  ///< iterations at the final epsilon
  /// L1 change of the row marginal P 1 made by the last checked f-update, max over the batch
  /// (balanced: |P 1 - a|_1, since the update restores it; the column marginal is then exact).
  /// Rows whose kernel underflowed entirely (no mass at working precision) do not count.
  double marginal_error = 0.0;
};

/// Entropic OT for a given cost matrix: cost [N, M] or [B, N, M] (float32 or float64, any
/// device), weights a [N] / [B, N] and b [M] / [B, M] (undefined = uniform), non-negative.
/// Works in the scaling domain with log-domain absorption (Schmitzer 2016): stable for small
/// epsilon at the price of matrix-vector products. Throws ConfigError on bad shapes, weights,
/// options or a non-finite cost.
SinkhornResult sinkhorn(const torch::Tensor& cost, const torch::Tensor& a, const torch::Tensor& b,
                        const SinkhornOptions& options = {});

/// Squared Euclidean cost |x_i - y_j|^2 between point clouds, as |x|^2 + |y|^2 - 2 x.y after
/// centring both on the midpoint of their means, clamped at 0. Same dtype and device as x.
/// x: [N, D] or [B, N, D], y: [M, D] or [B, M, D] -> [N, M] or [B, N, M].
torch::Tensor squared_euclidean_cost(const torch::Tensor& x, const torch::Tensor& y);

/// Entropic OT between point clouds with the squared Euclidean cost |x - y|^2.
/// x: [N, D] or [B, N, D], y: [M, D] or [B, M, D].
SinkhornResult sinkhorn_points(const torch::Tensor& x, const torch::Tensor& y,
                               const SinkhornOptions& options = {}, const torch::Tensor& a = {},
                               const torch::Tensor& b = {});

/// The same problem as sinkhorn_points, without ever forming the N x M cost or kernel: each
/// half-iteration recomputes |x_i - y_j|^2 in tile x tile blocks and reduces them with a streaming
/// log-sum-exp (log domain throughout), so memory is O((N + M) D + tile^2) and time O(N M D) per
/// iteration. For clouds whose cost matrix does not fit (N = M = 1e5: 80 GB in float64).
/// Unbatched: x [N, D], y [M, D]. Same options and result (f, g, value, transport_cost,
/// iterations, marginal_error) as the dense solver; return_plan is a ConfigError.
SinkhornResult sinkhorn_points_online(const torch::Tensor& x, const torch::Tensor& y,
                                      const SinkhornOptions& options = {},
                                      const torch::Tensor& a = {}, const torch::Tensor& b = {},
                                      int64_t tile = 1024);

/// Debiased Sinkhorn divergence on the regularised values, squared Euclidean cost:
///   S = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2 + eps (m(a) - m(b))^2 / 2.
/// The mass term (Sejourne et al. 2019) cancels the eps m(a) m(b) parts of the three values, so
/// that S >= 0 also in the unbalanced case; it is 0 when balanced. Exactly 0 for identical
/// inputs. x: [N, D] or [B, N, D], y: [M, D] or [B, M, D] -> [] or [B].
torch::Tensor sinkhorn_divergence(const torch::Tensor& x, const torch::Tensor& y,
                                  const SinkhornOptions& options = {}, const torch::Tensor& a = {},
                                  const torch::Tensor& b = {});

}  // namespace uotflow
