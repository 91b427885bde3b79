// Mixture diagnostics: mode coverage and sample quality against known centres, and the mass a
// sample set puts near given (outlier) locations.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace uotflow {

/// Mode statistics against mixture centres [K, D] with component std `mode_std`: a sample is
/// high-quality when within 3 * mode_std of its nearest centre; a mode is covered when it gets at
/// least a quarter of the high-quality samples an equal share (N / K) would give it.
struct ModeStats {
  int64_t covered = 0;
  double hq_fraction = 0.0;
  std::vector<int64_t> counts;
};
ModeStats mode_statistics(const torch::Tensor& samples, const torch::Tensor& centres,
                          double mode_std);

/// Fraction of the samples [N, D] within Euclidean distance `radius` of at least one of the
/// locations [K, D].
double mass_within(const torch::Tensor& samples, const torch::Tensor& locations, double radius);

}  // namespace uotflow
