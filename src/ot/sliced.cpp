// Sliced Wasserstein: project on random directions, then exact 1-D OT by sorting (equal sizes) or
// by the quantile functions (different sizes). The sliced energy distance sorts the same way.
#include "uotflow/ot/sliced.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "ot/radix_sort.h"

namespace uotflow {

torch::Tensor random_directions(int64_t dim, int64_t n_projections, at::Generator& gen,
                                torch::TensorOptions options) {
  TORCH_CHECK(dim > 0 && n_projections > 0, "random_directions: need dim > 0 and L > 0, got ", dim,
              ", ", n_projections);
  // Drawn on the CPU from a CPU generator so the directions do not depend on the device.
  auto theta = torch::randn({dim, n_projections}, gen, torch::dtype(torch::kFloat64));
  theta = theta / theta.norm(2, 0, /*keepdim=*/true);
  auto dtype = options.has_dtype() ? options.dtype() : caffe2::TypeMeta::Make<float>();
  return theta.to(options.device(), dtype);
}

namespace {

// One radix sorter and two row buffers per thread, for the row loops below.
template <typename scalar_t>
struct RowSortScratch {
  detail::RadixSorter<scalar_t> sorter;
  std::vector<scalar_t> a, b;
};

// Calls body(scratch, r) for every row r in [0, rows), the rows split over ATen's threads, with one
// RowSortScratch per thread whose buffers hold buffer_len values each.
template <typename scalar_t, typename Body>
void for_each_row(int64_t rows, int64_t buffer_len, const Body& body) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    RowSortScratch<scalar_t> scratch;
    scratch.a.resize(buffer_len);
    scratch.b.resize(buffer_len);
    for (int64_t r = begin; r < end; ++r) {
      body(scratch, r);
    }
  });
}

// Rows the radix sort takes: on the CPU, not empty, and short enough for its 32-bit positions.
bool radix_sortable(const torch::Tensor& t) {
  return t.is_cpu() && t.numel() > 0 && t.dim() > 0 && t.size(-1) < (int64_t{1} << 32);
}

// The permutation that sorts each row of `t` [..., N] (int64, sorted = t.gather(-1, order)); radix
// sorted on the CPU. Taking the values by gather keeps autograd to the gather, not the sort.
torch::Tensor sort_order(const torch::Tensor& t) {
  if (!radix_sortable(t)) {
    return std::get<1>(t.sort(-1));
  }
  const auto in = t.detach().contiguous();
  const int64_t len = in.size(-1);
  auto order = torch::empty(t.sizes(), t.options().dtype(torch::kLong));
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "sort_order", [&] {
    const scalar_t* src = in.data_ptr<scalar_t>();
    int64_t* dst = order.data_ptr<int64_t>();
    for_each_row<scalar_t>(in.numel() / len, 0, [&](auto& s, int64_t r) {
      s.sorter.order(src + r * len, len, dst + r * len);
    });
  });
  return order;
}

// Sorted copy along the last dimension. On the CPU the rows are radix sorted (radix_sort.h; with
// their permutation 4-5x faster than Boost's pdqsort and 9-10x faster than torch::sort on rows of
// 10^3 .. 10^4 floats: bench_sliced's BM_SortRows); with autograd, the values are taken from the
// radix sort's permutation by a gather, so autograd runs through the gather only.
torch::Tensor sort_values(const torch::Tensor& t) {
  if (!radix_sortable(t)) {
    return std::get<0>(t.sort(-1));
  }
  if (t.requires_grad() && torch::GradMode::is_enabled()) {
    return t.gather(-1, sort_order(t));
  }
  const auto in = t.contiguous();
  const int64_t len = in.size(-1);
  auto out = torch::empty_like(in);
  AT_DISPATCH_FLOATING_TYPES(in.scalar_type(), "sort_values", [&] {
    const scalar_t* src = in.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    for_each_row<scalar_t>(in.numel() / len, 0, [&](auto& s, int64_t r) {
      s.sorter.sort(src + r * len, len, dst + r * len);
    });
  });
  return out;
}

