// An explicit first- and second-order pass for the toy nets: a chain of Linear layers, each
// optionally followed by SiLU, some grouped in residual blocks h -> (h + block(h)) / sqrt(2).
//
// The R1 term of a potential, mean_i |grad_y v(y_i)|^2, normally takes a double backward through
// autograd's generic graph. For this net family the three passes it needs are written out here
// (the gradient chain, its adjoint and the ordinary backward with the adjoint's sources), with
// SiLU, SiLU' and SiLU'' from one sigmoid, and no graph of the backward itself.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cmath>
#include <utility>
#include <vector>

namespace uotflow {

/// The layout of a chain net over its own Linear modules (which keep the weights).
struct ChainPlan {
  /// The scale of a residual stage, 1 / sqrt(2) (ResNetFC's blocks use the same).
  inline static const double kResidualScale = 1.0 / std::sqrt(2.0);

  struct Layer {
    torch::nn::Linear linear;
    bool silu;
  };
  /// Layers [first, first + count); a residual stage maps h to (h + layers(h)) * scale.
  struct Stage {
    int64_t first;
    int64_t count;
    bool residual;
  };
  std::vector<Layer> layers;
  std::vector<Stage> stages;

  /// One Linear (followed by a SiLU when `silu`) as a plain stage.
  void add_linear(const torch::nn::Linear& linear, bool silu);
  /// Each Linear of `seq` (with the SiLU that follows it, if any) as a plain stage.
  void add_sequential(const torch::nn::Sequential& seq);
  /// All layers of `block` as one residual stage.
  void add_residual(const torch::nn::Sequential& block);
  /// The weights and biases in layer order.
  std::vector<torch::Tensor> parameters() const;
};

/// v(y) [B] (the chain must end in one output) and, with `penalty`, mean_i |grad_y v(y_i)|^2 (a
/// scalar; undefined without). Both are differentiable in the weights and in y, to first order
/// only: the backward is a hand-written pass, not a graph, so do not differentiate through it
/// again (use the generic path for that). y: [B, in], float32 or float64, any device.
std::pair<torch::Tensor, torch::Tensor> chain_value_and_penalty(const ChainPlan& plan,
                                                                const torch::Tensor& y,
                                                                bool penalty);

}  // namespace uotflow
