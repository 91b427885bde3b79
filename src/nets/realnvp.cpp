// RealNVP: affine coupling layers with exact inverse and log-determinant.
#include "uotflow/nets/realnvp.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

torch::nn::Sequential coupling_net(int64_t in, int64_t width, int64_t hidden_layers, int64_t out) {
  torch::nn::Sequential net;
  int64_t features = in;
  for (int64_t i = 0; i < hidden_layers; ++i) {
    net->push_back(torch::nn::Linear(features, width));
    net->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    features = width;
  }
  net->push_back(torch::nn::Linear(features, out));
  return net;
}

void zero_last_layer(torch::nn::Sequential& net) {
  torch::NoGradGuard no_grad;
  auto last = net->ptr(net->size() - 1)->as<torch::nn::Linear>();
  last->weight.zero_();
  last->bias.zero_();
}

}  // namespace

RealNVPImpl::RealNVPImpl(RealNVPOptions options_) : options(std::move(options_)) {
  if (options.dim() < 2 || options.couplings() < 1 || options.width() < 1 ||
      options.hidden_layers() < 0) {
    throw ConfigError(
        "realnvp needs dim >= 2, couplings >= 1, width >= 1 and hidden_layers >= 0 "
        "(got dim " +
        std::to_string(options.dim()) + ", couplings " + std::to_string(options.couplings()) +
        ", width " + std::to_string(options.width()) + ")");
  }
  reset();
}

void RealNVPImpl::reset() {
  scale_nets_.clear();
  shift_nets_.clear();
  const int64_t kept = options.dim() / 2;
  const int64_t moved = options.dim() - kept;
  for (int64_t k = 0; k < options.couplings(); ++k) {
    auto s = coupling_net(kept, options.width(), options.hidden_layers(), moved);
    auto t = coupling_net(kept, options.width(), options.hidden_layers(), moved);
    zero_last_layer(s);
    zero_last_layer(t);
    scale_nets_.push_back(register_module("scale" + std::to_string(k), s));
    shift_nets_.push_back(register_module("shift" + std::to_string(k), t));
  }
}

std::pair<torch::Tensor, torch::Tensor> RealNVPImpl::scale_shift(size_t k, const torch::Tensor& u) {
  return {torch::tanh(scale_nets_[k]->forward(u)), shift_nets_[k]->forward(u)};
}

std::pair<torch::Tensor, torch::Tensor> RealNVPImpl::forward(const torch::Tensor& z) {
  TORCH_CHECK(z.dim() == 2 && z.size(1) == options.dim(), "RealNVP expects [B, ", options.dim(),
              "], got ", z.sizes());
  const int64_t kept = options.dim() / 2;
  auto x = z;
  auto log_det = torch::zeros({z.size(0)}, z.options());
  for (size_t k = 0; k < scale_nets_.size(); ++k) {
    if (k > 0) {
      x = x.flip(1);
    }
    auto u = x.slice(1, 0, kept);
    auto [s, t] = scale_shift(k, u);
    x = torch::cat({u, x.slice(1, kept) * torch::exp(s) + t}, 1);
    log_det = log_det + s.sum(1);
  }
  return {x, log_det};
}

std::pair<torch::Tensor, torch::Tensor> RealNVPImpl::inverse(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == options.dim(), "RealNVP expects [B, ", options.dim(),
              "], got ", x.sizes());
  const int64_t kept = options.dim() / 2;
  auto z = x;
  auto log_det = torch::zeros({x.size(0)}, x.options());
  for (size_t k = scale_nets_.size(); k-- > 0;) {
    auto u = z.slice(1, 0, kept);
    auto [s, t] = scale_shift(k, u);
    z = torch::cat({u, (z.slice(1, kept) - t) * torch::exp(-s)}, 1);
    log_det = log_det - s.sum(1);
    if (k > 0) {
      z = z.flip(1);
    }
  }
  return {z, log_det};
}

torch::Tensor RealNVPImpl::log_prob(const torch::Tensor& x) {
  auto [z, log_det] = inverse(x);
  return standard_normal_log_prob(z) + log_det;
}

torch::Tensor standard_normal_log_prob(const torch::Tensor& z) {
  return -0.5 * z.pow(2).sum(1) - 0.5 * static_cast<double>(z.size(1)) * std::log(2.0 * M_PI);
}

}  // namespace uotflow
