// One semi-dual step, checked against the same step written out by hand: the potential update on
// the semi-dual loss with R1 and the source-side gradient penalty, the generator update on
// cost - potential, and the EMA.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "uotflow/core/rng.h"
#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/phi.h"
#include "uotflow/run/config.h"

using namespace uotflow;

namespace {

void load(torch::nn::Module& module, const WeightGroups& weights, const std::string& group) {
  load_named_tensors(module, weights.at(group), group);
}

// r1_gamma, source_gp: the penalties to switch on (0 = off); fused: train.fused (the mlp
// potential's explicit passes, or autograd's generic graph).
void check_step_against_hand_written(double r1_gamma, double source_gp, bool fused = false) {
  const double cost_scale = 0.3, ema = 0.9, lr_g = 1e-2, lr_d = 2e-2;
  const int64_t batch = 16;
  Json config = resolve_config(
      Json{{"method", "uotm"}, {"seed", 11}},
      {"data.name=8gaussians", "generator.net=mlp", "generator.width=8", "generator.depth=1",
       "potential.net=mlp", "potential.width=8", "potential.depth=1", "loss.phi1=kl",
       "loss.phi2=softplus", "loss.cost_scale=" + std::to_string(cost_scale),
       "loss.r1_gamma=" + std::to_string(r1_gamma), "loss.source_gp=" + std::to_string(source_gp),
       "train.ema_decay=" + std::to_string(ema), "train.batch_size=" + std::to_string(batch),
       "train.lr_g=" + std::to_string(lr_g), "train.lr_d=" + std::to_string(lr_d),
       std::string("train.fused=") + (fused ? "true" : "false")},
      {});
  const auto problem = make_problem(config);
  torch::manual_seed(0);
  auto method = method_registry().create("uotm").create(
      MethodContext{config, problem, torch::Device(torch::kCPU)});
  const auto before = method->export_weights();
  RandomStreams streams(11);
  const auto losses = method->step(0, streams);
  const auto after = method->export_weights();

  // The same step by hand, from the same weights and the same streams.
  auto g = make_generator(2, at_path(config, "generator"));
  auto v = make_potential(2, at_path(config, "potential"));
  load(*g, before, "generator");
  load(*v, before, "potential");
  torch::optim::Adam opt_g(g->parameters(), torch::optim::AdamOptions(lr_g).betas({0.5, 0.9}));
  torch::optim::Adam opt_d(v->parameters(), torch::optim::AdamOptions(lr_d).betas({0.5, 0.9}));
  RandomStreams mine(11);
  const Phi phi1("kl"), phi2("softplus");
  auto cost = [&](const torch::Tensor& a, const torch::Tensor& b) {
    return cost_scale * (a - b).pow(2).sum(1);
  };
  auto real = problem.target->sample(batch, mine["data"]).requires_grad_(true);
  auto x = torch::randn({batch, 2}, mine["noise"]).requires_grad_(true);
  auto z = torch::randn({batch, g->latent_dim()}, mine["noise"]);
  auto fake = g->forward(x, z);
  auto v_fake = v->forward(fake);
  auto v_real = v->forward(real);
  auto loss_v = phi1(v_fake - cost(x.detach(), fake.detach())).mean() + phi2(-v_real).mean();
  auto grad_y = torch::autograd::grad({v_real.sum()}, {real}, {}, true, true)[0];
  auto r1 = grad_y.pow(2).sum(1).mean();
  // d v(T(x, z)) / dx through the generator: its chain rule runs through g's weights.
  auto grad_x = torch::autograd::grad({v_fake.sum()}, {x}, {}, true, true)[0];
  auto gp = grad_x.pow(2).sum(1).mean();
  opt_d.zero_grad();
  auto total = loss_v;
  if (r1_gamma > 0) {
    total = total + 0.5 * r1_gamma * r1;
  }
  if (source_gp > 0) {
    total = total + source_gp * gp;
  }
  total.backward();
  opt_d.step();
  x = torch::randn({batch, 2}, mine["noise"]);
  z = torch::randn({batch, g->latent_dim()}, mine["noise"]);
  for (auto& p : v->parameters()) {
    p.requires_grad_(false);
  }
  auto moved = g->forward(x, z);
  auto transport = cost(x, moved).mean();
  auto loss_g = transport - v->forward(moved).mean();
  opt_g.zero_grad();  // drops what the potential's loss left in g's gradients
  loss_g.backward();
  opt_g.step();

  EXPECT_NEAR(losses.at("loss_v"), loss_v.item<double>(), 1e-6);
  if (r1_gamma > 0) {
    EXPECT_NEAR(losses.at("r1"), r1.item<double>(), 1e-6);
  } else {
    EXPECT_EQ(losses.count("r1"), 0u);
  }
  if (source_gp > 0) {
    EXPECT_NEAR(losses.at("source_gp"), gp.item<double>(), 1e-6);
    EXPECT_GT(gp.item<double>(), 0);
  } else {
    EXPECT_EQ(losses.count("source_gp"), 0u);
  }
  EXPECT_NEAR(losses.at("loss_g"), loss_g.item<double>(), 1e-6);
  EXPECT_NEAR(losses.at("transport_cost"), transport.item<double>(), 1e-6);
  for (const auto& [name, t] : named_tensors(*v)) {
    EXPECT_TRUE(torch::allclose(after.at("potential").at(name), t, 1e-5, 1e-7)) << name;
    EXPECT_FALSE(torch::equal(before.at("potential").at(name), t)) << name << " did not move";
  }
  for (const auto& [name, t] : named_tensors(*g)) {
    EXPECT_TRUE(torch::allclose(after.at("generator").at(name), t, 1e-5, 1e-7)) << name;
    // EMA: decay * old + (1 - decay) * new, from an EMA that started equal to the generator.
    const auto expected = ema * before.at("generator_ema").at(name) + (1 - ema) * t;
    EXPECT_TRUE(torch::allclose(after.at("generator_ema").at(name), expected, 1e-5, 1e-7)) << name;
  }
}

TEST(SemiDualStep, OneStepEqualsTheStepWrittenOutByHand) {
  check_step_against_hand_written(/*r1_gamma=*/0.5, /*source_gp=*/0);
  check_step_against_hand_written(/*r1_gamma=*/0.5, /*source_gp=*/0, /*fused=*/true);
  check_step_against_hand_written(/*r1_gamma=*/0, /*source_gp=*/0, /*fused=*/true);
}

// The source-side penalty (the reference 1-D experiment's regulariser), alone and with R1.
TEST(SemiDualStep, SourceGradientPenaltyEqualsTheStepWrittenOutByHand) {
  check_step_against_hand_written(/*r1_gamma=*/0, /*source_gp=*/0.3);
  check_step_against_hand_written(/*r1_gamma=*/0.5, /*source_gp=*/0.3);
  check_step_against_hand_written(/*r1_gamma=*/0.5, /*source_gp=*/0.3, /*fused=*/true);
}

}  // namespace
