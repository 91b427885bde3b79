// Gaussian diagnostics: moment fits, KL and W2 (Bures) between Gaussians, and the Frechet
// distance between feature sets (the core of FID). float64 throughout; matrix square roots go
// through a symmetric eigendecomposition.
#pragma once

#include <torch/types.h>

namespace uotflow {

/// Mean [D] and unbiased covariance [D, D] (float64, CPU) of the rows of x [N, D], N >= 2.
struct GaussianFit {
  torch::Tensor mean;
  torch::Tensor cov;
};
GaussianFit fit_gaussian(const torch::Tensor& x);

/// Square root of a symmetric positive semi-definite matrix; eigenvalues below 0 (round-off) are
/// clamped to 0.
torch::Tensor sqrtm_psd(const torch::Tensor& s);

/// KL(p || q) = (tr(Sq^-1 Sp) + (mq - mp)^T Sq^-1 (mq - mp) - D + log det Sq - log det Sp) / 2.
/// Throws ConfigError when a covariance is singular (e.g. fewer points than dimensions).
double gaussian_kl(const GaussianFit& p, const GaussianFit& q);

/// KL(p || q) + KL(q || p).
double gaussian_symmetric_kl(const GaussianFit& p, const GaussianFit& q);

/// Squared W2 between Gaussians: |mp - mq|^2 + tr Sp + tr Sq - 2 tr (Sp^1/2 Sq Sp^1/2)^1/2.
double gaussian_w2_squared(const GaussianFit& p, const GaussianFit& q);

/// The Fokker-Planck flow towards N(b, A^-1) (Ornstein-Uhlenbeck: V(x) = (x-b)^T A (x-b) / 2)
/// started at N(m0, S0), at time t: m_t = b + e^{-tA}(m0 - b), S_t = e^{-tA} S0 e^{-tA} +
/// A^{-1/2}(I - e^{-2tA})A^{-1/2}. start, target: means [D] and covariances [D, D] (target.cov =
/// A^-1); float64.
GaussianFit fokker_planck_gaussian(const GaussianFit& start, const GaussianFit& target, double t);

/// Frechet distance between feature sets x [N, D] and y [M, D]: gaussian_w2_squared of their
/// fits (the FID formula, no square root).
double frechet_distance(const torch::Tensor& x, const torch::Tensor& y);

}  // namespace uotflow
