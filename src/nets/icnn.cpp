// Input-convex nets: the potential, its gradient map, the projection that keeps it convex, and
// the identity start.
#include "uotflow/nets/icnn.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "nets/section.h"
#include "uotflow/core/error.h"

namespace uotflow {
namespace {

void check(bool ok, const std::string& key, const std::string& requirement) {
  if (!ok) {
    throw ConfigError("icnn: config key '" + key + "' " + requirement);
  }
}

}  // namespace

IcnnOptions IcnnOptions::from_json(const Json& section) {
  IcnnOptions o;
  o.width(read_or(section, "width", o.width()))
      .depth(read_or(section, "depth", o.depth()))
      .activation(read_or(section, "activation", o.activation()))
      .quadratic(read_or(section, "quadratic", o.quadratic()))
      .strong_convexity(read_or(section, "strong_convexity", o.strong_convexity()));
  check(o.width() >= 1, "width", "must be >= 1");
  check(o.depth() >= 1 && o.depth() <= 64, "depth", "must be in [1, 64]");
  check(o.activation() == "celu" || o.activation() == "softplus", "activation",
        "must be celu or softplus (convex and non-decreasing), got '" + o.activation() + "'");
  check(o.strong_convexity() >= 0 && o.strong_convexity() < 1, "strong_convexity",
        "must be in [0, 1)");
  return o;
}

Json IcnnOptions::to_json() const {
  return Json{{"width", width()},
              {"depth", depth()},
              {"activation", activation()},
              {"quadratic", quadratic()},
              {"strong_convexity", strong_convexity()}};
}

Icnn::Icnn(int64_t dim, IcnnOptions options) : dim_(dim), options_(std::move(options)) {
  check(dim >= 1, "dim", "must be >= 1");
  const int64_t w = options_.width();
  for (int64_t l = 0; l < options_.depth(); ++l) {
    // input<l>.weight, input<l>.bias: the skip from x; hidden<l>: U_l
    auto input = register_module("input" + std::to_string(l), torch::nn::Linear(dim, w));
    input_weights_.push_back(input->weight);
    biases_.push_back(input->bias);
    if (l > 0) {
      hidden_weights_.push_back(
          register_parameter("hidden" + std::to_string(l), torch::empty({w, w})));
    }
  }
  output_weights_ = register_parameter("output", torch::empty({w}));
  linear_ = register_parameter("linear", torch::empty({dim}));
  if (options_.quadratic()) {
    quadratic_ = register_parameter("quadratic", torch::empty({dim, dim}));
  }
  at::Generator global = at::detail::getDefaultCPUGenerator();  // a handle: torch's own stream
  reset_to_identity(global);
}

torch::Tensor Icnn::activate(const torch::Tensor& h) const {
  return options_.activation() == "celu" ? torch::celu(h) : torch::softplus(h);
}

torch::Tensor Icnn::forward(const torch::Tensor& x) {
  auto z = activate(torch::addmm(biases_[0], x, input_weights_[0].t()));
  for (size_t l = 1; l < input_weights_.size(); ++l) {
    z = activate(torch::addmm(biases_[l], x, input_weights_[l].t()) +
                 z.matmul(hidden_weights_[l - 1].t()));
  }
  const double s = options_.strong_convexity();
  auto out = z.matmul(output_weights_) + x.matmul(linear_);
  auto square = x.pow(2).sum(1);
  if (options_.quadratic()) {
    out = out + 0.5 * x.matmul(quadratic_.t()).pow(2).sum(1) + 0.5 * s * square;
  } else {
    out = out + 0.5 * square;  // (1 - s)|x|^2 / 2 + s |x|^2 / 2
  }
  return out;
}

torch::Tensor Icnn::gradient(const torch::Tensor& x, bool create_graph) {
  torch::AutoGradMode enable(true);
  auto input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  auto y =
      torch::autograd::grad({forward(input).sum()}, {input}, {}, create_graph, create_graph)[0];
  return create_graph ? y : y.detach();
}

void Icnn::project() {
  torch::NoGradGuard no_grad;
  for (auto& u : hidden_weights_) {
    u.clamp_min_(0.0);
  }
  output_weights_.clamp_min_(0.0);
}

void Icnn::reset_to_identity(at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const auto f = torch::TensorOptions().dtype(linear_.scalar_type());
  const int64_t w = options_.width();
  for (size_t l = 0; l < input_weights_.size(); ++l) {
    // Units whose kinks spread over the unit ball of the data's scale.
    input_weights_[l].copy_(torch::randn({w, dim_}, gen, f) / std::sqrt(double(dim_)));
    biases_[l].copy_(torch::rand({w}, gen, f) * 2 - 1);
  }
  for (auto& u : hidden_weights_) {
    u.copy_(torch::rand({w, w}, gen, f) * (2.0 / double(w)));  // >= 0, mean 1 / width
  }
  output_weights_.zero_();
  linear_.zero_();
  if (options_.quadratic()) {
    quadratic_.copy_(torch::eye(dim_, f) * std::sqrt(1.0 - options_.strong_convexity()));
  }
}

}  // namespace uotflow
