// Metric registry: exact, entropic and sliced OT, kernel statistics, Gaussian fits, mixture
// diagnostics. Every metric validates its inputs once in compute_metric.
#include "uotflow/metrics/metrics.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/ot/exact.h"
#include "uotflow/ot/sinkhorn.h"
#include "uotflow/ot/sliced.h"

namespace uotflow {
namespace {

torch::Tensor as_f64(const torch::Tensor& x) {
  return x.to(torch::kFloat64);
}

void require_same_dim(const torch::Tensor& locations, int64_t dim, const std::string& name,
                      const char* what) {
  if (locations.dim() != 2 || locations.size(1) != dim) {
    throw ConfigError("metric '" + name + "': " + what + " must be [K, " + std::to_string(dim) +
                      "], got shape " + c10::str(locations.sizes()));
  }
}

bool is_one_of(const std::string& name, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

double exact_metric(const torch::Tensor& x, const torch::Tensor& y, double p) {
  return wasserstein_exact(x, y, p);
}

void add(MetricRegistry& r, const std::string& name, const std::string& description, MetricFn fn) {
  r.add(name, description, [fn] { return fn; });
}

}  // namespace

MetricRegistry& metric_registry() {
  static MetricRegistry registry = [] {
    MetricRegistry r("metric");
    add(r, "w1", "exact Wasserstein-1 distance (network simplex, up to 5000 x 5000 points)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return exact_metric(x, y, 1.0);
        });
    add(r, "w2", "exact Wasserstein-2 distance, square root taken (up to 5000 x 5000 points)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return exact_metric(x, y, 2.0);
        });
    add(r, "sw1", "sliced Wasserstein-1 distance, L seeded directions",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return sliced_wasserstein(as_f64(x), as_f64(y), c.n_projections, c.seed, 1.0)
              .item<double>();
        });
    add(r, "sw2", "sliced Wasserstein-2 distance (square root taken), L seeded directions",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return sliced_wasserstein(as_f64(x), as_f64(y), c.n_projections, c.seed, 2.0)
              .item<double>();
        });
    add(r, "sinkhorn", "debiased Sinkhorn divergence, cost |x - y|^2, regularisation epsilon",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          SinkhornOptions options;
          options.epsilon = c.epsilon;
          return sinkhorn_divergence(as_f64(x), as_f64(y), options).item<double>();
        });
    add(r, "mmd_gaussian",
        "unbiased MMD^2, sum of gaussian kernels (bandwidths or median x 1/2,1,2)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return mmd2_unbiased(x, y, Kernel{"gaussian", resolve_bandwidths(x, y, c.bandwidths)});
        });
    add(r, "mmd_laplacian", "unbiased MMD^2, sum of laplacian kernels exp(-|x - y| / s)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return mmd2_unbiased(x, y, Kernel{"laplacian", resolve_bandwidths(x, y, c.bandwidths)});
        });
    add(r, "energy", "energy distance (unbiased MMD^2 of the kernel -|x - y|)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return energy_distance(x, y);
        });
    add(r, "energy_sliced",
        "energy distance by sorting along L seeded directions, O(L n log n) (sliced Riesz MMD)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return sliced_energy_distance(as_f64(x), as_f64(y), c.n_projections, c.seed)
              .item<double>();
        });
    add(r, "gauss_kl", "KL(fit(samples) || fit(reference)) between moment-matched Gaussians",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return gaussian_kl(fit_gaussian(x), fit_gaussian(y));
        });
    add(r, "gauss_skl", "symmetric KL between moment-matched Gaussians",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return gaussian_symmetric_kl(fit_gaussian(x), fit_gaussian(y));
        });
    add(r, "gauss_w2", "W2 (Bures) between moment-matched Gaussians, square root taken",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return std::sqrt(frechet_distance(x, y));
        });
    add(r, "frechet", "Frechet distance (squared Gaussian W2; FID on inception features)",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return frechet_distance(x, y);
        });
    add(r, "kid", "kernel inception distance: cubic-kernel MMD^2 over 100 subsets of 1000",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext& c) {
          return kernel_inception_distance(x, y, 1000, 100, c.seed).mean;
        });
    add(r, "mean_error", "Euclidean norm of the difference of the means",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return (as_f64(x).mean(0) - as_f64(y).mean(0)).norm().item<double>();
        });
    add(r, "cov_error", "Frobenius norm of the difference of the covariances",
        [](const torch::Tensor& x, const torch::Tensor& y, const MetricContext&) {
          return (fit_gaussian(x).cov - fit_gaussian(y).cov).norm().item<double>();
        });
    add(r, "modes", "number of mixture modes covered (needs centres)",
        [](const torch::Tensor& x, const torch::Tensor&, const MetricContext& c) {
          return static_cast<double>(mode_statistics(x, c.centres, c.mode_std).covered);
        });
    add(r, "hq_fraction", "fraction of samples within 3 std of a mode centre (needs centres)",
        [](const torch::Tensor& x, const torch::Tensor&, const MetricContext& c) {
          return mode_statistics(x, c.centres, c.mode_std).hq_fraction;
        });
    add(r, "outlier_mass", "fraction of samples within a radius of given outlier locations",
        [](const torch::Tensor& x, const torch::Tensor&, const MetricContext& c) {
          return mass_within(x, c.outliers, c.outlier_radius);
        });
    return r;
  }();
  return registry;
}

