// Semi-dual losses of unbalanced OT (UOTM): the potential's and the generator's objectives and R1.
#pragma once

#include <torch/types.h>

#include "uotflow/ot/cost.h"
#include "uotflow/ot/phi.h"

namespace uotflow {

/// L(v, T) = E_x Psi1*(v(T(x)) - c(x, T(x))) + E_y Psi2*(-v(y)): minimised over v, and
/// E_x [c(x, T(x)) - v(T(x))] minimised over T. Fixed-source UOT is phi1 = linear, OTM both linear.
///
///   SemiDualLoss loss(Phi("kl"), Phi("kl"));
///   auto lv = loss.potential(v_fake, cost_fake, v_real);
///   auto lt = loss.generator(v_fake, cost_fake);
struct SemiDualLoss {
  Phi phi1;
  Phi phi2;

  /// v_fake: [B] potential at generated points, cost_fake: [B] cost of each (x, T(x)) pair,
  /// v_real: [M] potential at data points -> scalar.
  torch::Tensor potential(const torch::Tensor& v_fake, const torch::Tensor& cost_fake,
                          const torch::Tensor& v_real) const;

  /// v_fake: [B], cost_fake: [B] -> scalar E[c - v].
  torch::Tensor generator(const torch::Tensor& v_fake, const torch::Tensor& cost_fake) const;
};

/// Mean squared gradient norm E ||grad_y v(y)||^2 of the potential at data points, differentiable
/// (create_graph) so it can be added to the potential loss. Multiply by r1_gamma / 2 for R1.
/// v_real: [M] = v(real), real: [M, ...] with requires_grad -> scalar.
torch::Tensor gradient_penalty(const torch::Tensor& v_real, const torch::Tensor& real);

}  // namespace uotflow