// mean_k (sort(u)_k - sort(v)_k)^2 of each row, u and v [..., N] -> [...] on the CPU, with a
// dedicated backward: d/du = 2 (sort(u) - sort(v)) / N put back in u's order by the sort
// permutation (and the negative for v), instead of autograd through sort and gather. The forward
// radix sorts each row with its permutation and keeps the sorted differences; the backward writes
// each gradient entry once through the permutation. Under create_graph the backward is instead
// written with gather/scatter of the inputs, so that it is itself differentiable (double backward
// works).
class SortedW2Rows : public torch::autograd::Function<SortedW2Rows> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& u,
                               const torch::Tensor& v) {
    const auto uc = u.contiguous();
    const auto vc = v.contiguous();
    const int64_t n = u.size(-1);
    const int64_t rows = u.numel() / n;
    TORCH_CHECK(n < (int64_t{1} << 31), "wasserstein_1d_pp: rows of ", n, " values are too long");
    auto loss = torch::empty(u.sizes().slice(0, u.dim() - 1), u.options());
    auto diff = torch::empty_like(uc);  // sort(u) - sort(v), row by row
    auto u_index = torch::empty(u.sizes(), u.options().dtype(torch::kInt));
    auto v_index = torch::empty(u.sizes(), u.options().dtype(torch::kInt));
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "sorted_w2_rows", [&] {
      const scalar_t* pu = uc.data_ptr<scalar_t>();
      const scalar_t* pv = vc.data_ptr<scalar_t>();
      scalar_t* pd = diff.data_ptr<scalar_t>();
      scalar_t* pl = loss.data_ptr<scalar_t>();
      int32_t* iu = u_index.data_ptr<int32_t>();
      int32_t* iv = v_index.data_ptr<int32_t>();
      for_each_row<scalar_t>(rows, n, [&](auto& s, int64_t r) {
        s.sorter.sort(pu + r * n, n, s.a.data(), iu + r * n);
        s.sorter.sort(pv + r * n, n, s.b.data(), iv + r * n);
        double sum = 0.0;
        for (int64_t k = 0; k < n; ++k) {
          const scalar_t d = s.a[k] - s.b[k];
          pd[r * n + k] = d;
          sum += static_cast<double>(d) * d;
        }
        pl[r] = static_cast<scalar_t>(sum / static_cast<double>(n));
      });
    });
    ctx->save_for_backward({u, v, u_index, v_index, diff});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const auto &u = saved[0], &v = saved[1], &u_index = saved[2], &v_index = saved[3],
               &diff = saved[4];
    const int64_t n = u.size(-1);
    if (torch::GradMode::is_enabled()) {
      // create_graph: [..., N] in sorted order, 2 (u_(k) - v_(k)) g / N, built from u and v.
      const auto ui = u_index.to(torch::kLong);
      const auto vi = v_index.to(torch::kLong);
      auto d = (u.gather(-1, ui) - v.gather(-1, vi)) * (grad_out[0].unsqueeze(-1) * (2.0 / n));
      return {torch::zeros_like(u).scatter(-1, ui, d), torch::zeros_like(v).scatter(-1, vi, -d)};
    }
    const auto g = grad_out[0].to(u.scalar_type()).contiguous();
    auto grad_u = torch::empty(u.sizes(), u.options());
    auto grad_v = torch::empty(v.sizes(), v.options());
    const int64_t rows = u.numel() / n;
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "sorted_w2_rows_backward", [&] {
      const scalar_t* pg = g.data_ptr<scalar_t>();
      const scalar_t* pd = diff.data_ptr<scalar_t>();
      const int32_t* iu = u_index.data_ptr<int32_t>();
      const int32_t* iv = v_index.data_ptr<int32_t>();
      scalar_t* gu = grad_u.data_ptr<scalar_t>();
      scalar_t* gv = grad_v.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t scale = pg[r] * static_cast<scalar_t>(2.0 / static_cast<double>(n));
          const int64_t o = r * n;
          for (int64_t k = 0; k < n; ++k) {  // each index is a permutation: every entry once
            const scalar_t d = scale * pd[o + k];
            gu[o + iu[o + k]] = d;
            gv[o + iv[o + k]] = -d;
          }
        }
      });
    });
    return {grad_u, grad_v};
  }
};

