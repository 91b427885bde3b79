// Sliced Wasserstein: project on random directions, then exact 1-D OT by sorting (equal sizes) or
// by the quantile functions (different sizes).
#include "uotflow/ot/sliced.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

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

torch::Tensor wasserstein_1d_pp(const torch::Tensor& u, const torch::Tensor& v, double p) {
  TORCH_CHECK(u.dim() >= 1 && v.dim() >= 1, "wasserstein_1d_pp: expected [..., N] inputs");
  TORCH_CHECK(u.sizes().slice(0, u.dim() - 1) == v.sizes().slice(0, v.dim() - 1),
              "wasserstein_1d_pp: leading shapes differ: ", u.sizes(), " vs ", v.sizes());
  const int64_t n = u.size(-1);
  const int64_t m = v.size(-1);
  TORCH_CHECK(n > 0 && m > 0, "wasserstein_1d_pp: empty input");
  auto us = std::get<0>(u.sort(-1));
  auto vs = std::get<0>(v.sort(-1));
  auto pow_abs = [p](const torch::Tensor& d) { return p == 2.0 ? d * d : d.abs().pow(p); };
  if (n == m) {
    return pow_abs(us - vs).mean(-1);
  }
  // Quantile functions are step functions with jumps at i/n and j/m: integrate over the merged
  // levels.
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto a = torch::arange(1, n + 1, f64) / static_cast<double>(n);
  auto b = torch::arange(1, m + 1, f64) / static_cast<double>(m);
  auto levels = std::get<0>(torch::cat({a, b}).sort());
  auto widths = torch::diff(levels, 1, 0, torch::zeros({1}, f64));
  auto iu = torch::searchsorted(a, levels).clamp_max(n - 1).to(u.device());
  auto iv = torch::searchsorted(b, levels).clamp_max(m - 1).to(v.device());
  auto diff = us.index_select(-1, iu) - vs.index_select(-1, iv);
  return (pow_abs(diff) * widths.to(u.device(), u.scalar_type())).sum(-1);
}

torch::Tensor sliced_wasserstein_pp(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& theta, double p) {
  TORCH_CHECK(x.dim() == y.dim() && (x.dim() == 2 || x.dim() == 3),
              "sliced_wasserstein: expected [N, D] or [B, N, D] inputs of the same rank, got ",
              x.sizes(), " and ", y.sizes());
  TORCH_CHECK(x.size(-1) == y.size(-1) && x.size(-1) == theta.size(0),
              "sliced_wasserstein: dimension mismatch: ", x.sizes(), ", ", y.sizes(), ", theta ",
              theta.sizes());
  auto t = theta.to(x.dtype());
  // [.., N, L] -> [.., L, N] so that sorting runs over the contiguous last dimension.
  auto px = x.matmul(t).transpose(-1, -2).contiguous();
  auto py = y.matmul(t).transpose(-1, -2).contiguous();
  return wasserstein_1d_pp(px, py, p).mean(-1);
}

torch::Tensor sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                                 int64_t n_projections, uint64_t seed, double p) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto theta = random_directions(x.size(-1), n_projections, gen, x.options());
  return sliced_wasserstein_pp(x, y, theta, p).clamp_min(0).pow(1.0 / p);
}

}  // namespace uotflow
