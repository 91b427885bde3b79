// Kernel two-sample statistics: unbiased MMD^2 with gaussian, laplacian, energy and polynomial
// kernels, and the kernel inception distance (KID). All in float64, in blocks, so 10^4 x 10^4
// needs no 10^8 matrix.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace uotflow {

/// A kernel k(x, y) as a function of two row blocks [n, D], [m, D] -> [n, m] (float64).
struct Kernel {
  std::string name;  ///< "gaussian", "laplacian", "energy" or "polynomial"
  std::vector<double>
      bandwidths;       ///< gaussian: sum_s exp(-|x-y|^2 / (2 s^2)); laplacian: exp(-|x-y| / s)
  double degree = 3.0;  ///< polynomial: (x.y / D + 1)^degree
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& y) const;
};

/// Unbiased MMD^2 (U-statistic): mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j)
/// - 2 mean_{i, j} k(x_i, y_j). Needs at least two points in each set; may be slightly negative.
/// x: [N, D], y: [M, D] on any device.
double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y, const Kernel& kernel);

/// Median of the pairwise distances of the pooled sets (at most `max_points` of them, taken with a
/// fixed stride): the usual bandwidth heuristic.
double median_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t max_points = 1000);

/// Bandwidths to use: `given` when non-empty, else the median distance times {1/2, 1, 2}.
std::vector<double> resolve_bandwidths(const torch::Tensor& x, const torch::Tensor& y,
                                       const std::vector<double>& given);

/// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (pairs i != j inside each set): the
/// unbiased MMD^2 of the kernel -|x - y|.
double energy_distance(const torch::Tensor& x, const torch::Tensor& y);

/// KID: the unbiased MMD^2 with the cubic polynomial kernel (x.y / D + 1)^3, averaged over
/// `n_subsets` random subsets of `subset_size` points of each set (drawn without replacement from
/// `seed`). When either set has at most `subset_size` points, one exact estimate on the full sets.
struct KidResult {
  double mean = 0.0;
  double std = 0.0;  ///< spread over the subsets (0 for a single estimate)
};
KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y,
                                    int64_t subset_size = 1000, int64_t n_subsets = 100,
                                    uint64_t seed = 0);

}  // namespace uotflow