void check_metric(const std::string& name, int64_t n, int64_t m, int64_t dim,
                  const MetricContext& c) {
  metric_registry().at(name);  // unknown names list the known ones
  const auto fail = [&](const std::string& why) {
    throw ConfigError("metric '" + name + "': " + why);
  };
  if (n < 1 || m < 1) {
    fail("empty sample set");
  }
  if (is_one_of(name, {"w1", "w2"}) && n * m > kExactMetricMaxPairs) {
    fail("exact OT between " + std::to_string(n) + " and " + std::to_string(m) +
         " points is beyond the 5000 x 5000 limit; use fewer points or s" + name);
  }
  if (is_one_of(name, {"sw1", "sw2", "energy_sliced"}) && c.n_projections < 1) {
    fail("needs n_projections >= 1, got " + std::to_string(c.n_projections));
  }
  if (is_one_of(name, {"sw1", "sw2", "energy_sliced"})) {
    // The directions [D, L] and both sets projected on them [N + M, L] (float32), and sorted.
    const double projections = static_cast<double>(c.n_projections);
    check_fits_in_memory(
        "metric '" + name + "': n_projections = " + std::to_string(c.n_projections),
        sizeof(float) * projections * (dim + 2.0 * (n + m)));
  }
  if (name == "sinkhorn" && !(c.epsilon > 0 && std::isfinite(c.epsilon))) {
    std::ostringstream got;
    got << c.epsilon;
    fail("needs a finite epsilon > 0, got " + got.str());
  }
  const bool pairwise =
      is_one_of(name, {"mmd_gaussian", "mmd_laplacian", "energy", "energy_sliced", "kid"});
  const bool fitted =
      is_one_of(name, {"gauss_kl", "gauss_skl", "gauss_w2", "frechet", "cov_error"});
  if ((pairwise || fitted) && (n < 2 || m < 2)) {
    fail("needs at least two points in each set, got " + std::to_string(n) + " and " +
         std::to_string(m));
  }
  // O(N M) metrics: bounded up front rather than left to run for minutes.
  if (is_one_of(name, {"mmd_gaussian", "mmd_laplacian", "energy", "kid", "sinkhorn"}) &&
      static_cast<double>(n) * static_cast<double>(m) > kPairwiseMetricMaxPairs) {
    fail("all pairs of " + std::to_string(n) + " and " + std::to_string(m) +
         " points are beyond the 20000 x 20000 limit; use fewer points or a sliced metric");
  }
  // A Gaussian fit with as many points as dimensions or fewer is singular: KL needs its inverse.
  if (is_one_of(name, {"gauss_kl", "gauss_skl"}) && (n <= dim || m <= dim)) {
    fail("needs more points than dimensions in each set (" + std::to_string(dim) + "), got " +
         std::to_string(n) + " and " + std::to_string(m));
  }
  if (is_one_of(name, {"modes", "hq_fraction"})) {
    if (!c.centres.defined() || !(c.mode_std > 0)) {
      fail(
          "needs mixture centres and a mode std (centres and mode_std, or a data set with known "
          "modes)");
    }
    require_same_dim(c.centres, dim, name, "centres");
    if (!torch::isfinite(c.centres).all().item<bool>()) {
      fail("the mixture centres hold a value that is not finite");
    }
  }
  if (name == "outlier_mass") {
    if (!c.outliers.defined() || !(c.outlier_radius > 0)) {
      fail("needs outlier locations and a radius (outliers and outlier_radius)");
    }
    require_same_dim(c.outliers, dim, name, "outlier locations");
  }
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
  check_metric(name, samples.size(0), reference.size(0), samples.size(1), context);
  if (!torch::isfinite(samples).all().item<bool>() ||
      !torch::isfinite(reference).all().item<bool>()) {
    throw ConfigError("metric '" + name + "': non-finite values in the samples or the reference");
  }
  return fn(samples, reference, context);
}

}  // namespace uotflow
