// The shared machinery of JKO flows: proximal terms, Hessian log-determinants (exact and
// stochastic) and the closed-form Gaussian checks.
#include "uotflow/methods/jko.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// A Gaussian-fit statistic of samples, or NaN when the fit is singular or samples not finite.
template <typename F>
double fitted(const torch::Tensor& x, F&& statistic) {
  if (!torch::isfinite(x).all().item<bool>()) {
    return kNan;
  }
  try {
    return statistic(fit_gaussian(x));
  } catch (const ConfigError&) {
    return kNan;
  }
}

// H v for each row, H the Jacobian of y = T(x) (symmetric: T is a gradient).
torch::Tensor hessian_vector(const torch::Tensor& y, const torch::Tensor& x, const torch::Tensor& v,
                             bool create_graph) {
  return torch::autograd::grad({(y * v).sum()}, {x}, {}, /*retain_graph=*/true, create_graph)[0];
}

// Rows of +-1 from gen.
torch::Tensor rademacher(const torch::Tensor& like, at::Generator& gen) {
  auto bits = torch::randint(0, 2, like.sizes(), gen, torch::TensorOptions().dtype(torch::kLong));
  return (bits * 2 - 1).to(like.options());
}

// v^T log(H) v for each row by m steps of Lanczos from v (|v|^2 = D for a Rademacher v), with full
// reorthogonalisation (D is small enough to keep every Krylov vector).
torch::Tensor lanczos_quadrature(const torch::Tensor& y, const torch::Tensor& x,
                                 const torch::Tensor& v, int64_t m) {
  const auto norm2 = (v * v).sum(1);  // [N]
  std::vector<torch::Tensor> basis{v / norm2.sqrt().unsqueeze(1)};
  std::vector<torch::Tensor> alphas, betas;
  torch::Tensor beta_prev;
  for (int64_t j = 0; j < m; ++j) {
    const auto& q = basis.back();
    auto w = hessian_vector(y, x, q, false).detach();
    auto alpha = (w * q).sum(1);
    alphas.push_back(alpha);
    if (j + 1 == m) {
      break;
    }
    for (const auto& b : basis) {
      w = w - (w * b).sum(1, true) * b;
    }
    auto beta = w.norm(2, 1);
    betas.push_back(beta);
    // A Krylov space exhausted early (beta ~ 0) leaves the next vector's weight in the
    // quadrature at ~0, so any direction will do.
    basis.push_back(w / beta.clamp_min(1e-12).unsqueeze(1));
  }
  auto t = torch::diag_embed(torch::stack(alphas, 1).to(torch::kDouble));
  if (!betas.empty()) {
    auto off = torch::stack(betas, 1).to(torch::kDouble);
    t = t + torch::diag_embed(off, 1) + torch::diag_embed(off, -1);
  }
  auto [theta, u] = torch::linalg_eigh(t);
  auto weights = u.select(1, 0).pow(2);  // first components of the eigenvectors: [N, m]
  return norm2.to(torch::kDouble) *
         (weights * theta.clamp_min(std::numeric_limits<double>::min()).log()).sum(1);
}

// w = H^-1 v for each row by conjugate gradients (no graph).
torch::Tensor conjugate_gradient(const torch::Tensor& y, const torch::Tensor& x,
                                 const torch::Tensor& v, int64_t iterations, double tolerance) {
  constexpr double kTiny = 1e-30;
  auto w = torch::zeros_like(v);
  auto r = v.clone();
  auto p = r.clone();
  auto rs = (r * r).sum(1, true);
  const auto rs0 = rs.clone();
  for (int64_t i = 0; i < iterations; ++i) {
    auto hp = hessian_vector(y, x, p, false).detach();
    auto step = rs / (p * hp).sum(1, true).clamp_min(kTiny);
    w = w + step * p;
    r = r - step * hp;
    auto rs_new = (r * r).sum(1, true);
    if ((rs_new / rs0.clamp_min(kTiny)).max().item<double>() < tolerance * tolerance) {
      break;
    }
    p = r + rs_new / rs.clamp_min(kTiny) * p;
    rs = rs_new;
  }
  return w;
}

}  // namespace

JkoSchedule::JkoSchedule(int64_t n_phases, int64_t iterations, std::vector<int64_t> first,
                         const std::string& key)
    : n_phases_(n_phases), iterations_(iterations), first_(std::move(first)) {
  if (static_cast<int64_t>(first_.size()) > n_phases_) {
    throw ConfigError("'" + key + "' gives " + std::to_string(first_.size()) +
                      " iteration counts for " + std::to_string(n_phases_) + " JKO steps");
  }
  for (const auto count : first_) {
    if (count < 1) {
      throw ConfigError("'" + key + "' must hold counts >= 1, got " + std::to_string(count));
    }
  }
}

int64_t JkoSchedule::iterations_of(int64_t k) const {
  return k < static_cast<int64_t>(first_.size()) ? first_[k] : iterations_;
}

int64_t JkoSchedule::start(int64_t k) const {
  const auto listed = std::min<int64_t>(k, static_cast<int64_t>(first_.size()));
  int64_t total = std::accumulate(first_.begin(), first_.begin() + listed, int64_t{0});
  return total + (k - listed) * iterations_;
}

int64_t JkoSchedule::phase_of(int64_t step) const {
  int64_t k = 0;
  for (; k < static_cast<int64_t>(first_.size()); ++k) {
    if (step < start(k + 1)) {
      return k;
    }
  }
  return std::min(n_phases_ - 1, k + (step - start(k)) / iterations_);
}

