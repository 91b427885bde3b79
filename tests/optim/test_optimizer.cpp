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
