// The optimiser registry, and mirror descent on the simplex.
#include "uotflow/optim/optimizer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include <limits>

namespace uotflow {
namespace {

struct MirrorDescentOptions : torch::optim::OptimizerCloneableOptions<MirrorDescentOptions> {
  explicit MirrorDescentOptions(double lr) : lr_(lr) {}
  TORCH_ARG(double, lr);
  double get_lr() const override {
    return lr();
  }
  void set_lr(const double lr) override {
    this->lr(lr);
  }
};

// Mirror descent with the entropy as mirror map (exponentiated gradient): each parameter tensor is
// one probability vector, updated as p <- p exp(-lr grad) / sum(p exp(-lr grad)). It stays > 0 and
// sums to 1, and the step is well conditioned where plain SGD is not: the entropy's curvature 1/p_i
// is what the mirror map divides out. Stateless, so a checkpoint holds nothing for it.
class MirrorDescent : public torch::optim::Optimizer {
 public:
  MirrorDescent(std::vector<torch::Tensor> params, double lr)
      : Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                  std::make_unique<MirrorDescentOptions>(lr)) {}

  torch::Tensor step(LossClosure closure = nullptr) override {
    torch::NoGradGuard no_grad;
    torch::Tensor loss;
    if (closure != nullptr) {
      torch::AutoGradMode enable_grad(true);
      loss = closure();
    }
    for (auto& group : param_groups_) {
      const double lr = static_cast<const MirrorDescentOptions&>(group.options()).lr();
      for (auto& p : group.params()) {
        if (!p.grad().defined()) {
          continue;
        }
        // In log space, shifted by the max, so that no exponential overflows.
        auto log_p = torch::log(p.clamp_min(std::numeric_limits<float>::min())) - lr * p.grad();
        p.copy_(torch::softmax(log_p.flatten(), 0).view_as(p));
      }
    }
    return loss;
  }
  void save(torch::serialize::OutputArchive&) const override {}
  void load(torch::serialize::InputArchive&) override {}
};

}  // namespace

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
    r.add("mirror",
          "mirror descent on the simplex (exponentiated gradient, lr): each tensor is one "
          "probability vector",
          [](std::vector<torch::Tensor> params,
             const OptimizerSettings& s) -> std::unique_ptr<torch::optim::Optimizer> {
            return std::make_unique<MirrorDescent>(std::move(params), s.lr);
          });
    return r;
  }();
  return registry;
}

}  // namespace uotflow
