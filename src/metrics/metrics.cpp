// Metric registry: sliced Wasserstein, energy distance, moment errors and mode statistics.
#include "uotflow/metrics/metrics.h"

#include <torch/torch.h>

#include "uotflow/core/error.h"
#include "uotflow/ot/sliced.h"

namespace uotflow {
namespace {

torch::Tensor as_f64(const torch::Tensor& x) {
  return x.to(torch::kFloat64);
}

// Sum of pairwise distances between blocks of rows, in float64.
double pairwise_distance_sum(const torch::Tensor& x, const torch::Tensor& y) {
  constexpr int64_t kBlock = 2048;
  double total = 0.0;
  for (int64_t i = 0; i < x.size(0); i += kBlock) {
    auto xi = x.slice(0, i, std::min(i + kBlock, x.size(0)));
    for (int64_t j = 0; j < y.size(0); j += kBlock) {
      auto yj = y.slice(0, j, std::min(j + kBlock, y.size(0)));
      total += torch::cdist(xi, yj).sum().item<double>();
    }
  }
  return total;
}

torch::Tensor covariance(const torch::Tensor& x) {
  auto centred = x - x.mean(0, true);
  return centred.t().matmul(centred) / std::max<int64_t>(x.size(0) - 1, 1);
}

void require_centres(const MetricContext& context, const char* name) {
  if (!context.centres.defined() || context.mode_std <= 0) {
    throw ConfigError(std::string("metric '") + name +
                      "' needs mixture centres and a mode std (data sets with known modes only)");
  }
}

}  // namespace

double energy_distance(const torch::Tensor& x, const torch::Tensor& y) {
  auto a = as_f64(x);
  auto b = as_f64(y);
  const double n = a.size(0);
  const double m = b.size(0);
  TORCH_CHECK(n >= 2 && m >= 2, "energy distance needs at least two points in each set");
  const double xy = pairwise_distance_sum(a, b) / (n * m);
  // The diagonal contributes zeros, so dividing by n (n - 1) gives the U-statistic.
  const double xx = pairwise_distance_sum(a, a) / (n * (n - 1));
  const double yy = pairwise_distance_sum(b, b) / (m * (m - 1));
  return 2 * xy - xx - yy;
}

ModeStats mode_statistics(const torch::Tensor& samples, const torch::Tensor& centres,
                          double mode_std) {
  auto x = as_f64(samples).cpu();
  auto c = as_f64(centres).cpu();
  auto dist = torch::cdist(x, c);  // [N, K]
  auto [nearest_dist, nearest] = dist.min(1);
  auto hq = nearest_dist <= 3.0 * mode_std;
  const int64_t k = c.size(0);
  auto counts = torch::bincount(nearest.masked_select(hq), {}, k);
  ModeStats stats;
  stats.hq_fraction = hq.to(torch::kFloat64).mean().item<double>();
  const double needed = 0.25 * static_cast<double>(x.size(0)) / static_cast<double>(k);
  for (int64_t i = 0; i < k; ++i) {
    stats.counts.push_back(counts[i].item<int64_t>());
    stats.covered += stats.counts.back() >= needed ? 1 : 0;
  }
  return stats;
}

MetricRegistry& metric_registry() {
  static MetricRegistry registry = [] {
    MetricRegistry r("metric");
    r.add("sw2", "sliced Wasserstein-2 distance (square root taken), L seeded directions", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
        return sliced_wasserstein(as_f64(x), as_f64(y), c.n_projections, c.seed, 2.0)
            .item<double>();
      }};
    });
    r.add("sw1", "sliced Wasserstein-1 distance, L seeded directions", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
        return sliced_wasserstein(as_f64(x), as_f64(y), c.n_projections, c.seed, 1.0)
            .item<double>();
      }};
    });
    r.add("energy", "energy distance (unbiased U-statistic)", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
        return energy_distance(x, y);
      }};
    });
    r.add("mean_error", "Euclidean norm of the difference of the means", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
        return (as_f64(x).mean(0) - as_f64(y).mean(0)).norm().item<double>();
      }};
    });
    r.add("cov_error", "Frobenius norm of the difference of the covariances", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
        return (covariance(as_f64(x)) - covariance(as_f64(y))).norm().item<double>();
      }};
    });
    r.add("modes", "number of mixture modes covered (needs centres)", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor&, const MetricContext& c) {
        require_centres(c, "modes");
        return static_cast<double>(mode_statistics(x, c.centres, c.mode_std).covered);
      }};
    });
    r.add("hq_fraction", "fraction of samples within 3 std of a mode centre (needs centres)", [] {
      return MetricFn{[](const torch::Tensor& x, const torch::Tensor&, const MetricContext& c) {
        require_centres(c, "hq_fraction");
        return mode_statistics(x, c.centres, c.mode_std).hq_fraction;
      }};
    });
    return r;
  }();
  return registry;
}

double compute_metric(const std::string& name, const torch::Tensor& samples,
                      const torch::Tensor& reference, const MetricContext& context) {
  auto fn = metric_registry().create(name);
  if (samples.dim() != 2 || reference.dim() != 2) {
    throw ConfigError("metric '" + name + "': expected [N, D] sample sets, got shapes " +
                      c10::str(samples.sizes()) + " and " + c10::str(reference.sizes()));
  }
  if (samples.size(1) != reference.size(1)) {
    throw ConfigError("metric '" + name + "': dimensions differ: " +
                      std::to_string(samples.size(1)) + " vs " + std::to_string(reference.size(1)));
  }
  if (samples.size(0) == 0 || reference.size(0) == 0) {
    throw ConfigError("metric '" + name + "': empty sample set");
  }
  if (!torch::isfinite(samples).all().item<bool>() ||
      !torch::isfinite(reference).all().item<bool>()) {
    throw ConfigError("metric '" + name + "': non-finite values in the samples or the reference");
  }
  return fn(samples, reference, context);
}

}  // namespace uotflow
