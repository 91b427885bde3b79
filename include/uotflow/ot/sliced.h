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

/// W_p^p between 1-D uniform empirical measures, batched over leading dimensions.
/// u: [..., N], v: [..., M] (unsorted; same leading shape) -> [...].
/// N == M uses the sort path (mean of |sort(u) - sort(v)|^p); otherwise the exact quantile-function
/// integral over the merged level sets.
torch::Tensor wasserstein_1d_pp(const torch::Tensor& u, const torch::Tensor& v, double p = 2.0);

/// SW_p^p averaged over the given directions.
/// x: [N, D] or [B, N, D]; y: [M, D] or [B, M, D]; theta: [D, L] -> [] or [B].
torch::Tensor sliced_wasserstein_pp(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& theta, double p = 2.0);

/// SW_p (p-th root taken) with L directions drawn from `seed`; the same seed gives the same
/// directions. x: [N, D] or [B, N, D]; y: [M, D] or [B, M, D] -> [] or [B].
torch::Tensor sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t n_projections, uint64_t seed, double p = 2.0);

}  // namespace uotflow
