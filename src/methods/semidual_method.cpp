// The semi-dual training step shared by UOTM and S-JKO: d_steps potential updates on the
// semi-dual loss (+ R1), then one generator update, with EMA, lr schedule and checkpoint state.
#include "uotflow/methods/semidual_method.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "uotflow/core/error.h"
#include "uotflow/train/schedule.h"

namespace uotflow {
namespace {

void set_requires_grad(torch::nn::Module& module, bool on) {
  for (auto& p : module.parameters()) {
    p.requires_grad_(on);
  }
}

// bf16 autocast for the forward passes of a training step (train.autocast = "bf16"); restores
// the previous state on exit. The autocast API changed in LibTorch 2.4.
class AutocastScope {
 public:
  AutocastScope(bool on, torch::Device device) : on_(on), type_(device.type()) {
    if (!on_) {
      return;
    }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_enabled_ = at::autocast::is_autocast_enabled(type_);
    was_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
#else
    const bool cuda = type_ == torch::kCUDA;
    was_enabled_ = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
    was_dtype_ =
        cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    cuda ? at::autocast::set_enabled(true) : at::autocast::set_cpu_enabled(true);
    cuda ? at::autocast::set_autocast_gpu_dtype(at::kBFloat16)
         : at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) {
      return;
    }
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type_, was_enabled_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
#else
    const bool cuda = type_ == torch::kCUDA;
    cuda ? at::autocast::set_enabled(was_enabled_) : at::autocast::set_cpu_enabled(was_enabled_);
    cuda ? at::autocast::set_autocast_gpu_dtype(was_dtype_)
         : at::autocast::set_autocast_cpu_dtype(was_dtype_);
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  c10::DeviceType type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

// Network outputs in float32 for the losses (a no-op without autocast).
torch::Tensor as_float(const torch::Tensor& t) {
  return t.to(torch::kFloat32);
}

}  // namespace

int64_t positive_int(const Json& config, const std::string& key) {
  const auto v = get<int64_t>(config, key);
  if (v <= 0) {
    throw ConfigError("config key '" + key + "' must be > 0, got " + std::to_string(v));
  }
  return v;
}

double positive_number(const Json& config, const std::string& key) {
  const auto v = get<double>(config, key);
  if (!(v > 0)) {
    throw ConfigError("config key '" + key + "' must be > 0, got " + std::to_string(v));
  }
  return v;
}

SemiDualMethod::SemiDualMethod(const MethodContext& ctx, int64_t lr_horizon)
    : loss_{Phi(get<std::string>(ctx.config, "loss.phi1"),
                get<double>(ctx.config, "loss.marginal_weight")),
            Phi(get<std::string>(ctx.config, "loss.phi2"),
                get<double>(ctx.config, "loss.marginal_weight"))},
      cost_(get<double>(ctx.config, "loss.cost_scale"),
            parse_cost_reduction(get<std::string>(ctx.config, "loss.cost_reduction"))),
      data_(ctx.data),
      device_(ctx.device),
      dim_(ctx.data.dim()) {
  const Json& c = ctx.config;
  if (get<std::string>(c, "loss.cost") != "quadratic") {
    throw ConfigError("unknown loss.cost '" + get<std::string>(c, "loss.cost") +
                      "' (known: quadratic)");
  }
  batch_size_ = positive_int(c, "train.batch_size");
  d_steps_ = positive_int(c, "train.d_steps");
  r1_gamma_ = get<double>(c, "loss.r1_gamma");
  prior_std_ = positive_number(c, "prior.std");
  lr_g_ = positive_number(c, "train.lr_g");
  lr_d_ = positive_number(c, "train.lr_d");
  lr_min_ = get<double>(c, "train.lr_min");
  lr_schedule_ = get<std::string>(c, "train.lr_schedule");
  lr_horizon_ = get<int64_t>(c, "train.lr_horizon");
  if (lr_horizon_ <= 0) {
    lr_horizon_ = lr_horizon;
  }
  scheduled_lr(lr_schedule_, lr_g_, lr_min_, 0, lr_horizon_);  // validates the name
  ema_decay_ = get<double>(c, "train.ema_decay");
  if (ema_decay_ < 0 || ema_decay_ >= 1) {
    throw ConfigError("train.ema_decay must be in [0, 1), got " + std::to_string(ema_decay_));
  }
  grad_clip_ = get<double>(c, "train.grad_clip");
  const auto autocast = get<std::string>(c, "train.autocast");
  if (autocast != "none" && autocast != "bf16") {
    throw ConfigError("unknown train.autocast '" + autocast + "' (known: none, bf16)");
  }
  autocast_bf16_ = autocast == "bf16";
  if (autocast_bf16_ && !device_.is_cuda()) {
    // LibTorch's CPU autocast does not cover every op the image nets use (mixed-dtype cat).
    throw ConfigError("train.autocast 'bf16' runs on CUDA only; use --device cuda or 'none'");
  }
  if (r1_gamma_ < 0 || grad_clip_ < 0) {
    throw ConfigError("loss.r1_gamma and train.grad_clip must be >= 0");
  }
  const double beta1 = get<double>(c, "train.beta1");
  const double beta2 = get<double>(c, "train.beta2");
  if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1) {
    throw ConfigError("train.beta1 and train.beta2 must be in [0, 1)");
  }

