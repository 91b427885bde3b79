// Sample-based metrics between a generated set and a reference set, behind a name registry.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/core/registry.h"

namespace uotflow {

/// What a metric may need beyond the two sample sets.
struct MetricContext {
  uint64_t seed = 0;             ///< seed of the random directions (sliced metrics)
  int64_t n_projections = 1000;  ///< L for sliced metrics
  torch::Tensor centres;         ///< [K, D] mixture centres (mode metrics), may be undefined
  double mode_std = 0.0;         ///< component std for the mode metrics
};

/// samples: [N, D], reference: [M, D] (float32 or float64, CPU or CUDA) -> a number.
using MetricFn = double (*)(const torch::Tensor& samples, const torch::Tensor& reference,
                            const MetricContext& context);
using MetricRegistry = Registry<MetricFn()>;

/// sw1, sw2, energy, mean_error, cov_error, modes, hq_fraction.
MetricRegistry& metric_registry();

/// Computes one registered metric; validates shapes (same D, non-empty, finite) with a ConfigError.
double compute_metric(const std::string& name, const torch::Tensor& samples,
                      const torch::Tensor& reference, const MetricContext& context = {});

/// Energy distance, U-statistic: 2 E|X - Y| - E|X - X'| - E|Y - Y'| (pairs i != j inside each set).
/// Computed in float64 in blocks, so 10^4 x 10^4 needs no 10^8 matrix. x: [N, D], y: [M, D].
double energy_distance(const torch::Tensor& x, const torch::Tensor& y);

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

}  // namespace uotflow
