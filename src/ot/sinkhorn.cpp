// Entropic OT by Sinkhorn iterations in the scaling domain with log-domain absorption (Schmitzer
// 2016): the kernel exp((f + g - C) / eps) carries the absorbed potentials, so the scalings stay
// near 1 and an iteration costs two matrix-vector products (one fused pass on the CPU).
#include "uotflow/ot/sinkhorn.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

// Iterations per annealing stage: the potentials only need to follow epsilon roughly.
constexpr int64_t kStageIterations = 3;
// Up to this dimension the CPU cost matrix is built directly rather than through a GEMM.
constexpr int64_t kDirectCostMaxDim = 8;
// Below this many kernel entries the fused CPU pass runs on one thread.
constexpr int64_t kParallelMinEntries = 1 << 18;

void require(bool ok, const std::string& message) {
  if (!ok) {
    throw ConfigError(message);
  }
}

std::string str(double value) {
  return c10::str(value);
}

// Scalings are absorbed into the kernel once |log u| or |log v| exceeds this: far from overflow,
// and rare enough that the rebuilds (an exp per kernel entry) stay cheap.
double absorb_threshold(torch::ScalarType dtype) {
  return dtype == torch::kFloat64 ? 50.0 : 15.0;
}

// Bound on |log u|, |log v| within one update (unbalanced): a scaling that would underflow or
// overflow moves its potential by this much (times epsilon) and the rest after absorption.
template <typename T>
constexpr T log_scaling_cap() {
  return sizeof(T) == 8 ? 300 : 40;
}

// Marginal errors below this are rounding noise in float32: stopping there saves futile passes.
double tolerance_floor(torch::ScalarType dtype) {
  return dtype == torch::kFloat64 ? 0.0 : 1e-6;
}

// ----- the fused CPU pass -------------------------------------------------------------------

// The fused loops are compiled twice on x86-64: for the baseline ISA and for AVX2 + FMA, picked
// at run time (the library itself is built for the baseline).
#if defined(__GNUC__) && defined(__x86_64__)
#define UOTFLOW_SINKHORN_AVX2 1
#endif

#ifdef UOTFLOW_SINKHORN_AVX2
template <typename Body>
[[gnu::target("avx2,fma")]] void run_avx2(const Body& body) {
  body();
}
#endif

// Runs body, an always_inline lambda over always_inline loops, compiled for AVX2 + FMA when the
// CPU has them.
template <typename Body>
void run_best_isa(const Body& body) {
#ifdef UOTFLOW_SINKHORN_AVX2
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) {
    run_avx2(body);
    return;
  }
#endif
  body();
}

// Blocks of kRows rows: their dot products share the loads of bv, their updates of w share the
// loads and stores of w, and the second read of each row hits the cache.
constexpr int64_t kRows = 4;

// 32-byte vectors (4 doubles or 8 floats; two SSE registers without AVX), and their unaligned,
// aliasing view for loads and stores from tensor memory.
template <typename T>
struct VecOf;
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(32)));
  typedef double unaligned __attribute__((vector_size(32), aligned(8), may_alias));
};
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(32)));
  typedef float unaligned __attribute__((vector_size(32), aligned(4), may_alias));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
using Unaligned = typename VecOf<T>::unaligned;

#define UOTFLOW_LOAD(T, p) (*reinterpret_cast<const Unaligned<T>*>(p))

template <typename T>
[[gnu::always_inline]] inline T sum_lanes(const Vec<T>& v) {
  T total = 0;
  for (size_t k = 0; k < sizeof(v) / sizeof(T); ++k) {
    total += v[k];
  }
  return total;
}

// s_r = K_r . bv for `rows` rows of length m starting at `kernel`.
template <typename T>
[[gnu::always_inline]] inline void block_dots(const T* kernel, int64_t m, int64_t rows, const T* bv,
                                              T* s) {
  constexpr int64_t L = sizeof(Vec<T>) / sizeof(T);
  int64_t j = 0;
  if (rows == kRows) {
    Vec<T> acc[kRows][2] = {};
    for (; j + 2 * L <= m; j += 2 * L) {
      const Vec<T> b0 = UOTFLOW_LOAD(T, bv + j);
      const Vec<T> b1 = UOTFLOW_LOAD(T, bv + j + L);
      for (int64_t r = 0; r < kRows; ++r) {
        acc[r][0] += UOTFLOW_LOAD(T, kernel + r * m + j) * b0;
        acc[r][1] += UOTFLOW_LOAD(T, kernel + r * m + j + L) * b1;
      }
    }
    for (int64_t r = 0; r < kRows; ++r) {
      s[r] = sum_lanes<T>(acc[r][0] + acc[r][1]);
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      s[r] = 0;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t jj = j; jj < m; ++jj) {
      s[r] += kernel[r * m + jj] * bv[jj];
    }
  }
}

// w += sum_r c_r K_r over `rows` rows.
template <typename T>
[[gnu::always_inline]] inline void block_axpy(const T* kernel, int64_t m, int64_t rows, const T* c,
                                              T* w) {
  constexpr int64_t L = sizeof(Vec<T>) / sizeof(T);
  int64_t j = 0;
  if (rows == kRows) {
    for (; j + L <= m; j += L) {
      Vec<T> acc = UOTFLOW_LOAD(T, w + j);
      for (int64_t r = 0; r < kRows; ++r) {
        acc += c[r] * UOTFLOW_LOAD(T, kernel + r * m + j);
      }
      *reinterpret_cast<Unaligned<T>*>(w + j) = acc;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t jj = j; jj < m; ++jj) {
      w[jj] += c[r] * kernel[r * m + jj];
    }
  }
}

