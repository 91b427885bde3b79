// Input-convex nets: grad psi is the identity at the start; psi stays convex (along random
// segments, and a PSD Hessian >= s I) for any weights once projected, and the test sees the
// convexity go when the projection is skipped.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checks.h"
#include "uotflow/core/error.h"
#include "uotflow/nets/icnn.h"

using namespace uotflow;
using uotflow::testing::expect_config_error;

namespace {

// Every weight drawn from N(0, scale^2): a random net, convex only after project().
void randomize(Icnn& psi, uint64_t seed, double scale) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : psi.parameters()) {
    p.copy_(torch::randn(p.sizes(), gen, p.options()) * scale);
  }
}

// The largest violation of psi(t a + (1 - t) b) <= t psi(a) + (1 - t) psi(b) over random
// segments (> 0: not convex).
double worst_convexity_gap(Icnn& psi, int64_t dim, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f = torch::kDouble;
  auto a = torch::randn({4096, dim}, gen, f) * 2;
  auto b = torch::randn({4096, dim}, gen, f) * 2;
  auto t = torch::rand({4096, 1}, gen, f);
  auto mid = psi.forward(t * a + (1 - t) * b);
  auto chord = t.squeeze(1) * psi.forward(a) + (1 - t.squeeze(1)) * psi.forward(b);
  return (mid - chord).max().item<double>();
}

// Hessians of psi at the rows of x: [N, D, D].
torch::Tensor hessians(Icnn& psi, const torch::Tensor& x0) {
  auto x = x0.clone().requires_grad_(true);
  auto y = psi.gradient(x, true);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {x}, {}, true)[0]);
  }
  return torch::stack(rows, 1);
}

TEST(Icnn, GradientIsTheIdentityAtTheStart) {
  for (int64_t dim : {1, 2, 8, 32}) {
    for (bool quadratic : {true, false}) {
      torch::manual_seed(dim);
      Icnn psi(dim, IcnnOptions().quadratic(quadratic));
      auto x = torch::randn({256, dim}) * 3;
      const double error = (psi.gradient(x, false) - x).abs().max().item<double>();
      EXPECT_LT(error, 1e-5) << "dim " << dim << " quadratic " << quadratic;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
      randomize(psi, 1, 0.5);
      psi.reset_to_identity(gen);
      EXPECT_LT((psi.gradient(x, false) - x).abs().max().item<double>(), 1e-5);
    }
  }
}

TEST(Icnn, ProjectedRandomNetsAreConvexWithAHessianAboveTheStrongConvexity) {
  for (const std::string activation : {"celu", "softplus"}) {
    for (int64_t dim : {2, 8}) {
      const double s = 0.01;
      Icnn psi(dim, IcnnOptions().width(32).depth(3).activation(activation).strong_convexity(s));
      psi.to(torch::kDouble);
      randomize(psi, 3, 1.0);
      psi.project();
      EXPECT_LE(worst_convexity_gap(psi, dim, 5), 1e-9) << activation << " d " << dim;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
      auto eigen =
          torch::linalg_eigvalsh(hessians(psi, torch::randn({512, dim}, gen, torch::kDouble) * 2));
      EXPECT_GE(eigen.min().item<double>(), s * (1 - 1e-6)) << activation << " d " << dim;
      // The same weights without the projection: the check sees the lost convexity.
      randomize(psi, 3, 1.0);
      EXPECT_GT(worst_convexity_gap(psi, dim, 5), 1e-3) << activation << " d " << dim;
    }
  }
}

TEST(Icnn, ProjectionKeepsOnlyTheConstrainedWeightsNonNegative) {
  Icnn psi(3, IcnnOptions().width(8).depth(3));
  randomize(psi, 2, 1.0);
  psi.project();
  int64_t constrained = 0;
  for (const auto& item : psi.named_parameters()) {
    const bool must = item.key().rfind("hidden", 0) == 0 || item.key() == "output";
    constrained += must;
    if (must) {
      EXPECT_GE(item.value().min().item<double>(), 0.0) << item.key();
    } else {
      EXPECT_LT(item.value().min().item<double>(), 0.0) << item.key() << " is free";
    }
  }
  EXPECT_EQ(constrained, 3);  // hidden1, hidden2, output
}

TEST(Icnn, BadOptionsAreConfigErrors) {
  expect_config_error(
      [] {
        IcnnOptions::from_json(Json{{"activation", "relu"}});
      },
      "relu", "activation");
  expect_config_error([] { IcnnOptions::from_json(Json{{"depth", 0}}); }, "depth 0", "depth");
  expect_config_error(
      [] {
        IcnnOptions::from_json(Json{{"strong_convexity", 1.0}});
      },
      "s = 1", "strong_convexity");
  EXPECT_EQ(IcnnOptions::from_json(Json::object()).to_json(), IcnnOptions().to_json());
}

}  // namespace
