// A finite point set in memory, resampled with replacement.
#include "uotflow/data/tensor_dataset.h"

#include <torch/torch.h>

#include "uotflow/core/error.h"

namespace uotflow {

TensorDataset::TensorDataset(const torch::Tensor& points) {
  if (!points.defined() || (points.dim() != 2 && points.dim() != 4) || points.size(0) < 1 ||
      !points.is_floating_point()) {
    throw ConfigError(
        "TensorDataset needs a float tensor [N, D] or images [N, C, H, W] with N >= 1");
  }
  if (points.dim() == 4) {
    image_shape_ = {points.size(1), points.size(2), points.size(3)};
  }
  points_ =
      points.detach().to(torch::kCPU, torch::kFloat32).reshape({points.size(0), -1}).contiguous();
  if (!torch::isfinite(points_).all().item<bool>()) {
    throw ConfigError("TensorDataset: the points hold NaN or infinite values");
  }
  // A set of identical zero points would give an empty window; fall back to a unit one.
  const double extent = points_.abs().max().item<double>();
  plot_radius_ = extent > 0.0 ? 1.05 * extent : 1.0;
}

torch::Tensor TensorDataset::sample(int64_t n, at::Generator& gen) const {
  return points_.index_select(0, torch::randint(points_.size(0), {n}, gen));
}

}  // namespace uotflow