// The operands of one pass over rows: kernel [N, M] (row-major), a, log_alpha, u: [N], bv: [M].
template <typename T>
struct RowPass {
  const T* kernel;
  int64_t m;
  const T* a;
  const T* log_alpha;  // null when balanced (u_i = 1 / s_i)
  T damping;
  const T* bv;
  T* u;
};

// Rows [begin, end) of one iteration: s_i = K_i . bv, the new u_i, and w += a_i u_i K_i while
// K_i is still in cache. Rows whose sum underflowed keep their u_i and are counted in `floored`.
template <typename T>
[[gnu::always_inline]] inline void fused_rows_body(const RowPass<T>& p, int64_t begin, int64_t end,
                                                   T* w, T& err, int64_t& floored) {
  T s[kRows];
  T c[kRows];
  for (int64_t i = begin; i < end; i += kRows) {
    const int64_t rows = std::min(kRows, end - i);
    const T* block = p.kernel + i * p.m;
    block_dots(block, p.m, rows, p.bv, s);
    for (int64_t r = 0; r < rows; ++r) {
      T u_new = p.u[i + r];
      if (s[r] >= std::numeric_limits<T>::min()) {
        u_new = p.log_alpha ? std::exp(std::clamp(p.log_alpha[i + r] - p.damping * std::log(s[r]),
                                                  -log_scaling_cap<T>(), log_scaling_cap<T>()))
                            : T(1) / s[r];
        err += p.a[i + r] * s[r] * std::abs(p.u[i + r] - u_new);
      } else {
        ++floored;
      }
      p.u[i + r] = u_new;
      c[r] = p.a[i + r] * u_new;
    }
    block_axpy(block, p.m, rows, c, w);
  }
}

template <typename T>
void fused_rows(const RowPass<T>& p, int64_t begin, int64_t end, T* w, T& err, int64_t& floored) {
  run_best_isa([&]() __attribute__((always_inline)) {
    fused_rows_body<T>(p, begin, end, w, err, floored);
  });
}

// Totals over one problem of <a u, K b v> (the plan's mass) and <a u, (K * C) b v> (<P, C>), in
// one read of the kernel and the cost. kernel, cost: [N, M]; au: [N]; bv: [M].
template <typename T>
[[gnu::always_inline]] inline void plan_totals_body(const T* kernel, const T* cost, const T* au,
                                                    const T* bv, int64_t n, int64_t m, double& mass,
                                                    double& transport) {
  constexpr int64_t L = sizeof(Vec<T>) / sizeof(T);
  for (int64_t i = 0; i < n; ++i) {
    const T* k = kernel + i * m;
    const T* c = cost + i * m;
    Vec<T> acc_mass = {};
    Vec<T> acc_cost = {};
    int64_t j = 0;
    for (; j + L <= m; j += L) {
      const Vec<T> kb = UOTFLOW_LOAD(T, k + j) * UOTFLOW_LOAD(T, bv + j);
      acc_mass += kb;
      acc_cost += kb * UOTFLOW_LOAD(T, c + j);
    }
    T row_mass = sum_lanes<T>(acc_mass);
    T row_cost = sum_lanes<T>(acc_cost);
    for (; j < m; ++j) {
      row_mass += k[j] * bv[j];
      row_cost += k[j] * bv[j] * c[j];
    }
    mass += static_cast<double>(au[i] * row_mass);
    transport += static_cast<double>(au[i] * row_cost);
  }
}

// |x_i - y_j|^2 = |x_i|^2 + |y_j|^2 - 2 x_i . y_j for rows [begin, end), clamped at 0, each entry
// accumulated in a register and stored once. x: [N, D], yt: [D, M], x2: [N], y2: [M], out: [N, M].
template <typename T>
[[gnu::always_inline]] inline void cost_rows_body(const T* x, const T* yt, const T* x2, const T* y2,
                                                  int64_t d, int64_t m, int64_t begin, int64_t end,
                                                  T* out) {
  constexpr int64_t L = sizeof(Vec<T>) / sizeof(T);
  T scaled[kDirectCostMaxDim];
  for (int64_t i = begin; i < end; ++i) {
    T* row = out + i * m;
    for (int64_t k = 0; k < d; ++k) {
      scaled[k] = -2 * x[i * d + k];
    }
    int64_t j = 0;
    for (; j + L <= m; j += L) {
      Vec<T> acc = x2[i] + UOTFLOW_LOAD(T, y2 + j);
      for (int64_t k = 0; k < d; ++k) {
        acc += scaled[k] * UOTFLOW_LOAD(T, yt + k * m + j);
      }
      *reinterpret_cast<Unaligned<T>*>(row + j) = acc > 0 ? acc : Vec<T>{};
    }
    for (; j < m; ++j) {
      T acc = x2[i] + y2[j];
      for (int64_t k = 0; k < d; ++k) {
        acc += scaled[k] * yt[k * m + j];
      }
      row[j] = acc > 0 ? acc : T(0);
    }
  }
}

// One problem of the batch: u updated in place, w = K^T (a u): [M] written, the L1 change of the
// row marginal added to err and the underflowed rows to floored.
template <typename T>
void fused_pass(const RowPass<T>& p, int64_t n, torch::Tensor& w, T& err, int64_t& floored) {
  const int64_t threads = at::get_num_threads();
  if (threads == 1 || n * p.m < kParallelMinEntries) {
    w.zero_();
    fused_rows<T>(p, 0, n, w.template data_ptr<T>(), err, floored);
    return;
  }
  // One partial sum of w per thread, added up at the end.
  auto partial = torch::zeros({threads, p.m}, w.options());
  std::vector<T> errs(threads, 0);
  std::vector<int64_t> counts(threads, 0);
  const int64_t grain = std::max<int64_t>(1, kParallelMinEntries / (4 * p.m));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    const int tid = at::get_thread_num();
    fused_rows<T>(p, begin, end, partial[tid].template data_ptr<T>(), errs[tid], counts[tid]);
  });
  for (int64_t t = 0; t < threads; ++t) {
    err += errs[t];
    floored += counts[t];
  }
  at::sum_out(w, partial, 0);
}

