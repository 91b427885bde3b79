// Optimisers picked by name ("optimizer" registry): Adam, SGD with momentum, and mirror descent on
// the simplex (for weights that are a probability vector, e.g. a grid flow).
#pragma once

#include <torch/optim/adam.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "uotflow/core/registry.h"

namespace uotflow {

/// torch::optim::Adam with the update of each CPU tensor in one pass (the generic step makes eight
/// passes: two moments, the square root, the bias corrections and the update). Same state, same
/// checkpoints, same arithmetic up to rounding; any other tensor (CUDA, sparse, weight decay,
/// amsgrad) takes the generic step.
class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

/// The settings an optimiser factory reads (each takes what it knows).
struct OptimizerSettings {
  double lr = 1e-3;
  double momentum = 0.9;  ///< sgd
  double beta1 = 0.9;     ///< adam
  double beta2 = 0.999;   ///< adam
};

/// Factories take the tensors to move and the settings.
///
///   auto opt = optimizer_registry().create("sgd", {x}, OptimizerSettings{0.1, 0.9});
using OptimizerRegistry = Registry<std::unique_ptr<torch::optim::Optimizer>(
    std::vector<torch::Tensor> params, const OptimizerSettings& settings)>;
/// adam, sgd, mirror.
OptimizerRegistry& optimizer_registry();

}  // namespace uotflow
