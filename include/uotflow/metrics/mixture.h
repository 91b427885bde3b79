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

/// How a map between two mixtures with paired components (row c of each centre tensor) keeps
/// classes. The class of a source point is its nearest source centre; an image lands on target
/// class c when c is its nearest target centre and, with target_std > 0, it lies within
/// 3 * target_std of it.
struct ClassPreservation {
  double rate = 0.0;                 ///< share of all inputs whose image lands on their own class
  std::vector<double> per_class;     ///< the same within each source class (NaN: no inputs)
  std::vector<double> target_share;  ///< share of all images that land on each target class
};
/// From labels: source_labels [N] (the class of each input, 0 .. k-1) and image_labels [N] (the
/// class its image lands on, -1 for none).
ClassPreservation class_preservation(const torch::Tensor& source_labels,
                                     const torch::Tensor& image_labels, int64_t k);
/// Between mixtures: x: inputs [N, D], y: their images [N, D] (row i of y is the image of row i of
/// x); centres [K, D] each.
ClassPreservation class_preservation(const torch::Tensor& x, const torch::Tensor& y,
                                     const torch::Tensor& source_centres,
                                     const torch::Tensor& target_centres, double target_std);

/// Fraction of the samples [N, D] within Euclidean distance `radius` of at least one of the
/// locations [K, D].
double mass_within(const torch::Tensor& samples, const torch::Tensor& locations, double radius);

}  // namespace uotflow