// K x: kernel [B, N, M], x [B, M] -> [B, N]; transposed, K^T x: x [B, N] -> [B, M]. One problem
// goes through gemv, which beats bmm with a single column.
torch::Tensor batched_mv(const torch::Tensor& kernel, const torch::Tensor& x, bool transposed) {
  if (kernel.size(0) == 1) {
    const auto k = kernel[0];
    return at::mv(transposed ? k.t() : k, x[0]).unsqueeze(0);
  }
  return transposed ? at::matmul(x.unsqueeze(-2), kernel).squeeze(-2)
                    : at::matmul(kernel, x.unsqueeze(-1)).squeeze(-1);
}

// Low dimension on the CPU: a GEMM with an inner dimension of 2 or 3 costs several passes over
// the output; the direct kernel writes it once. x: [N, D] or [B, N, D], y: [M, D] or [B, M, D].
torch::Tensor direct_cost_cpu(const torch::Tensor& x, const torch::Tensor& y) {
  const bool batched = x.dim() == 3;
  const auto xb = (batched ? x : x.unsqueeze(0)).contiguous();
  const auto yt = (batched ? y : y.unsqueeze(0)).transpose(-1, -2).contiguous();  // [B, D, M]
  const auto x2 = (xb * xb).sum(-1);                                              // [B, N]
  const auto y2 = (yt * yt).sum(-2);                                              // [B, M]
  const int64_t n = xb.size(1);
  const int64_t m = yt.size(2);
  const int64_t d = xb.size(2);
  auto out = torch::empty({xb.size(0), n, m}, xb.options());
  AT_DISPATCH_FLOATING_TYPES(xb.scalar_type(), "squared_euclidean_cost", [&] {
    for (int64_t k = 0; k < xb.size(0); ++k) {
      const scalar_t* xp = xb[k].data_ptr<scalar_t>();
      const scalar_t* yp = yt[k].data_ptr<scalar_t>();
      const scalar_t* x2p = x2[k].data_ptr<scalar_t>();
      const scalar_t* y2p = y2[k].data_ptr<scalar_t>();
      scalar_t* op = out[k].data_ptr<scalar_t>();
      const int64_t grain = std::max<int64_t>(1, kParallelMinEntries / (4 * m));
      at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
        run_best_isa([&]() __attribute__((always_inline)) {
          cost_rows_body<scalar_t>(xp, yp, x2p, y2p, d, m, begin, end, op);
        });
      });
    }
  });
  return batched ? out : out.squeeze(0);
}

// ----- validation ---------------------------------------------------------------------------

void validate_options(const SinkhornOptions& o) {
  require(std::isfinite(o.epsilon) && o.epsilon > 0,
          "sinkhorn: epsilon must be finite and > 0, got " + str(o.epsilon));
  require(std::isfinite(o.rho),
          "sinkhorn: rho must be finite (> 0: unbalanced, <= 0: balanced), got " + str(o.rho));
  require(o.max_iter >= 1, "sinkhorn: max_iter must be >= 1, got " + str(o.max_iter));
  require(o.tolerance >= 0, "sinkhorn: tolerance must be >= 0, got " + str(o.tolerance));
  require(
      o.epsilon_scaling == 0 || (o.epsilon_scaling > 0 && o.epsilon_scaling < 1),
      "sinkhorn: epsilon_scaling must be in (0, 1), or 0 for none, got " + str(o.epsilon_scaling));
  require(o.check_every >= 1, "sinkhorn: check_every must be >= 1, got " + str(o.check_every));
}

// One reduction in the common case: a finite sum means finite entries (an overflowing sum of
// huge entries falls back to the exact check).
bool all_finite(const torch::Tensor& t) {
  return std::isfinite(t.sum().item<double>()) || t.isfinite().all().item<bool>();
}

// Weights as [B, K] in the cost's dtype and device; uniform 1/K when undefined. Balanced weights
// are normalised to sum 1.
torch::Tensor prepare_weights(const torch::Tensor& w, const char* name, int64_t batch, int64_t k,
                              bool batched, bool normalise, const torch::TensorOptions& options) {
  if (!w.defined()) {
    return torch::full({batch, k}, 1.0 / static_cast<double>(k), options);
  }
  const bool shared = w.dim() == 1 && w.size(0) == k;
  const bool per_problem = batched && w.dim() == 2 && w.size(0) == batch && w.size(1) == k;
  require(shared || per_problem,
          std::string("sinkhorn: weights ") + name + " must be [" + std::to_string(k) + "]" +
              (batched ? " or [" + std::to_string(batch) + ", " + std::to_string(k) + "]" : "") +
              ", got shape " + c10::str(w.sizes()));
  auto out = w.to(options).expand({batch, k}).contiguous();
  const auto mass = out.sum(-1);
  const auto bad =
      torch::stack({out.isfinite().logical_not().any(), out.lt(0).any(), mass.le(0).any()}).cpu();
  require(!bad[0].item<bool>(), std::string("sinkhorn: weights ") + name + " contain NaN or inf");
  require(!bad[1].item<bool>(), std::string("sinkhorn: weights ") + name + " must be >= 0");
  require(!bad[2].item<bool>(),
          std::string("sinkhorn: weights ") + name + " must have a positive sum");
  return normalise ? out / mass.unsqueeze(-1) : out;
}