  generator_ = make_generator(dim_, at_path(c, "generator"));
  generator_ema_ = make_generator(dim_, at_path(c, "generator"));
  potential_ = make_potential(dim_, at_path(c, "potential"));
  generator_->to(device_);
  generator_ema_->to(device_);
  potential_->to(device_);
  copy_weights(*generator_ema_, *generator_);
  set_requires_grad(*generator_ema_, false);
  opt_g_ = std::make_unique<torch::optim::Adam>(
      generator_->parameters(), torch::optim::AdamOptions(lr_g_).betas({beta1, beta2}));
  opt_d_ = std::make_unique<torch::optim::Adam>(
      potential_->parameters(), torch::optim::AdamOptions(lr_d_).betas({beta1, beta2}));
}

std::map<std::string, double> SemiDualMethod::step(int64_t step, TrainStreams& streams) {
  begin_step(step);
  AutocastScope autocast(autocast_bf16_, device_);
  set_adam_lr(*opt_g_, scheduled_lr(lr_schedule_, lr_g_, lr_min_, step, lr_horizon_));
  set_adam_lr(*opt_d_, scheduled_lr(lr_schedule_, lr_d_, lr_min_, step, lr_horizon_));

  torch::Tensor loss_v;
  torch::Tensor penalty;
  set_requires_grad(*potential_, true);
  for (int64_t k = 0; k < d_steps_; ++k) {
    auto real = data_.sample(batch_size_, streams.data);  // [B, D] (CPU)
    if (instance_noise_ > 0) {
      real = real + instance_noise_ * torch::randn(real.sizes(), streams.data);
    }
    real = real.to(device_);
    auto [x, z] = draw_source(batch_size_, streams.noise);
    torch::Tensor fake;
    {
      torch::NoGradGuard no_grad;
      fake = as_float(generator_->forward(x, z));  // [B, D]
    }
    if (r1_gamma_ > 0) {
      real.requires_grad_(true);
    }
    auto v_real = as_float(potential_->forward(real));  // [B]
    auto v_fake = as_float(potential_->forward(fake));  // [B]
    loss_v = loss_.potential(v_fake, potential_cost(x, fake), v_real);
    auto total = loss_v;
    if (r1_gamma_ > 0) {
      penalty = gradient_penalty(v_real, real);
      total = total + 0.5 * r1_gamma_ * penalty;
    }
    opt_d_->zero_grad();
    total.backward();
    clip(*potential_);
    opt_d_->step();
  }

  // Generator step: the potential is fixed, so its weights need no gradients.
  set_requires_grad(*potential_, false);
  auto [x, z] = draw_source(batch_size_, streams.noise);
  const auto reference = cost_reference(x, streams.noise);  // [B, D]
  auto fake = as_float(generator_->forward(x, z));
  auto loss_g = loss_.generator(as_float(potential_->forward(fake)), cost_(reference, fake));
  opt_g_->zero_grad();
  loss_g.backward();
  clip(*generator_);
  opt_g_->step();
  if (ema_decay_ > 0) {
    ema_update(*generator_ema_, *generator_, ema_decay_);
  }

  std::map<std::string, double> out{{"loss_v", loss_v.item<double>()},
                                    {"loss_g", loss_g.item<double>()}};
  if (penalty.defined()) {
    out["r1"] = penalty.item<double>();
  }
  return out;
}

torch::Tensor SemiDualMethod::sample(int64_t n, at::Generator& gen, bool ema) {
  torch::NoGradGuard no_grad;
  auto& net = (ema && has_ema()) ? generator_ema_ : generator_;
  auto [x, z] = draw_source(n, gen);
  return net->forward(x, z);
}

void SemiDualMethod::save(torch::serialize::OutputArchive& archive) {
  auto put = [&](const char* key, auto& saveable) {
    torch::serialize::OutputArchive sub;
    saveable.save(sub);
    archive.write(key, sub);
  };
  put("generator", *generator_);
  put("generator_ema", *generator_ema_);
  put("potential", *potential_);
  put("opt_g", *opt_g_);
  put("opt_d", *opt_d_);
}

void SemiDualMethod::load(torch::serialize::InputArchive& archive) {
  auto get_sub = [&](const char* key, auto& loadable) {
    torch::serialize::InputArchive sub;
    archive.read(key, sub);
    loadable.load(sub);
  };
  get_sub("generator", *generator_);
  get_sub("generator_ema", *generator_ema_);
  get_sub("potential", *potential_);
  get_sub("opt_g", *opt_g_);
  get_sub("opt_d", *opt_d_);
  set_requires_grad(*generator_ema_, false);
}

WeightGroups SemiDualMethod::export_weights() {
  return {{"generator", named_tensors(*generator_)},
          {"generator_ema", named_tensors(*generator_ema_)},
          {"potential", named_tensors(*potential_)}};
}

void SemiDualMethod::import_weights(const WeightGroups& weights) {
  const std::vector<std::tuple<std::string, torch::nn::Module*, bool>> groups{
      {"generator", generator_.get(), true},
      {"generator_ema", generator_ema_.get(), has_ema()},
      {"potential", potential_.get(), false}};
  for (const auto& [group, module, required] : groups) {
    auto it = weights.find(group);
    if (it != weights.end()) {
      load_named_tensors(*module, it->second, group);
    } else if (required) {
      throw ConfigError("weights lack the group '" + group + "' (" + group + ".safetensors)");
    }
  }
}

std::map<std::string, double> SemiDualMethod::learning_rates() const {
  auto lr = [](const torch::optim::Optimizer& opt) {
    return static_cast<const torch::optim::AdamOptions&>(opt.param_groups().front().options()).lr();
  };
  return {{"lr_g", lr(*opt_g_)}, {"lr_d", lr(*opt_d_)}};
}

bool SemiDualMethod::has_ema() const {
  return ema_decay_ > 0;
}

std::pair<torch::Tensor, torch::Tensor> SemiDualMethod::draw_source(int64_t n, at::Generator& gen) {
  auto x = (torch::randn({n, dim_}, gen) * prior_std_).to(device_);
  auto z = torch::randn({n, generator_->latent_dim()}, gen).to(device_);
  return {x, z};
}

void SemiDualMethod::clip(torch::nn::Module& module) {
  if (grad_clip_ > 0) {
    torch::nn::utils::clip_grad_norm_(module.parameters(), grad_clip_);
  }
}

}  // namespace uotflow
