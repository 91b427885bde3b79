// Ground costs c(x, y): between matched pairs (the semi-dual losses) and between all pairs (cost
// matrices for Sinkhorn and exact OT), picked by name from the "cost" registry.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "uotflow/core/registry.h"

namespace uotflow {

enum class CostReduction { kSum, kMean };

/// Parses "sum" | "mean"; anything else is a ConfigError.
CostReduction parse_cost_reduction(const std::string& name);

/// A ground cost with a scale and a reduction over coordinates.
///
///   auto cost = cost_registry().create("quadratic", /*cost_scale=*/0.1, CostReduction::kSum);
///   torch::Tensor c = cost->pairwise(x, y);   // x, y: [B, D] -> [B]
///   torch::Tensor m = cost->all_pairs(x, y);  // x: [N, D], y: [M, D] -> [N, M]
class Cost {
 public:
  virtual ~Cost() = default;
  /// x, y: [B, ...] (same shape; every non-batch dimension is reduced) -> [B].
  virtual torch::Tensor pairwise(const torch::Tensor& x, const torch::Tensor& y) const = 0;
  /// x: [N, D], y: [M, D] -> [N, M] with entry (i, j) = pairwise(x_i, y_j).
  virtual torch::Tensor all_pairs(const torch::Tensor& x, const torch::Tensor& y) const = 0;
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& y) const {
    return pairwise(x, y);
  }
};

/// Factories take cost_scale (>= 0) and the reduction.
using CostRegistry = Registry<std::unique_ptr<Cost>(double cost_scale, CostReduction reduction)>;
/// quadratic.
CostRegistry& cost_registry();

/// Quadratic cost c(x, y) = cost_scale * sum_i (x_i - y_i)^2, or cost_scale * mean_i (...) with
/// kMean: the "quadratic" entry.
///
///   QuadraticCost cost(/*cost_scale=*/0.1, CostReduction::kSum);
///   torch::Tensor c = cost(x, y);  // x, y: [B, D] -> [B]
class QuadraticCost : public Cost {
 public:
  explicit QuadraticCost(double cost_scale = 1.0, CostReduction reduction = CostReduction::kSum);

  torch::Tensor pairwise(const torch::Tensor& x, const torch::Tensor& y) const override;
  torch::Tensor all_pairs(const torch::Tensor& x, const torch::Tensor& y) const override;

  double cost_scale() const {
    return cost_scale_;
  }
  CostReduction reduction() const {
    return reduction_;
  }

 private:
  double cost_scale_;
  CostReduction reduction_;
};

}  // namespace uotflow