void validate_points(const torch::Tensor& x, const torch::Tensor& y, const char* who) {
  require(x.defined() && y.defined(), std::string(who) + ": undefined point tensor");
  require(x.dim() == y.dim() && (x.dim() == 2 || x.dim() == 3),
          std::string(who) + ": expected x, y of shape [N, D] or [B, N, D] (same rank), got " +
              c10::str(x.sizes()) + " and " + c10::str(y.sizes()));
  require(x.size(-1) == y.size(-1), std::string(who) + ": dimension mismatch, x " +
                                        c10::str(x.sizes()) + " vs y " + c10::str(y.sizes()));
  require(x.dim() == 2 || x.size(0) == y.size(0), std::string(who) + ": batch sizes differ, x " +
                                                      c10::str(x.sizes()) + " vs y " +
                                                      c10::str(y.sizes()));
  require(x.numel() > 0 && y.numel() > 0, std::string(who) + ": empty point set, x " +
                                              c10::str(x.sizes()) + ", y " + c10::str(y.sizes()));
  require(x.scalar_type() == y.scalar_type() &&
              (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64),
          std::string(who) + ": x and y must both be float32 or both float64, got " +
              std::string(c10::toString(x.scalar_type())) + " and " +
              std::string(c10::toString(y.scalar_type())));
  require(x.device() == y.device(), std::string(who) + ": x and y are on different devices");
  require(all_finite(x) && all_finite(y), std::string(who) + ": points contain NaN or inf");
}

// ----- the solver ---------------------------------------------------------------------------

// The result's potentials and value from the final f, g and the plan's mass (points along the last
// dimension, batched or not). Value by the dual: balanced <a, f> + <b, g> - eps (m(P) - 1),
// unbalanced rho <a, 1 - exp(-f / rho)> + rho <b, 1 - exp(-g / rho)> - eps (m(P) - m(a) m(b)).
// Balanced, f + c, g - c is the same solution; c is fixed by <a, f> = <b, g> so that the
// potentials do not depend on the iteration path (annealing stages, batch companions).
void set_dual(SinkhornResult& result, const torch::Tensor& a, const torch::Tensor& b,
              torch::Tensor f, torch::Tensor g, const torch::Tensor& mass, double eps, double rho) {
  if (rho <= 0) {
    const auto af = (a * f).sum(-1);
    const auto bg = (b * g).sum(-1);
    const auto shift = ((bg - af) * 0.5).unsqueeze(-1);
    result.f = f + shift;
    result.g = g - shift;
    result.value = af + bg - eps * (mass - 1.0);
  } else {
    auto dual = [&](const torch::Tensor& w, const torch::Tensor& p) {
      return rho * (w * (1.0 - (p / -rho).exp())).sum(-1);
    };
    result.f = f;
    result.g = g;
    result.value = dual(a, f) + dual(b, g) - eps * (mass - a.sum(-1) * b.sum(-1));
  }
}

class Solver {
 public:
  // cost: [B, N, M] contiguous; a: [B, N], b: [B, M].
  Solver(torch::Tensor cost, torch::Tensor a, torch::Tensor b, const SinkhornOptions& options)
      : cost_(std::move(cost)),
        a_(std::move(a)),
        b_(std::move(b)),
        log_a_(a_.log()),
        log_b_(b_.log()),
        options_(options),
        rho_(options.rho),
        fused_(options.fused_cpu_pass && cost_.device().is_cpu()),
        threshold_(absorb_threshold(cost_.scalar_type())),
        tiny_(cost_.scalar_type() == torch::kFloat64 ? std::numeric_limits<double>::min()
                                                     : std::numeric_limits<float>::min()) {}

  SinkhornResult solve();

 private:
  bool balanced() const {
    return rho_ <= 0;
  }
  double damping() const {
    return balanced() ? 1.0 : rho_ / (rho_ + eps_);
  }
  void rebuild(bool g_is_zero = false);
  void absorb();
  void log_step();
  void pass();
  void translate();
  torch::Tensor unbalanced_scaling(const torch::Tensor& log_alpha, const torch::Tensor& s) const;
  int64_t iterate(int64_t iterations, double tolerance);
  SinkhornResult finish(int64_t iterations);

  torch::Tensor cost_;           // [B, N, M]
  torch::Tensor a_, b_;          // [B, N], [B, M]
  torch::Tensor log_a_, log_b_;  // -inf at zero weights
  SinkhornOptions options_;
  double rho_;
  bool fused_;
  double threshold_;
  double tiny_;  // smallest normal number of the dtype

  double eps_ = 0.0;
  torch::Tensor f_, g_;                 // absorbed potentials: [B, N], [B, M]
  torch::Tensor log_alpha_, log_beta_;  // unbalanced: -f / (rho + eps), -g / (rho + eps)
  torch::Tensor kernel_;                // exp((f + g - C) / eps): [B, N, M]
  torch::Tensor u_, v_;                 // scalings: [B, N], [B, M]
  torch::Tensor err_;                   // [B], L1 change of P 1 in the last pass
  torch::Tensor floored_;               // [], rows + columns that underflowed in the last pass
  double floored_handled_ = 0.0;        // the count a log-domain step last answered
  double marginal_error_ = std::numeric_limits<double>::infinity();
};

// Kernel from the absorbed potentials at the current epsilon, scalings reset to 1.
void Solver::rebuild(bool g_is_zero) {
  const double inv = 1.0 / eps_;
  if (!kernel_.defined()) {
    kernel_ = torch::empty_like(cost_);
  }
  // Three passes: (f_i / eps - C_ij / eps), + g_j / eps, exp.
  at::sub_out(kernel_, (f_ * inv).unsqueeze(-1), cost_, inv);
  if (!g_is_zero) {
    kernel_.add_((g_ * inv).unsqueeze(-2));
  }
  kernel_.exp_();
  u_ = torch::ones_like(f_);
  v_ = torch::ones_like(g_);
  if (!balanced()) {
    log_alpha_ = f_ / -(rho_ + eps_);
    log_beta_ = g_ / -(rho_ + eps_);
  }
}

