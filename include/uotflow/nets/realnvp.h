// RealNVP normalizing flow: affine couplings with a Reverse permutation between them, exact
// log-determinant and inverse, so densities and entropies of the pushed-forward measure are exact.
#pragma once

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace uotflow {

struct RealNVPOptions {
  explicit RealNVPOptions(int64_t dim) : dim_(dim) {}
  /// Dimension D of the samples (>= 2: a coupling needs a half to condition on).
  TORCH_ARG(int64_t, dim);
  /// Number of affine coupling layers.
  TORCH_ARG(int64_t, couplings) = 5;
  /// Width of the scale and shift nets.
  TORCH_ARG(int64_t, width) = 100;
  /// Hidden layers of the scale and shift nets.
  TORCH_ARG(int64_t, hidden_layers) = 2;
};

/// x = f(z) through `couplings` layers. Layer k keeps the first h = D/2 coordinates u and maps the
/// rest v to v * exp(s(u)) + t(u) with s = tanh(S(u)); the coordinates are reversed between layers.
/// The last linear layers of S and T start at zero, so a new flow is the identity.
///
///   RealNVP flow(RealNVPOptions(10).couplings(5).width(100));
///   auto [x, log_det] = flow->forward(torch::randn({1024, 10}));  // [1024, 10], [1024]
///   auto [z, inv_log_det] = flow->inverse(x);                       // z, -log_det
class RealNVPImpl : public torch::nn::Cloneable<RealNVPImpl> {
 public:
  explicit RealNVPImpl(RealNVPOptions options);
  void reset() override;

  /// z: [B, D] -> (x [B, D], log|det dx/dz| [B]).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& z);
  /// x: [B, D] -> (z [B, D], log|det dz/dx| [B]); the exact inverse of forward.
  std::pair<torch::Tensor, torch::Tensor> inverse(const torch::Tensor& x);
  /// log density of f#N(0, I) at x: [B, D] -> [B].
  torch::Tensor log_prob(const torch::Tensor& x);

  RealNVPOptions options;

 private:
  // (s, t) of coupling k for the kept half u: [B, h] -> ([B, D - h], [B, D - h]).
  std::pair<torch::Tensor, torch::Tensor> scale_shift(size_t k, const torch::Tensor& u);

  std::vector<torch::nn::Sequential> scale_nets_;
  std::vector<torch::nn::Sequential> shift_nets_;
};
TORCH_MODULE(RealNVP);

/// log N(z; 0, I) of each row of z: [B, D] -> [B].
torch::Tensor standard_normal_log_prob(const torch::Tensor& z);

}  // namespace uotflow
