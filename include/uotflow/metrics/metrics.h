// Sample-based metrics between a generated set and a reference set, behind a name registry: the
// names `uotflow eval` and the trainer's eval.metrics accept.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/core/registry.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/metrics/mixture.h"
#include "uotflow/metrics/mmd.h"

namespace uotflow {

/// What a metric may need beyond the two sample sets.
struct MetricContext {
  uint64_t seed = 0;               ///< seed of random directions (sliced) and subsets (kid)
  int64_t n_projections = 1000;    ///< L for sliced metrics
  double epsilon = 0.01;           ///< entropic regularisation for sinkhorn (cost |x - y|^2)
  std::vector<double> bandwidths;  ///< MMD bandwidths; empty = median heuristic x {1/2, 1, 2}
  torch::Tensor centres;           ///< [K, D] mixture centres (mode metrics), may be undefined
  double mode_std = 0.0;           ///< component std for the mode metrics
  torch::Tensor outliers;          ///< [K, D] outlier locations (outlier_mass), may be undefined
  double outlier_radius = 0.0;     ///< radius around each outlier location
};

/// samples: [N, D], reference: [M, D] (float32 or float64, CPU or CUDA) -> a number.
using MetricFn = double (*)(const torch::Tensor& samples, const torch::Tensor& reference,
                            const MetricContext& context);
using MetricRegistry = Registry<MetricFn()>;

/// w1, w2, sw1, sw2, sinkhorn, mmd_gaussian, mmd_laplacian, energy, energy_sliced, gauss_kl,
/// gauss_skl, gauss_w2, frechet, kid, mean_error, cov_error, modes, hq_fraction, outlier_mass.
MetricRegistry& metric_registry();

/// Checks, before any work, that metric `name` can run on n samples and m reference points of
/// dimension `dim` with `context`: enough points, the exact-OT size limit, L > 0 projections,
/// epsilon > 0, mixture centres or outlier locations where needed. Raises the ConfigError that
/// compute_metric would raise at these sizes (compute_metric calls it first).
void check_metric(const std::string& name, int64_t n, int64_t m, int64_t dim,
                  const MetricContext& context);

/// Computes one registered metric; validates shapes (same D, non-empty, finite) with a ConfigError.
double compute_metric(const std::string& name, const torch::Tensor& samples,
                      const torch::Tensor& reference, const MetricContext& context = {});

/// Largest N * M for which the exact metrics (w1, w2) run: 5,000 x 5,000.
constexpr int64_t kExactMetricMaxPairs = 25'000'000;
/// Largest N x M of the metrics over all pairs (energy, MMD, KID, Sinkhorn): 20000 x 20000, about
/// a minute of one core; check_metric refuses more.
constexpr double kPairwiseMetricMaxPairs = 20000.0 * 20000.0;

}  // namespace uotflow
