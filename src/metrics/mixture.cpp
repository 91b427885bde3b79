// Mode coverage, high-quality fraction and mass near given locations.
#include "uotflow/metrics/mixture.h"

#include <torch/torch.h>

#include <limits>

namespace uotflow {
namespace {

// Distance from every sample to its nearest location, and that location's index: [N], [N].
std::tuple<torch::Tensor, torch::Tensor> nearest(const torch::Tensor& samples,
                                                 const torch::Tensor& locations) {
  auto x = samples.to(torch::kCPU, torch::kFloat64);
  auto c = locations.to(torch::kCPU, torch::kFloat64);
  return torch::cdist(x, c).min(1);
}

}  // namespace

ModeStats mode_statistics(const torch::Tensor& samples, const torch::Tensor& centres,
                          double mode_std) {
  auto [nearest_dist, nearest_index] = nearest(samples, centres);
  auto hq = nearest_dist <= 3.0 * mode_std;
  const int64_t k = centres.size(0);
  auto counts = torch::bincount(nearest_index.masked_select(hq), {}, k);
  ModeStats stats;
  stats.hq_fraction = hq.to(torch::kFloat64).mean().item<double>();
  const double needed = 0.25 * static_cast<double>(samples.size(0)) / static_cast<double>(k);
  for (int64_t i = 0; i < k; ++i) {
    stats.counts.push_back(counts[i].item<int64_t>());
    stats.covered += stats.counts.back() >= needed ? 1 : 0;
  }
  return stats;
}

ClassPreservation class_preservation(const torch::Tensor& source_labels,
                                     const torch::Tensor& image_labels, int64_t k) {
  TORCH_CHECK(source_labels.dim() == 1 && image_labels.sizes() == source_labels.sizes() &&
                  source_labels.size(0) > 0,
              "class_preservation: labels must be [N > 0] alike, got ", source_labels.sizes(),
              " and ", image_labels.sizes());
  const auto source = source_labels.to(torch::kCPU, torch::kLong);
  const auto image = image_labels.to(torch::kCPU, torch::kLong);
  const auto kept = (source == image).logical_and(image >= 0);
  ClassPreservation result;
  result.rate = kept.to(torch::kFloat64).mean().item<double>();
  const auto n = static_cast<double>(source.size(0));
  for (int64_t c = 0; c < k; ++c) {
    const auto in_class = source == c;
    const auto count = in_class.sum().item<int64_t>();
    result.per_class.push_back(count == 0 ? std::numeric_limits<double>::quiet_NaN()
                                          : kept.logical_and(in_class).sum().item<double>() /
                                                static_cast<double>(count));
    result.target_share.push_back((image == c).sum().item<double>() / n);
  }
  return result;
}

ClassPreservation class_preservation(const torch::Tensor& x, const torch::Tensor& y,
                                     const torch::Tensor& source_centres,
                                     const torch::Tensor& target_centres, double target_std) {
  TORCH_CHECK(x.dim() == 2 && y.sizes() == x.sizes(),
              "class_preservation: inputs and images must be [N, D] alike, got ", x.sizes(),
              " and ", y.sizes());
  TORCH_CHECK(source_centres.dim() == 2 && source_centres.sizes() == target_centres.sizes(),
              "class_preservation: the source and target centres must be [K, D] alike, got ",
              source_centres.sizes(), " and ", target_centres.sizes());
  const auto source_class = std::get<1>(nearest(x, source_centres));
  auto [dist, target_class] = nearest(y, target_centres);
  if (target_std > 0) {
    target_class.masked_fill_(dist > 3.0 * target_std, -1);  // landed on no class
  }
  return class_preservation(source_class, target_class, source_centres.size(0));
}

double mass_within(const torch::Tensor& samples, const torch::Tensor& locations, double radius) {
  auto nearest_dist = std::get<0>(nearest(samples, locations));
  return (nearest_dist <= radius).to(torch::kFloat64).mean().item<double>();
}

}  // namespace uotflow
