// Learning-rate schedules and the EMA of a module's weights.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

namespace uotflow {

/// lr at `step` for a "constant" or "cosine" schedule (cosine from lr0 down to lr_min over
/// `horizon` steps, flat afterwards). Unknown names are a ConfigError.
double scheduled_lr(const std::string& schedule, double lr0, double lr_min, int64_t step,
                    int64_t horizon);

/// Sets the lr of every parameter group of an Adam optimiser.
void set_adam_lr(torch::optim::Optimizer& optimizer, double lr);

/// target <- decay * target + (1 - decay) * source, parameter by parameter; buffers are copied.
/// Both modules must have the same structure.
void ema_update(torch::nn::Module& target, const torch::nn::Module& source, double decay);

/// target <- source, parameters and buffers.
void copy_weights(torch::nn::Module& target, const torch::nn::Module& source);

}  // namespace uotflow