double JkoSchedule::time(int64_t steps_done, double step_size) const {
  const auto listed = static_cast<int64_t>(first_.size());
  if (steps_done >= start(listed)) {
    // The steps of `iterations` each (all of them without first counts: tau * done / iterations).
    return step_size * static_cast<double>(listed) +
           step_size * static_cast<double>(steps_done - start(listed)) /
               static_cast<double>(iterations_);
  }
  const int64_t k = phase_of(steps_done);
  return step_size * static_cast<double>(k) +
         step_size * static_cast<double>(steps_done - start(k)) / static_cast<double>(first_[k]);
}

std::vector<Phase> JkoSchedule::phases(double step_size, const FlowClock& clock) const {
  std::vector<Phase> out;
  for (int64_t k = 1; k <= n_phases_; ++k) {
    out.push_back(Phase{start(k), clock.w_time(static_cast<double>(k) * step_size)});
  }
  return out;
}

Json functional_flow_defaults() {
  return Json{{"dim", 0},
              {"functional", {{"name", "kl"}, {"params", Json::object()}}},
              {"train",
               {{"steps", 0},
                {"log_every", 0},
                {"eval_every", 0},
                {"snapshot_every", 0},
                {"checkpoint_every", 0}}},
              {"eval", {{"n", 10000}, {"at_start", true}, {"metrics", Json::array()}}}};
}

torch::Tensor w2_proximal_term(const torch::Tensor& x, const torch::Tensor& y, double tau) {
  return (x - y).pow(2).sum(1).mean() / (2.0 * tau);
}

torch::Tensor log_det_hessian_exact(const torch::Tensor& y, const torch::Tensor& x,
                                    bool create_graph) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {x}, {}, /*retain_graph=*/true,
                                         create_graph)[0]);
  }
  return std::get<1>(torch::linalg_slogdet(torch::stack(rows, 1)));
}

torch::Tensor log_det_hessian_stochastic(const torch::Tensor& y, const torch::Tensor& x,
                                         const LogDetOptions& options, at::Generator& gen,
                                         bool create_graph) {
  const int64_t dim = x.size(1);
  const int64_t steps = std::clamp<int64_t>(options.lanczos_steps, 1, dim);
  auto value = torch::zeros({x.size(0)}, x.options().dtype(torch::kDouble));
  auto surrogate = torch::zeros({x.size(0)}, x.options());
  for (int64_t k = 0; k < options.probes; ++k) {
    const auto v = rademacher(x, gen);
    value = value + lanczos_quadrature(y, x, v, steps) / static_cast<double>(options.probes);
    if (create_graph) {
      const auto w = conjugate_gradient(y, x, v, options.cg_iterations, options.cg_tolerance);
      surrogate = surrogate +
                  (w * hessian_vector(y, x, v, true)).sum(1) / static_cast<double>(options.probes);
    }
  }
  return value.to(x.scalar_type()) + (surrogate - surrogate.detach());
}

GaussianFlowCheck::GaussianFlowCheck(const Problem& problem) {
  const auto target = problem.target_gaussian();
  const auto start = problem.source ? problem.source->gaussian() : GaussianParams{};
  if (target.mean.defined() && start.mean.defined()) {
    target_ = GaussianFit{target.mean, target.covariance};
    start_ = GaussianFit{start.mean, start.covariance};
  }
}

GaussianFit GaussianFlowCheck::exact(double w_time) const {
  return fokker_planck_gaussian(start_, target_, w_time);
}

double GaussianFlowCheck::fitted_kl(const torch::Tensor& x, double w_time) const {
  return fitted(x, [&](const GaussianFit& fit) { return gaussian_kl(fit, exact(w_time)); });
}

double GaussianFlowCheck::fitted_symmetric_kl(const torch::Tensor& x, double w_time) const {
  return fitted(x,
                [&](const GaussianFit& fit) { return gaussian_symmetric_kl(fit, exact(w_time)); });
}

double GaussianFlowCheck::density_kl(const torch::Tensor& x, const torch::Tensor& log_rho,
                                     double w_time) const {
  return (log_rho.to(torch::kDouble) - gaussian_log_prob(x, exact(w_time))).mean().item<double>();
}

double GaussianFlowCheck::density_symmetric_kl(
    const torch::Tensor& x, const torch::Tensor& log_rho,
    const std::function<torch::Tensor(const torch::Tensor&)>& log_density, double w_time,
    at::Generator& gen) const {
  const auto solution = exact(w_time);
  auto y = gaussian_draw(solution, x.size(0), gen).to(torch::kFloat32);
  auto forward = (log_rho.to(torch::kDouble) - gaussian_log_prob(x, solution)).mean();
  auto backward = (gaussian_log_prob(y, solution) - log_density(y).to(torch::kDouble)).mean();
  return (forward + backward).item<double>();
}

torch::Tensor gaussian_log_prob(const torch::Tensor& x, const GaussianFit& g) {
  auto l = torch::linalg_cholesky(g.cov);
  auto diff = (x.to(torch::kDouble) - g.mean).t();  // [D, N]
  auto sol = torch::linalg_solve_triangular(l, diff, /*upper=*/false);
  const double d = static_cast<double>(x.size(1));
  return -0.5 * sol.pow(2).sum(0) - l.diagonal().log().sum() - 0.5 * d * std::log(2 * M_PI);
}

torch::Tensor gaussian_draw(const GaussianFit& g, int64_t n, at::Generator& gen) {
  auto l = torch::linalg_cholesky(g.cov);
  return g.mean + torch::randn({n, g.mean.size(0)}, gen, torch::kDouble).matmul(l.t());
}

}  // namespace uotflow