// mean_k |sort(u)_k - sort(v)_k|^p of each row without autograd, u and v [..., N] of one dtype on
// the CPU -> [...]: each pair of rows is radix sorted into per-thread buffers and reduced at once,
// with no [..., N] temporaries (the sliced metrics project 10^4 .. 10^5 points on 10^3 directions).
torch::Tensor sorted_rows_pp(const torch::Tensor& u, const torch::Tensor& v, double p) {
  const auto uc = u.contiguous();
  const auto vc = v.contiguous();
  const int64_t n = u.size(-1);
  auto out = torch::empty(u.sizes().slice(0, u.dim() - 1), u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "sorted_rows_pp", [&] {
    const scalar_t* pu = uc.data_ptr<scalar_t>();
    const scalar_t* pv = vc.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    // |d|^p picked once, outside the loops.
    auto reduce = [&](auto power) {
      for_each_row<scalar_t>(u.numel() / n, n, [&](auto& s, int64_t r) {
        s.sorter.sort(pu + r * n, n, s.a.data());
        s.sorter.sort(pv + r * n, n, s.b.data());
        double sum = 0.0;
        for (int64_t k = 0; k < n; ++k) {
          sum += power(std::abs(static_cast<double>(s.a[k]) - static_cast<double>(s.b[k])));
        }
        po[r] = static_cast<scalar_t>(sum / static_cast<double>(n));
      });
    };
    if (p == 2.0) {
      reduce([](double d) { return d * d; });
    } else if (p == 1.0) {
      reduce([](double d) { return d; });
    } else {
      reduce([p](double d) { return std::pow(d, p); });
    }
  });
  return out;
}

torch::Tensor pow_abs(const torch::Tensor& d, double p) {
  return p == 2.0 ? d * d : d.abs().pow(p);
}

// Normalised cumulative weights of the sorted values: [..., N], last entry exactly 1.
torch::Tensor sorted_cumulative_weights(const torch::Tensor& weights, const torch::Tensor& values,
                                        const torch::Tensor& order) {
  const int64_t n = values.size(-1);
  torch::Tensor w;
  if (weights.defined()) {
    TORCH_CHECK(weights.size(-1) == n, "wasserstein_1d_pp: ", n, " values but ", weights.size(-1),
                " weights");
    w = weights.to(values.device(), values.scalar_type()).expand(values.sizes()).gather(-1, order);
  } else {
    w = torch::ones_like(values);
  }
  auto c = w.cumsum(-1);
  return c / c.narrow(-1, n - 1, 1);
}

}  // namespace

