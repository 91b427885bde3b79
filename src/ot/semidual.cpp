// Semi-dual UOT objectives and the R1 gradient penalty.
#include "uotflow/ot/semidual.h"

#include <torch/torch.h>

namespace uotflow {

torch::Tensor SemiDualLoss::potential(const torch::Tensor& v_fake, const torch::Tensor& cost_fake,
                                      const torch::Tensor& v_real) const {
  TORCH_CHECK(v_fake.sizes() == cost_fake.sizes(), "SemiDualLoss: v_fake ", v_fake.sizes(),
              " and cost_fake ", cost_fake.sizes(), " must be matched pairs");
  return phi1(v_fake - cost_fake).mean() + phi2(-v_real).mean();
}

torch::Tensor SemiDualLoss::generator(const torch::Tensor& v_fake,
                                      const torch::Tensor& cost_fake) const {
  TORCH_CHECK(v_fake.sizes() == cost_fake.sizes(), "SemiDualLoss: v_fake ", v_fake.sizes(),
              " and cost_fake ", cost_fake.sizes(), " must be matched pairs");
  return (cost_fake - v_fake).mean();
}

torch::Tensor gradient_penalty(const torch::Tensor& v_real, const torch::Tensor& real) {
  auto grad = torch::autograd::grad({v_real.sum()}, {real}, /*grad_outputs=*/{},
                                    /*retain_graph=*/true, /*create_graph=*/true)[0];
  return grad.pow(2).flatten(1).sum(1).mean();
}

}  // namespace uotflow
