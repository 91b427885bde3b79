// One harness over the registries: every Psi*, cost, functional and net entry is checked for its
// defining properties, shapes and finite-difference gradients, so registering an entry tests it. A
// new functional or net needs an example section below; a test fails until it has one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "uotflow/flow/functional.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/cost.h"
#include "uotflow/ot/phi.h"
#include "uotflow_build_info.h"

using namespace uotflow;

namespace {

// Central differences of a scalar function of x against its autograd gradient, in float64 (h =
// 1e-6) or, for entries that hold float32 tensors, in float32 (h = 1e-3).
void expect_gradient_matches_finite_differences(
    const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x,
    const std::string& what, double tolerance = 1e-5, torch::Dtype dtype = torch::kDouble) {
  x = x.to(dtype).detach().requires_grad_(true);
  auto value = f(x);
  auto grad = torch::autograd::grad({value}, {x})[0];
  const double h = dtype == torch::kDouble ? 1e-6 : 1e-3;
  // Rounding of f itself bounds what the differences can resolve.
  const double eps = dtype == torch::kDouble ? 2.2e-16 : 1.2e-7;
  const double rounding = 8 * eps * std::abs(value.item<double>()) / h;
  auto flat = x.detach().clone().view(-1);
  for (int64_t i = 0; i < std::min<int64_t>(flat.numel(), 12); ++i) {
    auto plus = flat.clone(), minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    const double fd =
        (f(plus.view(x.sizes())).item<double>() - f(minus.view(x.sizes())).item<double>()) /
        (2 * h);
    EXPECT_NEAR(grad.reshape(-1)[i].item<double>(), fd,
                tolerance * std::max(1.0, std::abs(fd)) + rounding)
        << what << " coordinate " << i;
  }
}

TEST(Registries, EveryPhiIsTheConjugateOfItsDivergence) {
  // Psi*(s) = sup_t (s t - Psi(t)), on a fine grid of t in [0, 12]; Psi*(0) = 0, Psi*'(0) = 1.
  const auto t = torch::linspace(0.0, 12.0, 240001, torch::kDouble);
  for (const auto& name : phi_registry().names()) {
    const Phi phi(name);
    std::vector<double> primal(t.size(0));
    for (int64_t i = 0; i < t.size(0); ++i) {
      primal[i] = phi.primal(t[i].item<double>());
    }
    const auto psi = torch::tensor(primal, torch::kDouble);
    for (double s : {-3.0, -1.0, -0.2, 0.0, 0.4, 1.5}) {
      const double sup = (s * t - psi).max().item<double>();
      const double conjugate = phi(torch::tensor(s, torch::kDouble)).item<double>();
      EXPECT_NEAR(conjugate, sup, 1e-4 * std::max(1.0, std::abs(sup))) << name << " at " << s;
    }
    EXPECT_EQ(phi(torch::zeros({1}, torch::kDouble)).item<double>(), 0.0) << name;
    expect_gradient_matches_finite_differences(
        [&](const torch::Tensor& x) { return phi(x).sum(); },
        torch::tensor({-1.3, -0.4, 0.0, 0.7}, torch::kDouble), "phi " + name);
    auto zero = torch::zeros({1}, torch::kDouble).requires_grad_(true);
    EXPECT_NEAR(torch::autograd::grad({phi(zero).sum()}, {zero})[0].item<double>(), 1.0, 1e-12)
        << name;
    // The property flags agree with the function.
    auto s = torch::linspace(-2, 2, 9, torch::kDouble);
    EXPECT_EQ(phi.is_linear(), torch::allclose(phi(s), s)) << name;
    EXPECT_EQ(phi.is_kl(), torch::allclose(phi(s), torch::expm1(s))) << name;
  }
}

TEST(Registries, EveryCostAgreesPairwiseAndOnAllPairsWithFiniteDifferences) {
  torch::manual_seed(0);
  for (const auto& name : cost_registry().names()) {
    for (auto reduction : {CostReduction::kSum, CostReduction::kMean}) {
      auto cost = cost_registry().create(name, 0.7, reduction);
      auto x = torch::randn({5, 3}, torch::kDouble);
      auto y = torch::randn({4, 3}, torch::kDouble);
      auto all = cost->all_pairs(x, y);
      ASSERT_EQ(all.sizes(), (std::vector<int64_t>{5, 4})) << name;
      for (int64_t i = 0; i < 5; ++i) {
        auto row = cost->pairwise(x[i].unsqueeze(0).expand({4, 3}), y);
        EXPECT_TRUE(torch::allclose(all[i], row, 1e-9, 1e-12)) << name << " row " << i;
      }
      EXPECT_TRUE(torch::allclose(cost->pairwise(x, x), torch::zeros({5}, torch::kDouble)));
      expect_gradient_matches_finite_differences(
          [&](const torch::Tensor& a) { return cost->pairwise(a, x).sum(); },
          torch::randn({5, 3}, torch::kDouble), "cost " + name);
    }
  }
}

// An example section per functional, in d = 2.
std::map<std::string, Json> functional_examples() {
  const Json quadratic{{"name", "quadratic"}, {"params", {{"dim", 2}, {"seed", 1}}}};
  return {
      {"quadratic", quadratic},
      {"gmm", {{"name", "gmm"}, {"params", {{"means", {{1.0, 0.0}, {-1.0, 0.5}}}, {"std", 0.5}}}}},
      {"entropy", {{"name", "entropy"}}},
      {"kl", {{"name", "kl"}, {"params", {{"target", quadratic}}}}},
      {"interaction", {{"name", "interaction"}, {"params", {{"kernel", "ring"}}}}},
      {"sw_data",
       {{"name", "sw_data"}, {"params", {{"data", {{"name", "moons"}}}, {"n_projections", 50}}}}},
      {"sum",
       {{"name", "sum"},
        {"params",
         {{"terms",
           {{{"name", "quadratic"}, {"weight", 2.0}, {"params", quadratic["params"]}},
            {{"name", "interaction"}, {"weight", 0.5}, {"params", {{"kernel", "disk"}}}}}}}}}},
      {"blr",
       {{"name", "blr"},
        {"params",
         {{"data", "diabetes"}, {"data_dir", std::string(UOTFLOW_SOURCE_DIR) + "/data/tabular"}}}}},
  };
}

TEST(Registries, EveryFunctionalIsFiniteAndDifferentiableOnASample) {
  const auto examples = functional_examples();
  for (const auto& name : functional_registry().names()) {
    ASSERT_TRUE(examples.count(name)) << "functional '" << name << "' has no example here";
    if (name == "blr" &&
        !std::filesystem::exists(std::string(UOTFLOW_SOURCE_DIR) + "/data/tabular")) {
      continue;  // the tabular files come with `make setup`
    }
    auto f = make_functional(examples.at(name), name == "blr" ? 0 : 2);
    const int64_t dim = f->dim() != 0 ? f->dim() : 2;
    torch::manual_seed(3);
    auto x = 0.5 * torch::randn({40, dim});
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    FlowBatch batch{x.clone().requires_grad_(true)};
    batch.gen = &gen;
    if (f->needs_entropy()) {
      batch.neg_entropy = torch::tensor(0.3, torch::kFloat).requires_grad_(true);
    }
    auto value = f->value(batch);
    ASSERT_EQ(value.dim(), 0) << name;
    EXPECT_TRUE(std::isfinite(value.item<double>())) << name;
    if (name == "sw_data" || name == "entropy") {
      continue;  // random directions per call / no dependence on x: no finite differences
    }
    expect_gradient_matches_finite_differences(
        [&](const torch::Tensor& p) {
          FlowBatch b{p};
          b.gen = &gen;
          if (f->needs_entropy()) {
            b.neg_entropy = torch::tensor(0.3, torch::kFloat);
          }
          return f->value(b);
        },
        x, "functional " + name, 2e-3, torch::kFloat);
  }
}

TEST(Registries, EveryToyNetMapsShapesAndHasFiniteDifferenceGradients) {
  for (const auto& name : generator_registry().names()) {
    Json section = default_generator_section();
    section["net"] = name;
    const bool image = name == "dcgan" || name == "ncsnpp";
    const int64_t dim = image ? 3 * 16 * 16 : 3;
    if (image) {
      section["image_shape"] = {3, 16, 16};
      section["nf"] = 8;
      section["ch_mult"] = {1, 2};
      section["num_res_blocks"] = 1;
    } else {
      section["width"] = 16;
      section["depth"] = 1;
    }
    torch::manual_seed(0);
    auto g = make_generator(dim, section);
    auto x = torch::randn({2, dim});
    auto z = torch::randn({2, g->latent_dim()});
    try {
      EXPECT_EQ(g->forward(x, z).sizes(), x.sizes()) << "generator " << name;
    } catch (const c10::Error& e) {
      ADD_FAILURE() << "generator " << name << ": " << e.what_without_backtrace();
      continue;
    }
    if (!image) {
      g->to(torch::kDouble);
      expect_gradient_matches_finite_differences(
          [&](const torch::Tensor& a) { return g->forward(a, z.to(torch::kDouble)).pow(2).sum(); },
          x, "generator " + name);
    }
  }
  for (const auto& name : potential_registry().names()) {
    Json section = default_potential_section();
    section["net"] = name;
    const bool image = name == "dcgan" || name == "small_conv";
    const int64_t dim = image ? 3 * 16 * 16 : 3;
    if (image) {
      section["image_shape"] = {3, 16, 16};
      section["nf"] = 8;
    } else {
      section["width"] = 16;
      section["depth"] = 1;
    }
    torch::manual_seed(0);
    auto v = make_potential(dim, section);
    auto y = torch::randn({2, dim});
    EXPECT_EQ(v->forward(y).sizes(), (std::vector<int64_t>{2})) << "potential " << name;
    if (!image) {
      v->to(torch::kDouble);
      expect_gradient_matches_finite_differences(
          [&](const torch::Tensor& a) { return v->forward(a).sum(); }, y, "potential " + name);
    }
  }
}

}  // namespace