torch::Tensor wasserstein_1d_pp(const torch::Tensor& u, const torch::Tensor& v, double p,
                                const torch::Tensor& u_weights, const torch::Tensor& v_weights) {
  TORCH_CHECK(u.dim() >= 1 && v.dim() >= 1, "wasserstein_1d_pp: expected [..., N] inputs");
  TORCH_CHECK(u.sizes().slice(0, u.dim() - 1) == v.sizes().slice(0, v.dim() - 1),
              "wasserstein_1d_pp: leading shapes differ: ", u.sizes(), " vs ", v.sizes());
  const int64_t n = u.size(-1);
  const int64_t m = v.size(-1);
  TORCH_CHECK(n > 0 && m > 0, "wasserstein_1d_pp: empty input");
  const bool weighted = u_weights.defined() || v_weights.defined();
  if (!weighted && n == m) {
    const bool needs_grad =
        torch::GradMode::is_enabled() && (u.requires_grad() || v.requires_grad());
    if (p == 2.0 && needs_grad && u.is_cpu() && v.is_cpu() && u.sizes() == v.sizes() &&
        u.scalar_type() == v.scalar_type()) {
      return SortedW2Rows::apply(u, v);
    }
    if (!needs_grad && u.is_cpu() && v.is_cpu() && u.sizes() == v.sizes() &&
        u.scalar_type() == v.scalar_type() && n < (int64_t{1} << 32)) {
      return sorted_rows_pp(u, v, p);
    }
    auto us = sort_values(u);
    auto vs = sort_values(v);
    return pow_abs(us - vs, p).mean(-1);
  }
  if (!weighted) {
    // Uniform weights: the levels i/n and j/m are the same for every row.
    auto us = sort_values(u);
    auto vs = sort_values(v);
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto a = torch::arange(1, n + 1, f64) / static_cast<double>(n);
    auto b = torch::arange(1, m + 1, f64) / static_cast<double>(m);
    auto levels = std::get<0>(torch::cat({a, b}).sort());
    auto widths = torch::diff(levels, 1, 0, torch::zeros({1}, f64));
    auto iu = torch::searchsorted(a, levels).clamp_max(n - 1).to(u.device());
    auto iv = torch::searchsorted(b, levels).clamp_max(m - 1).to(v.device());
    auto diff = us.index_select(-1, iu) - vs.index_select(-1, iv);
    return (pow_abs(diff, p) * widths.to(u.device(), u.scalar_type())).sum(-1);
  }
  // Weighted: per-row levels. The quantile function of u on (l_{k-1}, l_k] is the first sorted
  // value whose cumulative weight reaches l_k.
  const auto u_order = sort_order(u);
  const auto v_order = sort_order(v);
  const auto us = u.gather(-1, u_order);
  const auto vs = v.gather(-1, v_order);
  auto cu = sorted_cumulative_weights(u_weights, us, u_order);
  auto cv = sorted_cumulative_weights(v_weights, vs, v_order);
  const auto merged = torch::cat({cu, cv}, -1);
  auto levels = merged.gather(-1, sort_order(merged));
  auto widths = torch::diff(levels, 1, -1, torch::zeros_like(levels.narrow(-1, 0, 1)));
  auto iu = torch::searchsorted(cu, levels).clamp_max(n - 1);
  auto iv = torch::searchsorted(cv, levels).clamp_max(m - 1);
  auto diff = us.gather(-1, iu) - vs.gather(-1, iv);
  return (pow_abs(diff, p) * widths).sum(-1);
}

torch::Tensor sliced_wasserstein_pp(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& theta, double p, const torch::Tensor& a,
                                    const torch::Tensor& b) {
  TORCH_CHECK(x.dim() == y.dim() && (x.dim() == 2 || x.dim() == 3),
              "sliced_wasserstein: expected [N, D] or [B, N, D] inputs of the same rank, got ",
              x.sizes(), " and ", y.sizes());
  TORCH_CHECK(x.size(-1) > 0 && x.size(-1) == y.size(-1) && x.size(-1) == theta.size(0),
              "sliced_wasserstein: dimension mismatch: ", x.sizes(), ", ", y.sizes(), ", theta ",
              theta.sizes());
  const auto t = theta.to(x.dtype());
  // Batched weights [B, N] apply to every direction: [B, 1, N].
  auto per_direction = [](const torch::Tensor& w) {
    return w.defined() && w.dim() == 2 ? w.unsqueeze(-2) : w;
  };
  // W_p^p along the directions [l, l + count): [count] or [B, count]. [.., N, L] -> [.., L, N], so
  // that sorting runs over the contiguous last dimension.
  auto along = [&](int64_t l, int64_t count) {
    const auto tb = count == t.size(1) ? t : t.narrow(1, l, count);
    const auto px = x.matmul(tb).transpose(-1, -2).contiguous();
    const auto py = y.matmul(tb).transpose(-1, -2).contiguous();
    return wasserstein_1d_pp(px, py, p, per_direction(a), per_direction(b));
  };
  const int64_t n_projections = t.size(1);
  const bool needs_grad =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || y.requires_grad() || theta.requires_grad() ||
       (a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
  // Without autograd, directions in blocks of about 2^20 projected values: memory O(N + M) instead
  // of O(L (N + M)), and buffers that stay in malloc's pool (fresh [L, N] tensors of 10^7 values
  // and more fault in page by page).
  const int64_t per_direction_values = x.numel() / x.size(-1) + y.numel() / y.size(-1);
  const int64_t block =
      std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, per_direction_values));
  if (needs_grad || block >= n_projections) {
    return along(0, n_projections).mean(-1);
  }
  torch::Tensor total;
  for (int64_t l = 0; l < n_projections; l += block) {
    const auto part = along(l, std::min(block, n_projections - l)).sum(-1);
    total = total.defined() ? total + part : part;
  }
  return total / static_cast<double>(n_projections);
}

