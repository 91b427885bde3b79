// Kernel two-sample statistics, summed in row blocks in float64.
#include "uotflow/metrics/mmd.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"

namespace uotflow {
namespace {

constexpr int64_t kBlock = 2048;

// sum_{i, j} k(x_i, y_j), leaving out i == j when `same` (x and y are then the same set).
double kernel_sum(const torch::Tensor& x, const torch::Tensor& y, const Kernel& kernel, bool same) {
  auto total = torch::zeros({}, x.options());
  for (int64_t i = 0; i < x.size(0); i += kBlock) {
    auto xi = x.slice(0, i, std::min(i + kBlock, x.size(0)));
    for (int64_t j = 0; j < y.size(0); j += kBlock) {
      auto kij = kernel(xi, y.slice(0, j, std::min(j + kBlock, y.size(0))));
      total += kij.sum();
      if (same && i == j) {
        total -= kij.diagonal().sum();
      }
    }
  }
  return total.item<double>();
}

torch::Tensor as_double(const torch::Tensor& x) {
  return x.to(torch::kFloat64);
}

}  // namespace

torch::Tensor Kernel::operator()(const torch::Tensor& x, const torch::Tensor& y) const {
  if (name == "polynomial") {
    return (x.matmul(y.t()) / static_cast<double>(x.size(1)) + 1.0).pow(degree);
  }
  auto dist = torch::cdist(x, y);
  if (name == "energy") {
    return -dist;
  }
  if (bandwidths.empty()) {
    throw ConfigError("kernel '" + name + "' needs at least one bandwidth");
  }
  auto out = torch::zeros_like(dist);
  if (name == "gaussian") {
    auto d2 = dist * dist;
    for (double s : bandwidths) {
      out += torch::exp(d2 / (-2.0 * s * s));
    }
  } else if (name == "laplacian") {
    for (double s : bandwidths) {
      out += torch::exp(dist / -s);
    }
  } else {
    throw ConfigError("unknown kernel '" + name + "' (gaussian, laplacian, energy, polynomial)");
  }
  return out;
}

double mmd2_unbiased(const torch::Tensor& x, const torch::Tensor& y, const Kernel& kernel) {
  const int64_t n = x.size(0);
  const int64_t m = y.size(0);
  if (n < 2 || m < 2) {
    throw ConfigError("MMD needs at least two points in each set, got " + std::to_string(n) +
                      " and " + std::to_string(m));
  }
  for (double s : kernel.bandwidths) {
    if (!(s > 0) || !std::isfinite(s)) {
      throw ConfigError("kernel bandwidths must be finite and > 0, got " + std::to_string(s));
    }
  }
  auto a = as_double(x);
  auto b = as_double(y);
  const double xx = kernel_sum(a, a, kernel, true) / (static_cast<double>(n) * (n - 1));
  const double yy = kernel_sum(b, b, kernel, true) / (static_cast<double>(m) * (m - 1));
  const double xy = kernel_sum(a, b, kernel, false) / (static_cast<double>(n) * m);
  return xx + yy - 2.0 * xy;
}

double median_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t max_points) {
  const int64_t half = std::max<int64_t>(max_points / 2, 1);
  auto strided = [half](const torch::Tensor& t) {
    const int64_t stride = std::max<int64_t>((t.size(0) + half - 1) / half, 1);
    return as_double(t).slice(0, 0, t.size(0), stride);
  };
  auto pooled = torch::cat({strided(x), strided(y)});
  const int64_t k = pooled.size(0);
  auto idx = torch::triu_indices(k, k, 1, torch::TensorOptions().device(pooled.device()));
  auto dist = torch::cdist(pooled, pooled).index({idx[0], idx[1]});
  // quantile(0.5) averages the two middle values of an even count, like NumPy's median.
  return dist.numel() == 0 ? 0.0 : dist.quantile(0.5).item<double>();
}

std::vector<double> resolve_bandwidths(const torch::Tensor& x, const torch::Tensor& y,
                                       const std::vector<double>& given) {
  if (!given.empty()) {
    return given;
  }
  double median = median_distance(x, y);
  if (!(median > 0)) {
    median = 1.0;  // every pooled point coincides: any bandwidth gives MMD 0
  }
  return {0.5 * median, median, 2.0 * median};
}

double energy_distance(const torch::Tensor& x, const torch::Tensor& y) {
  return mmd2_unbiased(x, y, Kernel{"energy", {}});
}

KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y,
                                    int64_t subset_size, int64_t n_subsets, uint64_t seed) {
  if (subset_size < 2 || n_subsets < 1) {
    throw ConfigError("KID needs subset_size >= 2 and n_subsets >= 1");
  }
  const Kernel cubic{"polynomial", {}, 3.0};
  if (x.size(0) <= subset_size || y.size(0) <= subset_size) {
    return {mmd2_unbiased(x, y, cubic), 0.0};
  }
  auto gen = make_stream(seed, "kid");
  std::vector<double> values;
  for (int64_t s = 0; s < n_subsets; ++s) {
    auto ix = torch::randperm(x.size(0), gen, torch::kLong).slice(0, 0, subset_size);
    auto iy = torch::randperm(y.size(0), gen, torch::kLong).slice(0, 0, subset_size);
    values.push_back(mmd2_unbiased(x.index_select(0, ix.to(x.device())),
                                   y.index_select(0, iy.to(y.device())), cubic));
  }
  auto t = torch::tensor(values, torch::kFloat64);
  return {t.mean().item<double>(), n_subsets > 1 ? t.std().item<double>() : 0.0};
}

}  // namespace uotflow