void Solver::absorb() {
  f_ = f_ + eps_ * u_.log();
  g_ = g_ + eps_ * v_.log();
}

// One exact log-domain iteration (f then g) with the kernel buffer as scratch:
//   f_i = -damping eps LSE_j(log b_j + (g_j - C_ij) / eps), and likewise g from f.
void Solver::log_step() {
  const double inv = 1.0 / eps_;
  const double scale = -damping() * eps_;
  at::sub_out(kernel_, (g_ * inv + log_b_).unsqueeze(-2), cost_, inv);
  f_ = torch::logsumexp(kernel_, -1).mul_(scale);
  at::sub_out(kernel_, (f_ * inv + log_a_).unsqueeze(-1), cost_, inv);
  g_ = torch::logsumexp(kernel_, -2).mul_(scale);
}

// One Sinkhorn iteration: u so that the rows match (balanced) or their KL prox (unbalanced), then
// v. A row or column whose kernel sum underflowed keeps its scaling and is counted in floored_;
// iterate() answers with an exact log-domain step. Unbalanced, that can be the answer (a point
// that receives no mass), and the potential from the log-domain step then stays.
void Solver::pass() {
  const auto bv = b_ * v_;
  torch::Tensor w = torch::empty_like(v_);
  if (fused_) {
    const int64_t batch = kernel_.size(0);
    err_ = torch::empty({batch}, torch::dtype(torch::kFloat64));
    int64_t floored = 0;
    AT_DISPATCH_FLOATING_TYPES(kernel_.scalar_type(), "sinkhorn_pass", [&] {
      for (int64_t k = 0; k < batch; ++k) {
        const RowPass<scalar_t> p{kernel_[k].data_ptr<scalar_t>(),
                                  kernel_.size(2),
                                  a_[k].data_ptr<scalar_t>(),
                                  balanced() ? nullptr : log_alpha_[k].data_ptr<scalar_t>(),
                                  static_cast<scalar_t>(damping()),
                                  bv[k].data_ptr<scalar_t>(),
                                  u_[k].data_ptr<scalar_t>()};
        scalar_t err = 0;
        auto wk = w[k];
        fused_pass<scalar_t>(p, kernel_.size(1), wk, err, floored);
        err_[k] = static_cast<double>(err);
      }
    });
    floored_ = torch::scalar_tensor(static_cast<double>(floored), torch::kFloat64);
  } else {
    const auto s = batched_mv(kernel_, bv, false);
    const auto row_floored = s < tiny_;
    auto u = balanced() ? s.reciprocal() : unbalanced_scaling(log_alpha_, s);
    u = torch::where(row_floored, u_, u);
    err_ = (a_ * s * (u_ - u).abs()).sum(-1);
    u_ = u;
    w = batched_mv(kernel_, a_ * u_, true);
    floored_ = row_floored.sum().to(torch::kFloat64);
  }
  const auto column_floored = w < tiny_;
  auto v = balanced() ? w.reciprocal() : unbalanced_scaling(log_beta_, w);
  v_ = torch::where(column_floored, v_, v);
  floored_ = floored_ + column_floored.sum();
  if (!balanced()) {
    translate();
  }
}

// exp(log_alpha - damping log s), its exponent bounded by log_scaling_cap.
torch::Tensor Solver::unbalanced_scaling(const torch::Tensor& log_alpha,
                                         const torch::Tensor& s) const {
  const double cap =
      cost_.scalar_type() == torch::kFloat64 ? log_scaling_cap<double>() : log_scaling_cap<float>();
  return (log_alpha - damping() * s.log()).clamp_(-cap, cap).exp_();
}

// Unbalanced: the dual is not invariant under f + c, g - c, and plain Sinkhorn shrinks the error
// along that direction (the total mass) only by a factor rho / (rho + eps) per iteration:
// hopeless for large rho. The best translation has a closed form (translation-invariant Sinkhorn,
// Sejourne et al. 2022): c = rho / 2 log(<a, exp(-f / rho)> / <b, exp(-g / rho)>) maximises the
// dual along that direction and leaves the plan (which depends on f + g) unchanged. The translation
// goes into the absorbed potentials: their sum, hence the kernel, is unchanged.
void Solver::translate() {
  const auto f = f_ + eps_ * u_.log();
  const auto g = g_ + eps_ * v_.log();
  const auto log_mass_a = torch::logsumexp(log_a_ - f / rho_, -1);
  const auto log_mass_b = torch::logsumexp(log_b_ - g / rho_, -1);
  const auto shift = ((log_mass_a - log_mass_b) * (0.5 * rho_)).unsqueeze(-1);
  f_ = f_ + shift;
  g_ = g_ - shift;
  log_alpha_ = log_alpha_ - shift / (rho_ + eps_);
  log_beta_ = log_beta_ + shift / (rho_ + eps_);
}

