// The optimiser registry.
#include "uotflow/optim/optimizer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

namespace uotflow {

OptimizerRegistry& optimizer_registry() {
  static OptimizerRegistry registry = [] {
    OptimizerRegistry r("optimizer");
    r.add("adam", "Adam (lr, beta1, beta2)",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<torch::optim::Adam>(
                std::move(params), torch::optim::AdamOptions(s.lr).betas({s.beta1, s.beta2}));
          });
    r.add("sgd", "SGD with momentum (lr, momentum)",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<torch::optim::SGD>(
                std::move(params), torch::optim::SGDOptions(s.lr).momentum(s.momentum));
          });
    return r;
  }();
  return registry;
}

}  // namespace uotflow
