// Private to src/data: a data set described by a sampling function, and the registration hooks the
// data-set files share.
#pragma once

#include <functional>
#include <utility>

#include "uotflow/data/dataset.h"

namespace uotflow::data_detail {

/// What a data set is made of when it needs no state beyond a few constants.
struct SamplerSpec {
  int64_t dim = 2;
  /// Draws [n, dim] float32 samples from the generator only.
  std::function<torch::Tensor(int64_t n, at::Generator& gen)> sample;
  double plot_radius = 1.0;
  torch::Tensor centres;  // [K, dim] float32 or undefined
  double mode_std = 0.0;
  GaussianParams gaussian;  // defined for Gaussian sets
};

class SamplerDataset : public Dataset {
 public:
  explicit SamplerDataset(SamplerSpec spec) : spec_(std::move(spec)) {}
  int64_t dim() const override {
    return spec_.dim;
  }
  torch::Tensor sample(int64_t n, at::Generator& gen) const override {
    return spec_.sample(n, gen);
  }
  torch::Tensor centres() const override {
    return spec_.centres;
  }
  double mode_std() const override {
    return spec_.mode_std;
  }
  double plot_radius() const override {
    return spec_.plot_radius;
  }
  GaussianParams gaussian() const override {
    return spec_.gaussian;
  }

 private:
  SamplerSpec spec_;
};

/// Registers 8gaussians, 25gaussians, checkerboard, moons, spiral, swissroll, twocircles and rings.
void add_toy2d_datasets(DatasetRegistry& registry);
/// fashion_mnist, mnist, cifar10, image_folder, image_mix (src/data/images.cpp).
void add_image_datasets(DatasetRegistry& registry);

}  // namespace uotflow::data_detail
