// Quadratic ground cost with a scale and a sum/mean reduction over coordinates.
#include "uotflow/ot/cost.h"

#include <torch/torch.h>

#include <cmath>

#include "uotflow/core/error.h"

namespace uotflow {

CostReduction parse_cost_reduction(const std::string& name) {
  if (name == "sum") {
    return CostReduction::kSum;
  }
  if (name == "mean") {
    return CostReduction::kMean;
  }
  throw ConfigError("unknown cost_reduction '" + name + "' (known: sum, mean)");
}

QuadraticCost::QuadraticCost(double cost_scale, CostReduction reduction)
    : cost_scale_(cost_scale), reduction_(reduction) {
  if (!(cost_scale >= 0) || !std::isfinite(cost_scale)) {
    throw ConfigError("cost_scale must be a finite number >= 0, got " + std::to_string(cost_scale));
  }
}

torch::Tensor QuadraticCost::operator()(const torch::Tensor& x, const torch::Tensor& y) const {
  TORCH_CHECK(x.sizes() == y.sizes(), "QuadraticCost: shapes differ: ", x.sizes(), " vs ",
              y.sizes());
  TORCH_CHECK(x.dim() >= 1, "QuadraticCost: expected [B, ...], got a scalar");
  auto diff2 = (x - y).pow(2).flatten(1);
  auto per_sample = reduction_ == CostReduction::kSum ? diff2.sum(1) : diff2.mean(1);
  return cost_scale_ * per_sample;
}

}  // namespace uotflow
