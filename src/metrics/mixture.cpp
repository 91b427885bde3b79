// Mode coverage, high-quality fraction and mass near given locations.
#include "uotflow/metrics/mixture.h"

#include <torch/torch.h>

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

double mass_within(const torch::Tensor& samples, const torch::Tensor& locations, double radius) {
  auto nearest_dist = std::get<0>(nearest(samples, locations));
  return (nearest_dist <= radius).to(torch::kFloat64).mean().item<double>();
}

}  // namespace uotflow