torch::Tensor sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t n_projections, uint64_t seed, double p,
                                 const torch::Tensor& a, const torch::Tensor& b) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto theta = random_directions(x.size(-1), n_projections, gen, x.options());
  return sliced_wasserstein_pp(x, y, theta, p, a, b).clamp_min(0).pow(1.0 / p);
}

namespace {

// sum_{i<j} |a_i - a_j| of each row of `sorted` [b, n] (ascending): sum_k a_(k) (2k - n - 1).
torch::Tensor pair_distance_sums(const torch::Tensor& sorted) {
  const int64_t n = sorted.size(-1);
  const auto weights = 2.0 * torch::arange(1, n + 1, sorted.options()) - static_cast<double>(n + 1);
  return sorted.matmul(weights);
}

// sum_{i, j} |a_i - b_j| of each row pair, a [b, n] and b_sorted [b, m] (ascending): with k_i the
// number of b below a_i and S_i their sum, |a_i - b| summed over b is (2 k_i - m) a_i - 2 S_i + sum
// b.
torch::Tensor cross_distance_sums(const torch::Tensor& a, const torch::Tensor& b_sorted) {
  const int64_t m = b_sorted.size(-1);
  const auto below = torch::searchsorted(b_sorted.detach(), a.detach());  // [b, n], no gradient
  const auto prefix =
      torch::cat({torch::zeros_like(b_sorted.narrow(-1, 0, 1)), b_sorted.cumsum(-1)}, -1);
  const auto below_sum = prefix.gather(-1, below);
  const auto total = prefix.narrow(-1, m, 1);
  return ((2.0 * below.to(a.scalar_type()) - static_cast<double>(m)) * a - 2.0 * below_sum + total)
      .sum(-1);
}

}  // namespace

torch::Tensor sliced_energy_distance(const torch::Tensor& x, const torch::Tensor& y,
                                     const torch::Tensor& theta) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && theta.dim() == 2 && x.size(1) == y.size(1) &&
                  theta.size(0) == x.size(1) && theta.size(1) > 0,
              "sliced_energy_distance: need x [N, D], y [M, D], theta [D, L], got ", x.sizes(),
              ", ", y.sizes(), ", ", theta.sizes());
  const int64_t n = x.size(0);
  const int64_t m = y.size(0);
  TORCH_CHECK(n >= 2 && m >= 2, "sliced_energy_distance: needs two points in each set, got ", n,
              " and ", m);
  const int64_t dim = x.size(1);
  const int64_t n_projections = theta.size(1);
  // About 2^18 projected values (2 MB in float64) per block of directions: the blocks' buffers stay
  // in the cache and in malloc's pool, where fresh 100 MB tensors would fault in page by page.
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 18) / (n + m));
  const auto directions = theta.to(x.dtype());
  torch::Tensor total;
  for (int64_t l = 0; l < n_projections; l += block) {
    const auto t = directions.slice(1, l, std::min(l + block, n_projections));
    const auto px = x.matmul(t).t();  // [b, N]
    const auto py = y.matmul(t).t();  // [b, M]
    const auto sorted_x = sort_values(px);
    const auto sorted_y = sort_values(py);
    const auto within_x = pair_distance_sums(sorted_x);
    const auto within_y = pair_distance_sums(sorted_y);
    const auto across = cross_distance_sums(sorted_x, sorted_y);
    const auto energy = across * (2.0 / (static_cast<double>(n) * m)) -
                        within_x * (2.0 / (static_cast<double>(n) * (n - 1))) -
                        within_y * (2.0 / (static_cast<double>(m) * (m - 1)));  // [b]
    total = total.defined() ? total + energy.sum() : energy.sum();
  }
  // E_u |<u, z>| = kappa_D |z|.
  const double kappa =
      std::exp(std::lgamma(dim / 2.0) - std::lgamma((dim + 1) / 2.0)) / std::sqrt(M_PI);
  return total / (static_cast<double>(n_projections) * kappa);
}

torch::Tensor sliced_energy_distance(const torch::Tensor& x, const torch::Tensor& y,
                                     int64_t n_projections, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto theta = random_directions(x.size(-1), n_projections, gen, x.options());
  return sliced_energy_distance(x, y, theta);
}

}  // namespace uotflow
