// The cost registry and the quadratic ground cost (a scale and a sum/mean reduction over
// coordinates).
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

torch::Tensor QuadraticCost::pairwise(const torch::Tensor& x, const torch::Tensor& y) const {
  TORCH_CHECK(x.sizes() == y.sizes(), "QuadraticCost: shapes differ: ", x.sizes(), " vs ",
              y.sizes());
  TORCH_CHECK(x.dim() >= 1, "QuadraticCost: expected [B, ...], got a scalar");
  auto diff2 = (x - y).pow(2).flatten(1);
  auto per_sample = reduction_ == CostReduction::kSum ? diff2.sum(1) : diff2.mean(1);
  return cost_scale_ * per_sample;
}

torch::Tensor QuadraticCost::all_pairs(const torch::Tensor& x, const torch::Tensor& y) const {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1),
              "QuadraticCost: expected [N, D] and [M, D], got ", x.sizes(), " and ", y.sizes());
  // |x|^2 + |y|^2 - 2 x.y, clamped at 0 against rounding.
  auto sq =
      (x.pow(2).sum(1, true) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x.matmul(y.t())).clamp_min(0.0);
  const double per = reduction_ == CostReduction::kSum ? 1.0 : 1.0 / static_cast<double>(x.size(1));
  return (cost_scale_ * per) * sq;
}

CostRegistry& cost_registry() {
  static CostRegistry registry = [] {
    CostRegistry r("cost");
    r.add("quadratic", "cost_scale * sum|mean_i (x_i - y_i)^2",
          [](double scale, CostReduction reduction) -> std::unique_ptr<Cost> {
            return std::make_unique<QuadraticCost>(scale, reduction);
          });
    return r;
  }();
  return registry;
}

}  // namespace uotflow
