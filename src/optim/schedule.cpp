// Learning-rate schedules and weight averaging.
#include "uotflow/optim/schedule.h"

#include <torch/torch.h>

#include <cmath>

#include "uotflow/core/error.h"

namespace uotflow {

double scheduled_lr(const std::string& schedule, double lr0, double lr_min, int64_t step,
                    int64_t horizon) {
  if (schedule == "constant") {
    return lr0;
  }
  if (schedule == "cosine") {
    if (horizon <= 0 || step >= horizon) {
      return lr_min;
    }
    const double progress = static_cast<double>(step) / static_cast<double>(horizon);
    return lr_min + 0.5 * (lr0 - lr_min) * (1.0 + std::cos(M_PI * progress));
  }
  throw ConfigError("unknown lr_schedule '" + schedule + "' (known: constant, cosine)");
}

void set_adam_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }
}

void ema_update(torch::nn::Module& target, const torch::nn::Module& source, double decay) {
  torch::NoGradGuard no_grad;
  auto tp = target.parameters();
  auto sp = source.parameters();
  TORCH_CHECK(tp.size() == sp.size(), "ema_update: modules differ");
  for (size_t i = 0; i < tp.size(); ++i) {
    tp[i].mul_(decay).add_(sp[i], 1.0 - decay);
  }
  auto tb = target.buffers();
  auto sb = source.buffers();
  for (size_t i = 0; i < tb.size(); ++i) {
    tb[i].copy_(sb[i]);
  }
}

void copy_weights(torch::nn::Module& target, const torch::nn::Module& source) {
  torch::NoGradGuard no_grad;
  auto tp = target.parameters();
  auto sp = source.parameters();
  TORCH_CHECK(tp.size() == sp.size(), "copy_weights: modules differ");
  for (size_t i = 0; i < tp.size(); ++i) {
    tp[i].copy_(sp[i]);
  }
  auto tb = target.buffers();
  auto sb = source.buffers();
  for (size_t i = 0; i < tb.size(); ++i) {
    tb[i].copy_(sb[i]);
  }
}

}  // namespace uotflow
