// Ground costs between matched pairs of points.
#pragma once

#include <torch/types.h>

#include <string>

namespace uotflow {

enum class CostReduction { kSum, kMean };

/// Parses "sum" | "mean"; anything else is a ConfigError.
CostReduction parse_cost_reduction(const std::string& name);

/// Quadratic cost c(x, y) = cost_scale * sum_i (x_i - y_i)^2, or cost_scale * mean_i (...) with
/// kMean.
///
///   QuadraticCost cost(/*cost_scale=*/0.1, CostReduction::kSum);
///   torch::Tensor c = cost(x, y);  // x, y: [B, D] -> [B]
class QuadraticCost {
 public:
  explicit QuadraticCost(double cost_scale = 1.0, CostReduction reduction = CostReduction::kSum);

  /// x, y: [B, ...] (same shape; every non-batch dimension is reduced) -> [B].
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& y) const;

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
