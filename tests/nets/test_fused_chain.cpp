// The explicit pass of the toy nets (chain_value_and_penalty) against autograd's generic double
// backward: values, R1 term, weight and input gradients, in float64 and float32, with and without
// the penalty, and central finite differences of the fused pass itself in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "checks.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/semidual.h"

using namespace uotflow;
using uotflow::testing::finite_difference;

namespace {

// |a - b| / |b| in the Frobenius norm.
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-300);
}

struct Outputs {
  torch::Tensor v, penalty, grad_y;
  std::vector<torch::Tensor> grad_w;
};

std::shared_ptr<PotentialNet> random_potential(const std::string& net, int64_t dim,
                                               torch::Dtype dtype) {
  auto v = make_potential(dim, Json{{"net", net}, {"width", 16}, {"depth", 2}});
  v->to(dtype);
  torch::NoGradGuard no_grad;
  for (auto& p : v->parameters()) {
    p.normal_(0.0, 0.4);  // biases too, so that every SiLU works away from 0
  }
  return v;
}

// L = sum_i c_i v(y_i) + a * penalty, differentiated in the weights and in y.
Outputs run(PotentialNet& net, const torch::Tensor& y0, const torch::Tensor& c, double a,
            bool fused) {
  auto y = y0.clone().requires_grad_(true);
  Outputs out;
  if (fused) {
    std::tie(out.v, out.penalty) = chain_value_and_penalty(*net.chain(), y, a != 0);
  } else {
    out.v = net.forward(y);
    if (a != 0) {
      out.penalty = gradient_penalty(out.v, y);
    }
  }
  auto loss = (c * out.v).sum();
  if (a != 0) {
    loss = loss + a * out.penalty;
  }
  auto params = net.parameters();
  std::vector<torch::Tensor> inputs(params.begin(), params.end());
  inputs.push_back(y);
  auto grads = torch::autograd::grad({loss}, inputs);
  out.grad_y = grads.back();
  grads.pop_back();
  out.grad_w = grads;
  return out;
}

void expect_same(const Outputs& fused, const Outputs& generic, double tol) {
  EXPECT_LT(rel(fused.v, generic.v), tol);
  if (generic.penalty.defined()) {
    ASSERT_TRUE(fused.penalty.defined());
    EXPECT_LT(rel(fused.penalty, generic.penalty), tol);
  }
  EXPECT_LT(rel(fused.grad_y, generic.grad_y), tol);
  ASSERT_EQ(fused.grad_w.size(), generic.grad_w.size());
  for (size_t k = 0; k < generic.grad_w.size(); ++k) {
    EXPECT_LT(rel(fused.grad_w[k], generic.grad_w[k]), tol) << "parameter " << k;
  }
}

class FusedChainTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedChainTest, EqualsTheGenericDoubleBackward) {
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    torch::manual_seed(3);
    auto net = random_potential(GetParam(), 3, dtype);
    ASSERT_NE(net->chain(), nullptr);
    auto y = torch::randn({37, 3}, dtype);
    auto c = torch::randn({37}, dtype);
    const double tol = dtype == torch::kFloat64 ? 1e-10 : 2e-5;
    for (double a : {0.7, 0.0}) {
      SCOPED_TRACE("dtype " + std::string(c10::toString(dtype)) + ", a " + std::to_string(a));
      auto fused = run(*net, y, c, a, true);
      auto generic = run(*net, y, c, a, false);
      expect_same(fused, generic, tol);
      // The penalty's own gradient is not negligible next to the first-order part.
      if (a != 0) {
        auto first_order = run(*net, y, c, 0.0, false);
        EXPECT_GT(rel(generic.grad_w[0], first_order.grad_w[0]), 1e-2);
      }
    }
  }
}

TEST_P(FusedChainTest, GradientsMatchFiniteDifferences) {
  torch::manual_seed(5);
  auto net = random_potential(GetParam(), 2, torch::kFloat64);
  auto y = torch::randn({9, 2}, torch::kFloat64);
  auto c = torch::randn({9}, torch::kFloat64);
  const double a = 1.3;
  auto loss_of = [&] {
    torch::NoGradGuard no_grad;
    auto [v, p] = chain_value_and_penalty(*net->chain(), y, true);
    return ((c * v).sum() + a * p).item<double>();
  };
  auto fused = run(*net, y, c, a, true);
  auto params = net->parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    auto fd = finite_difference(loss_of, params[k].detach());
    EXPECT_LT(rel(fused.grad_w[k], fd), 1e-6) << "parameter " << k;
  }
  EXPECT_LT(rel(fused.grad_y, finite_difference(loss_of, y)), 1e-6);
}

TEST_P(FusedChainTest, FrozenWeightsGiveTheInputGradientOnly) {
  torch::manual_seed(7);
  auto net = random_potential(GetParam(), 2, torch::kFloat32);
  for (auto& p : net->parameters()) {
    p.set_requires_grad(false);
  }
  auto y = torch::randn({11, 2}).requires_grad_(true);
  auto [v, p] = chain_value_and_penalty(*net->chain(), y, false);
  EXPECT_FALSE(p.defined());
  auto g = torch::autograd::grad({v.sum()}, {y})[0];
  auto y2 = y.detach().clone().requires_grad_(true);
  auto g2 = torch::autograd::grad({net->forward(y2).sum()}, {y2})[0];
  EXPECT_LT(rel(g, g2), 1e-5);
  for (const auto& param : net->parameters()) {
    EXPECT_FALSE(param.grad().defined());
  }
}

INSTANTIATE_TEST_SUITE_P(ToyNets, FusedChainTest, ::testing::Values("resnet_fc", "mlp"));

}  // namespace
