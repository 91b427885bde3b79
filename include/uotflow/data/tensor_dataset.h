// A finite point set held in memory: the data set a C++ program trains on without a file.
#pragma once

#include <torch/types.h>

#include <vector>

#include "uotflow/data/dataset.h"

namespace uotflow {

/// Draws rows of a tensor uniformly with replacement.
///
///   auto x = torch::randn({5000, 2}) * 0.1 + 1.0;
///   auto data = std::make_shared<TensorDataset>(x);   // x: [N, D] (or [N, C, H, W] images)
///   train(config, data, TrainOptions());
class TensorDataset : public Dataset {
 public:
  /// points: [N, D] of any float dtype and device (kept as float32 CPU), N >= 1; or images
  /// [N, C, H, W] in [-1, 1], kept flattened with image_shape() = [C, H, W].
  explicit TensorDataset(const torch::Tensor& points);

  int64_t dim() const override {
    return points_.size(1);
  }
  /// [n, D] float32: rows drawn with replacement from `gen`.
  torch::Tensor sample(int64_t n, at::Generator& gen) const override;
  std::vector<int64_t> image_shape() const override {
    return image_shape_;
  }
  /// 1.05 times the largest |coordinate| (1 when all are zero).
  double plot_radius() const override {
    return plot_radius_;
  }
  /// The points: [N, D] float32 (CPU).
  const torch::Tensor& points() const {
    return points_;
  }

 private:
  torch::Tensor points_;
  std::vector<int64_t> image_shape_;
  double plot_radius_ = 1.0;
};

}  // namespace uotflow
