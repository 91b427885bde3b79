// Gaussian fits, KL and Bures-Wasserstein distances in float64.
#include "uotflow/metrics/gaussian.h"

#include <torch/torch.h>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

// Cholesky factor of a covariance, or a ConfigError naming the problem.
torch::Tensor cholesky_or_throw(const torch::Tensor& cov, const char* which) {
  auto [factor, info] = torch::linalg_cholesky_ex(cov);
  if (info.item<int64_t>() != 0) {
    throw ConfigError(std::string("gaussian KL: the ") + which + " covariance (" +
                      std::to_string(cov.size(0)) +
                      " dimensions) is singular; it needs more points than dimensions and no "
                      "degenerate directions");
  }
  return factor;
}

void check_same_dim(const GaussianFit& p, const GaussianFit& q) {
  if (p.mean.size(0) != q.mean.size(0)) {
    throw ConfigError("gaussian fits of different dimensions: " + std::to_string(p.mean.size(0)) +
                      " vs " + std::to_string(q.mean.size(0)));
  }
}

}  // namespace

GaussianFit fit_gaussian(const torch::Tensor& x) {
  if (x.dim() != 2 || x.size(0) < 2) {
    throw ConfigError("a gaussian fit needs [N, D] samples with N >= 2, got shape " +
                      c10::str(x.sizes()));
  }
  auto a = x.to(torch::kCPU, torch::kFloat64);
  auto mean = a.mean(0);
  auto centred = a - mean;
  auto cov = centred.t().matmul(centred) / static_cast<double>(a.size(0) - 1);
  return {mean, (cov + cov.t()) / 2.0};
}

torch::Tensor sqrtm_psd(const torch::Tensor& s) {
  auto [values, vectors] = torch::linalg_eigh(s.to(torch::kFloat64));
  return (vectors * values.clamp_min(0).sqrt().unsqueeze(0)).matmul(vectors.t());
}

double gaussian_kl(const GaussianFit& p, const GaussianFit& q) {
  check_same_dim(p, q);
  auto lp = cholesky_or_throw(p.cov, "first");
  auto lq = cholesky_or_throw(q.cov, "second");
  const double d = static_cast<double>(p.mean.size(0));
  // tr(Sq^-1 Sp) = |Lq^-1 Lp|_F^2 and the Mahalanobis term |Lq^-1 (mq - mp)|^2.
  auto a = torch::linalg_solve_triangular(lq, lp, /*upper=*/false);
  auto dm = torch::linalg_solve_triangular(lq, (q.mean - p.mean).unsqueeze(1), /*upper=*/false);
  const double logdet_p = 2.0 * lp.diagonal().log().sum().item<double>();
  const double logdet_q = 2.0 * lq.diagonal().log().sum().item<double>();
  return 0.5 *
         ((a * a).sum().item<double>() + (dm * dm).sum().item<double>() - d + logdet_q - logdet_p);
}

double gaussian_symmetric_kl(const GaussianFit& p, const GaussianFit& q) {
  return gaussian_kl(p, q) + gaussian_kl(q, p);
}

double gaussian_w2_squared(const GaussianFit& p, const GaussianFit& q) {
  check_same_dim(p, q);
  auto root_p = sqrtm_psd(p.cov);
  auto middle = root_p.matmul(q.cov).matmul(root_p);
  // The eigenvalues of the symmetric PSD product are >= 0 up to round-off.
  auto cross = torch::linalg_eigvalsh((middle + middle.t()) / 2.0).clamp_min(0).sqrt().sum();
  auto dm = p.mean - q.mean;
  const double value = (dm * dm).sum().item<double>() + p.cov.trace().item<double>() +
                       q.cov.trace().item<double>() - 2.0 * cross.item<double>();
  return std::max(value, 0.0);
}

double frechet_distance(const torch::Tensor& x, const torch::Tensor& y) {
  return gaussian_w2_squared(fit_gaussian(x), fit_gaussian(y));
}

GaussianFit fokker_planck_gaussian(const GaussianFit& start, const GaussianFit& target, double t) {
  TORCH_CHECK(t >= 0, "fokker_planck_gaussian: t must be >= 0, got ", t);
  const auto cov = target.cov.to(torch::kDouble);
  // Target covariance Q diag(c) Q^T, so A = Q diag(1/c) Q^T and every matrix function of A is
  // diagonal in Q.
  auto [c, q] = torch::linalg_eigh(0.5 * (cov + cov.t()));
  TORCH_CHECK(c.min().item<double>() > 0,
              "fokker_planck_gaussian: the target covariance is not "
              "positive definite");
  const auto decay = torch::exp(-t / c);                      // e^{-t lambda}
  const auto e = q.matmul(torch::diag(decay)).matmul(q.t());  // e^{-tA}
  const auto noise = q.matmul(torch::diag(c * (1.0 - decay * decay))).matmul(q.t());
  const auto m0 = start.mean.to(torch::kDouble);
  const auto s0 = start.cov.to(torch::kDouble);
  GaussianFit out;
  out.mean = target.mean.to(torch::kDouble) + e.matmul(m0 - target.mean.to(torch::kDouble));
  out.cov = e.matmul(s0).matmul(e) + noise;
  out.cov = 0.5 * (out.cov + out.cov.t());
  return out;
}

}  // namespace uotflow
