// Exact optimal transport between weighted empirical measures, through LEMON's network simplex.
#pragma once

#include <torch/types.h>

namespace uotflow {

/// True when this build has LEMON (exact OT); otherwise exact_ot throws a RuntimeError saying so.
bool exact_ot_available();

struct ExactOtResult {
  double cost = 0.0;   ///< sum_ij P_ij C_ij at the optimum
  torch::Tensor plan;  ///< [N, M] float64 optimal plan (defined only when asked for)
};

/// Solves min_P <P, C> over P >= 0 with P 1 = a, P^T 1 = b, on the CPU in float64.
/// a: [N], b: [M] non-negative weights (each normalised to sum 1 first), cost: [N, M]; any device
/// and dtype (copied to CPU float64). Points with zero weight are left out of the problem and get
/// zero rows / columns in the plan. The optimum is exact up to float rounding: the solver works
/// with masses in units of 2^-56 and costs rounded to a grid (1.4e-14 of their range at 5000 +
/// 5000 points, finer for fewer), and the cost is summed with the double costs. The points with
/// mass may form at most 2^31 pairs.
/// Throws ConfigError on negative, non-finite or all-zero weights, non-finite costs and shape
/// mismatches (one-line messages), RuntimeError if the build has no LEMON.
///   auto r = uotflow::exact_ot(torch::ones({3}), torch::ones({4}), torch::rand({3, 4}), true);
///   // r.cost, r.plan: [3, 4] with rows summing to 1/3 and columns to 1/4
ExactOtResult exact_ot(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& cost,
                       bool return_plan = false);

/// W_p between sum_i a_i delta_{x_i} and sum_j b_j delta_{y_j}, p-th root taken, with the ground
/// cost |x - y|^p (Euclidean norm, from coordinate differences in float64), p >= 1.
/// x: [N, D], y: [M, D] on any device and dtype; a: [N], b: [M] weights, undefined means uniform.
/// Past 2^20 pairs in D <= 8 the simplex runs on a sparse arc set grown until it is provably
/// optimal (same result, ~1.5-2.5x faster); otherwise on the complete graph, like exact_ot.
///   double w2 = uotflow::wasserstein_exact(x, y);  // x: [500, 2], y: [600, 2]
double wasserstein_exact(const torch::Tensor& x, const torch::Tensor& y, double p = 2.0,
                         const torch::Tensor& a = {}, const torch::Tensor& b = {});

}  // namespace uotflow
