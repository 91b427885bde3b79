// Tests of the optimiser registry: mirror descent on the simplex.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "uotflow/optim/optimizer.h"

using namespace uotflow;

// Mirror descent keeps a probability vector on the simplex, positive, and moves it toward the
// entries of smaller gradient by exactly p exp(-lr g) / Z.
TEST(Optimizer, MirrorDescentStepIsTheExponentiatedGradient) {
  auto p = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64).requires_grad_(true);
  const auto g = torch::tensor({1.0, -2.0, 0.5, 0.0}, torch::kFloat64);
  OptimizerSettings settings;
  settings.lr = 0.3;
  auto optimizer = optimizer_registry().create("mirror", {p}, settings);
  (p * g).sum().backward();
  optimizer->step();
  const auto expected = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64) * torch::exp(-0.3 * g);
  EXPECT_TRUE(torch::allclose(p.detach(), expected / expected.sum(), 1e-12, 0.0)) << p;
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
}

// Stateless: a checkpoint of it saves and loads nothing, and steps go on the same.
TEST(Optimizer, MirrorDescentSavesNoStateAndSkipsTensorsWithoutGradients) {
  auto p = torch::full({5}, 0.2, torch::kFloat64).requires_grad_(true);
  auto q = torch::full({3}, 1.0 / 3, torch::kFloat64).requires_grad_(true);
  OptimizerSettings settings;
  settings.lr = 1.0;
  auto optimizer = optimizer_registry().create("mirror", {p, q}, settings);
  (p * torch::arange(5, torch::kFloat64)).sum().backward();
  optimizer->step();
  EXPECT_TRUE(torch::equal(q.detach(), torch::full({3}, 1.0 / 3, torch::kFloat64)));
  EXPECT_LT(p[4].item<double>(), p[0].item<double>());
  torch::serialize::OutputArchive archive;
  optimizer->save(archive);
  std::ostringstream bytes;
  archive.save_to(bytes);
  torch::serialize::InputArchive in;
  std::istringstream stream(bytes.str());
  in.load_from(stream);
  EXPECT_NO_THROW(optimizer->load(in));
}

namespace {

// A small quadratic-plus-quartic loss over two tensors, so that the gradients change every step.
torch::Tensor toy_loss(const std::vector<torch::Tensor>& ps) {
  return (ps[0] - 0.3).pow(2).sum() + ps[1].pow(4).sum() + (ps[0].sum() * ps[1].sum()).pow(2);
}

std::vector<torch::Tensor> toy_params(torch::Dtype dtype) {
  torch::manual_seed(2);
  return {torch::randn({33, 7}, dtype).requires_grad_(true),
          torch::randn({5}, dtype).requires_grad_(true)};
}

void take_steps(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& ps, int n) {
  for (int k = 0; k < n; ++k) {
    opt.zero_grad();
    toy_loss(ps).backward();
    opt.step();
  }
}

}  // namespace

TEST(Optimizer, FusedAdamEqualsTorchAdam) {
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    auto a = toy_params(dtype);
    auto b = toy_params(dtype);
    const auto options = torch::optim::AdamOptions(3e-2).betas({0.5, 0.9});
    uotflow::FusedAdam fused(a, options);
    torch::optim::Adam generic(b, options);
    take_steps(fused, a, 25);
    take_steps(generic, b, 25);
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(torch::allclose(a[i], b[i], tol, tol)) << "tensor " << i;
      EXPECT_GT((a[i] - toy_params(dtype)[i]).abs().max().item<double>(), 0.1) << "did not move";
    }
  }
}

// The same state, under the same keys: steps and checkpoints interchange with torch::optim::Adam.
TEST(Optimizer, FusedAdamStateInterchangesWithTorchAdam) {
  auto a = toy_params(torch::kFloat64);
  auto b = toy_params(torch::kFloat64);
  const auto options = torch::optim::AdamOptions(3e-2).betas({0.5, 0.9});
  uotflow::FusedAdam fused(a, options);
  torch::optim::Adam generic(b, options);
  take_steps(fused, a, 5);
  take_steps(generic, b, 5);
  // Continue the fused run with a generic Adam loaded from its checkpoint, and the reverse.
  std::stringstream fused_state, generic_state;
  {
    torch::serialize::OutputArchive out;
    fused.save(out);
    out.save_to(fused_state);
    torch::serialize::OutputArchive out2;
    generic.save(out2);
    out2.save_to(generic_state);
  }
  torch::optim::Adam generic_from_fused(a, options);
  uotflow::FusedAdam fused_from_generic(b, options);
  torch::serialize::InputArchive in, in2;
  in.load_from(fused_state);
  generic_from_fused.load(in);
  in2.load_from(generic_state);
  fused_from_generic.load(in2);
  take_steps(generic_from_fused, a, 5);
  take_steps(fused_from_generic, b, 5);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-12, 1e-12)) << "tensor " << i;
  }
  // A restarted moment estimate (state not found) would differ by far more than that.
  auto c = toy_params(torch::kFloat64);
  torch::optim::Adam reference(c, options);
  take_steps(reference, c, 5);
  torch::optim::Adam restarted(c, options);
  take_steps(restarted, c, 5);
  EXPECT_FALSE(torch::allclose(a[0], c[0], 1e-6, 1e-6));
}