// Up to `iterations` passes at the current epsilon, stopping once the marginal error is below
// `tolerance`; returns the number of passes. Checks (one device sync) every check_every passes.
int64_t Solver::iterate(int64_t iterations, double tolerance) {
  auto saved_u = u_.clone();
  auto saved_v = v_.clone();
  for (int64_t k = 1; k <= iterations; ++k) {
    pass();
    if (k % options_.check_every != 0 && k != iterations) {
      continue;
    }
    const auto stats =
        torch::stack({err_.max().to(torch::kFloat64), u_.log().abs().max().to(torch::kFloat64),
                      v_.log().abs().max().to(torch::kFloat64), floored_.to(err_.device())})
            .to(torch::kCPU);
    const double* s = stats.data_ptr<double>();
    const double floored = s[3];
    if (!std::isfinite(s[0]) || !std::isfinite(s[1]) || !std::isfinite(s[2])) {
      // Overflow (not expected): back to the last good scalings, then one exact log-domain
      // iteration, which cannot overflow.
      u_ = saved_u;
      v_ = saved_v;
      absorb();
      log_step();
      rebuild();
    } else if (floored > 0 && floored != floored_handled_) {
      // Rows or columns of the kernel underflowed: the scaling domain cannot move their
      // potentials, an exact log-domain iteration can.
      marginal_error_ = s[0];
      floored_handled_ = floored;
      absorb();
      log_step();
      rebuild();
    } else {
      marginal_error_ = s[0];
      if (floored == 0) {
        floored_handled_ = 0;
      }
      if (s[0] < tolerance) {
        return k;
      }
      if (std::max(s[1], s[2]) > threshold_) {
        absorb();
        rebuild();
      }
    }
    saved_u = u_.clone();
    saved_v = v_.clone();
  }
  return iterations;
}

SinkhornResult Solver::solve() {
  const double eps = options_.epsilon;
  std::vector<double> stages;
  if (options_.epsilon_scaling > 0) {
    for (double e = cost_.max().item<double>(); e > eps; e *= options_.epsilon_scaling) {
      stages.push_back(e);
    }
  }
  stages.push_back(eps);
  f_ = torch::zeros_like(a_);
  g_ = torch::zeros_like(b_);
  eps_ = stages.front();
  if (stages.size() == 1) {
    // Without annealing, exp(-C / eps) may underflow whole rows: start from f_i = min_j C_ij, so
    // that every row of the kernel has an entry 1 (columns that still underflow are caught by
    // the floored count).
    f_ = cost_.amin(-1);
  }
  rebuild(/*g_is_zero=*/true);
  for (size_t k = 0; k + 1 < stages.size(); ++k) {
    iterate(kStageIterations, 0.0);
    absorb();
    eps_ = stages[k + 1];
    rebuild();
  }
  const double tolerance = options_.tolerance > 0
                               ? std::max(options_.tolerance, tolerance_floor(cost_.scalar_type()))
                               : 0.0;
  return finish(iterate(options_.max_iter, tolerance));
}

SinkhornResult Solver::finish(int64_t iterations) {
  SinkhornResult result;
  result.iterations = iterations;
  result.marginal_error = marginal_error_;
  result.f = f_ + eps_ * u_.log();
  result.g = g_ + eps_ * v_.log();
  const auto au = a_ * u_;
  const auto bv = b_ * v_;
  // P = diag(a u) K diag(b v): its mass, and <P, C> without forming P unless asked for.
  torch::Tensor mass;
  if (fused_ && !options_.return_plan) {
    const int64_t batch = kernel_.size(0);
    auto totals = torch::empty({2, batch}, torch::kFloat64);
    AT_DISPATCH_FLOATING_TYPES(kernel_.scalar_type(), "sinkhorn_plan_totals", [&] {
      for (int64_t k = 0; k < batch; ++k) {
        double plan_mass = 0.0;
        double transport = 0.0;
        const scalar_t* kp = kernel_[k].data_ptr<scalar_t>();
        const scalar_t* cp = cost_[k].data_ptr<scalar_t>();
        const scalar_t* aup = au[k].data_ptr<scalar_t>();
        const scalar_t* bvp = bv[k].data_ptr<scalar_t>();
        run_best_isa([&]() __attribute__((always_inline)) {
          plan_totals_body<scalar_t>(kp, cp, aup, bvp, kernel_.size(1), kernel_.size(2), plan_mass,
                                     transport);
        });
        totals[0][k] = plan_mass;
        totals[1][k] = transport;
      }
    });
    totals = totals.to(cost_.scalar_type());
    mass = totals[0];
    result.transport_cost = totals[1];
  } else if (options_.return_plan) {
    mass = (au * batched_mv(kernel_, bv, false)).sum(-1);
    result.plan = kernel_.mul_(au.unsqueeze(-1)).mul_(bv.unsqueeze(-2));
    result.transport_cost = (result.plan * cost_).sum({-2, -1});
  } else {
    mass = (au * batched_mv(kernel_, bv, false)).sum(-1);
    result.transport_cost = (au * batched_mv(kernel_.mul_(cost_), bv, false)).sum(-1);
  }
  kernel_ = torch::Tensor();
  set_dual(result, a_, b_, result.f, result.g, mass, eps_, rho_);
  return result;
}

SinkhornResult unbatch(SinkhornResult r) {
  r.transport_cost = r.transport_cost.squeeze(0);
  r.value = r.value.squeeze(0);
  r.f = r.f.squeeze(0);
  r.g = r.g.squeeze(0);
  if (r.plan.defined()) {
    r.plan = r.plan.squeeze(0);
  }
  return r;
}

// ----- online: the kernel on the fly, tile by tile ------------------------------------------

// Log-domain Sinkhorn between point clouds that never forms the cost matrix: every half-iteration
// recomputes C_ij = |x_i - y_j|^2 tile by tile and reduces it with a streaming log-sum-exp, so
// memory is O((N + M) D + tile^2). The iterates are those of the dense solver (which works in the
// scaling domain and absorbs into the same potentials).
class OnlineSolver {
 public:
  // x: [N, D], y: [M, D] centred; a: [N], b: [M].
  OnlineSolver(torch::Tensor x, torch::Tensor y, torch::Tensor a, torch::Tensor b,
               const SinkhornOptions& options, int64_t tile)
      : x_(std::move(x)),
        y_(std::move(y)),
        x_sq_((x_ * x_).sum(-1)),
        y_sq_((y_ * y_).sum(-1)),
        a_(std::move(a)),
        b_(std::move(b)),
        log_a_(a_.log()),
        log_b_(b_.log()),
        options_(options),
        rho_(options.rho),
        tile_(tile) {}

