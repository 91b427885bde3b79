// Sliced Wasserstein distances: one implementation shared by the losses and the metrics.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

namespace uotflow {

/// L directions uniform on the unit sphere of R^D (normalised Gaussians), drawn from `gen`.
/// Returns theta: [D, L] with unit-norm columns, float32 unless `options` says otherwise.
torch::Tensor random_directions(int64_t dim, int64_t n_projections, at::Generator& gen,
                                torch::TensorOptions options = {});

/// W_p^p between 1-D empirical measures, batched over leading dimensions.
/// u: [..., N], v: [..., M] (unsorted; same leading shape) -> [...].
/// Weights u_weights [..., N] / v_weights [..., M] (or [N] / [M], shared by every row) are
/// normalised to sum 1; undefined means uniform. Uniform weights with N == M use the sort path
/// (mean of |sort(u) - sort(v)|^p); otherwise the exact integral of |F_u^-1 - F_v^-1|^p over the
/// merged levels of the two quantile functions.
torch::Tensor wasserstein_1d_pp(const torch::Tensor& u, const torch::Tensor& v, double p = 2.0,
                                const torch::Tensor& u_weights = {},
                                const torch::Tensor& v_weights = {});

/// SW_p^p averaged over the given directions.
/// x: [N, D] or [B, N, D]; y: [M, D] or [B, M, D]; theta: [D, L] -> [] or [B].
/// a: [N] or [B, N], b: [M] or [B, M] sample weights (undefined = uniform).
torch::Tensor sliced_wasserstein_pp(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& theta, double p = 2.0,
                                    const torch::Tensor& a = {}, const torch::Tensor& b = {});

/// SW_p (p-th root taken) with L directions drawn from `seed`; the same seed gives the same
/// directions. x: [N, D] or [B, N, D]; y: [M, D] or [B, M, D] -> [] or [B].
torch::Tensor sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t n_projections, uint64_t seed, double p = 2.0,
                                 const torch::Tensor& a = {}, const torch::Tensor& b = {});

/// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (pairs i != j inside each set, as the
/// exact `energy` metric) estimated along the directions theta [D, L] in O(L (N + M) log(N + M))
/// time by sorting (Hertrich et al., "Generative sliced MMD flows with Riesz kernels", ICLR 2024):
/// |z| = E_u |<u, z>| / kappa_D for u uniform on the sphere, kappa_D = Gamma(D/2) / (sqrt(pi)
/// Gamma((D+1)/2)), and in 1-D the sum of |a_i - a_j| over the pairs of a sorted set is
/// sum_k a_(k) (2k - n - 1). Unbiased over random directions (error ~ 1/sqrt(L)); exact for D = 1.
/// Differentiable in x and y (through the sorts). Directions are processed in blocks of about 2^18
/// projected values, so memory stays O(N + M). x: [N, D], y: [M, D] with N, M >= 2 -> [].
torch::Tensor sliced_energy_distance(const torch::Tensor& x, const torch::Tensor& y,
                                     const torch::Tensor& theta);

/// The same with L directions drawn from `seed` (the directions of sliced_wasserstein).
torch::Tensor sliced_energy_distance(const torch::Tensor& x, const torch::Tensor& y,
                                     int64_t n_projections, uint64_t seed);

}  // namespace uotflow