  SinkhornResult solve();

 private:
  bool balanced() const {
    return rho_ <= 0;
  }
  // The cost tile between rows [i, i + bi) of p and [j, j + bj) of q.
  torch::Tensor cost_tile(const torch::Tensor& p, const torch::Tensor& p_sq, const torch::Tensor& q,
                          const torch::Tensor& q_sq, int64_t i, int64_t bi, int64_t j,
                          int64_t bj) const {
    return torch::addmm(p_sq.narrow(0, i, bi).unsqueeze(1) + q_sq.narrow(0, j, bj).unsqueeze(0),
                        p.narrow(0, i, bi), q.narrow(0, j, bj).t(), 1.0, -2.0)
        .clamp_min_(0);
  }
  // LSE_j(h_j - C_ij / eps) for every point i of p against the points j of q: [N_p].
  torch::Tensor lse(const torch::Tensor& p, const torch::Tensor& p_sq, const torch::Tensor& q,
                    const torch::Tensor& q_sq, const torch::Tensor& h) const {
    const int64_t n = p.size(0);
    const int64_t m = q.size(0);
    auto out = torch::empty({n}, p.options());
    for (int64_t i = 0; i < n; i += tile_) {
      const int64_t bi = std::min(tile_, n - i);
      torch::Tensor acc;
      for (int64_t j = 0; j < m; j += tile_) {
        const int64_t bj = std::min(tile_, m - j);
        auto z = cost_tile(p, p_sq, q, q_sq, i, bi, j, bj);
        z.mul_(-1.0 / eps_).add_(h.narrow(0, j, bj).unsqueeze(0));
        auto t = torch::logsumexp(z, 1);
        acc = acc.defined() ? torch::logaddexp(acc, t) : t;
      }
      out.narrow(0, i, bi).copy_(acc);
    }
    return out;
  }
  double damping() const {
    return balanced() ? 1.0 : rho_ / (rho_ + eps_);
  }
  // One iteration (f, then g); with `check`, the L1 change of the row marginal P 1 that the
  // f-update makes, as in the dense solver.
  void iteration(bool check);
  void translate();
  SinkhornResult finish(int64_t iterations);

  torch::Tensor x_, y_, x_sq_, y_sq_;
  torch::Tensor a_, b_, log_a_, log_b_;
  SinkhornOptions options_;
  double rho_;
  int64_t tile_;
  double eps_ = 0.0;
  torch::Tensor f_, g_;
  double marginal_error_ = std::numeric_limits<double>::infinity();
};

void OnlineSolver::iteration(bool check) {
  const double inv = 1.0 / eps_;
  const auto lf = lse(x_, x_sq_, y_, y_sq_, log_b_ + g_ * inv);
  auto f = lf * (-damping() * eps_);
  if (check) {
    // Row marginal before and after: a_i exp(f_i / eps + lf_i), with f_i the old and new value.
    marginal_error_ =
        (a_ * ((f_ * inv + lf).exp() - (f * inv + lf).exp()).abs()).sum().item<double>();
  }
  f_ = f;
  g_ = lse(y_, y_sq_, x_, x_sq_, log_a_ + f_ * inv) * (-damping() * eps_);
  if (!balanced()) {
    translate();
  }
}

// The dense solver's translation (translation-invariant Sinkhorn), on the log-domain potentials.
void OnlineSolver::translate() {
  const auto log_mass_a = torch::logsumexp(log_a_ - f_ / rho_, 0);
  const auto log_mass_b = torch::logsumexp(log_b_ - g_ / rho_, 0);
  const auto shift = (log_mass_a - log_mass_b) * (0.5 * rho_);
  f_ = f_ + shift;
  g_ = g_ - shift;
}

SinkhornResult OnlineSolver::solve() {
  const double eps = options_.epsilon;
  std::vector<double> stages;
  if (options_.epsilon_scaling > 0) {
    // The squared diagonal of the common bounding box bounds max C from above.
    const auto both = torch::cat({x_, y_});
    const double diameter = (both.amax(0) - both.amin(0)).pow(2).sum().item<double>();
    for (double e = diameter; e > eps; e *= options_.epsilon_scaling) {
      stages.push_back(e);
    }
  }
  stages.push_back(eps);
  f_ = torch::zeros_like(a_);
  g_ = torch::zeros_like(b_);
  for (size_t k = 0; k + 1 < stages.size(); ++k) {
    eps_ = stages[k];
    for (int64_t i = 0; i < kStageIterations; ++i) {
      iteration(false);
    }
  }
  eps_ = eps;
  const double tolerance = options_.tolerance > 0
                               ? std::max(options_.tolerance, tolerance_floor(x_.scalar_type()))
                               : 0.0;
  int64_t k = 1;
  for (; k <= options_.max_iter; ++k) {
    const bool check = k % options_.check_every == 0 || k == options_.max_iter;
    iteration(check);
    if (check && marginal_error_ < tolerance) {
      break;
    }
  }
  return finish(std::min(k, options_.max_iter));
}

SinkhornResult OnlineSolver::finish(int64_t iterations) {
  SinkhornResult result;
  result.iterations = iterations;
  result.marginal_error = marginal_error_;
  // The plan's mass and <P, C>, one more pass over the tiles.
  const double inv = 1.0 / eps_;
  const auto hx = log_a_ + f_ * inv;
  const auto hy = log_b_ + g_ * inv;
  const auto totals = torch::TensorOptions().dtype(torch::kFloat64).device(x_.device());
  auto mass = torch::zeros({}, totals);
  auto transport = torch::zeros({}, totals);
  const int64_t n = x_.size(0);
  const int64_t m = y_.size(0);
  for (int64_t i = 0; i < n; i += tile_) {
    const int64_t bi = std::min(tile_, n - i);
    for (int64_t j = 0; j < m; j += tile_) {
      const int64_t bj = std::min(tile_, m - j);
      const auto c = cost_tile(x_, x_sq_, y_, y_sq_, i, bi, j, bj);
      const auto plan =
          (hx.narrow(0, i, bi).unsqueeze(1) + hy.narrow(0, j, bj).unsqueeze(0) - c * inv).exp_();
      mass += plan.sum(torch::kFloat64);
      transport += (plan * c).sum(torch::kFloat64);
    }
  }
  result.transport_cost = transport.to(x_.scalar_type());
  set_dual(result, a_, b_, f_, g_, mass.to(x_.scalar_type()), eps_, rho_);
  return result;
}

}  // namespace

SinkhornResult sinkhorn(const torch::Tensor& cost, const torch::Tensor& a, const torch::Tensor& b,
                        const SinkhornOptions& options) {
  validate_options(options);
  require(cost.defined() && (cost.dim() == 2 || cost.dim() == 3),
          "sinkhorn: cost must be [N, M] or [B, N, M], got " +
              (cost.defined() ? c10::str(cost.sizes()) : std::string("an undefined tensor")));
  require(cost.numel() > 0, "sinkhorn: empty cost matrix of shape " + c10::str(cost.sizes()));
  require(cost.scalar_type() == torch::kFloat32 || cost.scalar_type() == torch::kFloat64,
          "sinkhorn: cost must be float32 or float64, got " +
              std::string(c10::toString(cost.scalar_type())));
  require(all_finite(cost), "sinkhorn: cost contains NaN or inf");
  const bool batched = cost.dim() == 3;
  auto c = (batched ? cost : cost.unsqueeze(0)).contiguous();
  const int64_t batch = c.size(0);
  const bool normalise = options.rho <= 0;
  auto wa = prepare_weights(a, "a", batch, c.size(1), batched, normalise, c.options());
  auto wb = prepare_weights(b, "b", batch, c.size(2), batched, normalise, c.options());
  auto result = Solver(c, wa, wb, options).solve();
  return batched ? result : unbatch(std::move(result));
}

torch::Tensor squared_euclidean_cost(const torch::Tensor& x, const torch::Tensor& y) {
  // Centred on the midpoint of the two means: translation-invariant, and it keeps the expansion
  // |x|^2 + |y|^2 - 2 x.y from cancelling catastrophically for clouds far from the origin.
  const auto centre = (x.mean(-2, true) + y.mean(-2, true)) * 0.5;
  const auto xc = x - centre;
  const auto yc = y - centre;
  if (xc.device().is_cpu() && xc.size(-1) <= kDirectCostMaxDim) {
    return direct_cost_cpu(xc, yc);
  }
  auto c = (xc * xc).sum(-1).unsqueeze(-1) + (yc * yc).sum(-1).unsqueeze(-2);
  if (c.dim() == 2) {
    c.addmm_(xc, yc.t(), 1.0, -2.0);
  } else {
    c.baddbmm_(xc, yc.transpose(-1, -2), 1.0, -2.0);
  }
  return c.clamp_min_(0);
}

SinkhornResult sinkhorn_points(const torch::Tensor& x, const torch::Tensor& y,
                               const SinkhornOptions& options, const torch::Tensor& a,
                               const torch::Tensor& b) {
  validate_points(x, y, "sinkhorn_points");
  return sinkhorn(squared_euclidean_cost(x, y), a, b, options);
}

SinkhornResult sinkhorn_points_online(const torch::Tensor& x, const torch::Tensor& y,
                                      const SinkhornOptions& options, const torch::Tensor& a,
                                      const torch::Tensor& b, int64_t tile) {
  validate_options(options);
  validate_points(x, y, "sinkhorn_points_online");
  require(x.dim() == 2, "sinkhorn_points_online: expected x, y of shape [N, D] (no batch), got " +
                            c10::str(x.sizes()));
  require(!options.return_plan,
          "sinkhorn_points_online: return_plan needs the N x M plan, which the online solver "
          "never forms; use sinkhorn_points");
  require(tile >= 1, "sinkhorn_points_online: tile must be >= 1, got " + str(tile));
  const auto centre = (x.mean(0, true) + y.mean(0, true)) * 0.5;
  const bool normalise = options.rho <= 0;
  auto wa = prepare_weights(a, "a", 1, x.size(0), false, normalise, x.options()).squeeze(0);
  auto wb = prepare_weights(b, "b", 1, y.size(0), false, normalise, x.options()).squeeze(0);
  return OnlineSolver((x - centre).contiguous(), (y - centre).contiguous(), wa, wb, options, tile)
      .solve();
}

torch::Tensor sinkhorn_divergence(const torch::Tensor& x, const torch::Tensor& y,
                                  const SinkhornOptions& options, const torch::Tensor& a,
                                  const torch::Tensor& b) {
  validate_points(x, y, "sinkhorn_divergence");
  SinkhornOptions values_only = options;
  values_only.return_plan = false;
  auto ot = [&](const torch::Tensor& p, const torch::Tensor& q, const torch::Tensor& wp,
                const torch::Tensor& wq) {
    return sinkhorn(squared_euclidean_cost(p, q), wp, wq, values_only).value;
  };
  auto s = ot(x, y, a, b) - 0.5 * (ot(x, x, a, a) + ot(y, y, b, b));
  if (options.rho > 0) {
    auto mass = [](const torch::Tensor& w) {
      return w.defined() ? w.to(torch::kFloat64).sum(-1) : torch::ones({}, torch::kFloat64);
    };
    const auto gap = (mass(a) - mass(b)).to(s.device(), s.scalar_type());
    s = s + 0.5 * options.epsilon * gap * gap;
  }
  return s;
}

}  // namespace uotflow
