// The semi-dual training step shared by UOTM and S-JKO: d_steps potential updates on the
// semi-dual loss (+ R1), then one generator update, with EMA, lr schedule and checkpoint state.
#include "uotflow/methods/semidual_method.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/io/archive.h"
#include "uotflow/optim/optimizer.h"
#include "uotflow/optim/schedule.h"
#include "uotflow/ot/phi.h"

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

namespace {

void check_unit_interval(const Json& c, const std::string& key) {
  const double v = get<double>(c, key);
  if (!(v >= 0 && v < 1)) {
    throw ConfigError("config key '" + key + "' must be in [0, 1), got " + std::to_string(v));
  }
}

void check_non_negative(const Json& c, const std::string& key) {
  if (!(get<double>(c, key) >= 0)) {
    throw ConfigError("config key '" + key + "' must be >= 0, got " + at_path(c, key).dump());
  }
}

}  // namespace

SemiDualOptions SemiDualOptions::from_json(const Json& c) {
  SemiDualOptions o;
  o.phi1(get<std::string>(c, "loss.phi1"))
      .phi2(get<std::string>(c, "loss.phi2"))
      .marginal_weight(positive_number(c, "loss.marginal_weight"))
      .cost(get<std::string>(c, "loss.cost"))
      .cost_scale(get<double>(c, "loss.cost_scale"))
      .cost_reduction(get<std::string>(c, "loss.cost_reduction"))
      .r1_gamma(get<double>(c, "loss.r1_gamma"))
      .source_gp(get<double>(c, "loss.source_gp"))
      .batch_size(positive_int(c, "train.batch_size"))
      .d_steps(positive_int(c, "train.d_steps"))
      .lr_g(positive_number(c, "train.lr_g"))
      .lr_d(positive_number(c, "train.lr_d"))
      .beta1(get<double>(c, "train.beta1"))
      .beta2(get<double>(c, "train.beta2"))
      .lr_schedule(get<std::string>(c, "train.lr_schedule"))
      .lr_min(get<double>(c, "train.lr_min"))
      .lr_horizon(get<int64_t>(c, "train.lr_horizon"))
      .ema_decay(get<double>(c, "train.ema_decay"))
      .grad_clip(get<double>(c, "train.grad_clip"))
      .autocast(get<std::string>(c, "train.autocast"))
      .fused(get<bool>(c, "train.fused"))
      .generator(at_path(c, "generator"))
      .potential(at_path(c, "potential"));
  phi_registry().at(o.phi1());  // unknown names fail here, listing the known ones
  phi_registry().at(o.phi2());
  cost_registry().at(o.cost());
  parse_cost_reduction(o.cost_reduction());
  scheduled_lr(o.lr_schedule(), o.lr_g(), o.lr_min(), 0, 1);  // validates the name
  for (const char* key : {"train.beta1", "train.beta2", "train.ema_decay"}) {
    check_unit_interval(c, key);
  }
  for (const char* key :
       {"loss.cost_scale", "loss.r1_gamma", "loss.source_gp", "train.grad_clip", "train.lr_min"}) {
    check_non_negative(c, key);
  }
  if (o.autocast() != "none" && o.autocast() != "bf16") {
    throw ConfigError("unknown train.autocast '" + o.autocast() + "' (known: none, bf16)");
  }
  // A step runs every potential update before the run can see a stop request.
  if (o.d_steps() > kMaxDSteps) {
    throw ConfigError("config key 'train.d_steps' must be in [1, " + std::to_string(kMaxDSteps) +
                      "], got " + std::to_string(o.d_steps()));
  }
  return o;
}

Json SemiDualOptions::to_json() const {
  return Json{{"loss",
               {{"phi1", phi1()},
                {"phi2", phi2()},
                {"marginal_weight", marginal_weight()},
                {"cost", cost()},
                {"cost_scale", cost_scale()},
                {"cost_reduction", cost_reduction()},
                {"r1_gamma", r1_gamma()},
                {"source_gp", source_gp()}}},
              {"train",
               {{"batch_size", batch_size()},
                {"d_steps", d_steps()},
                {"lr_g", lr_g()},
                {"lr_d", lr_d()},
                {"beta1", beta1()},
                {"beta2", beta2()},
                {"lr_schedule", lr_schedule()},
                {"lr_min", lr_min()},
                {"lr_horizon", lr_horizon()},
                {"ema_decay", ema_decay()},
                {"grad_clip", grad_clip()},
                {"autocast", autocast()},
                {"fused", fused()}}},
              {"generator", generator()},
              {"potential", potential()}};
}

SemiDualMethod::SemiDualMethod(const MethodContext& ctx, int64_t lr_horizon)
    : loss_{Phi(get<std::string>(ctx.config, "loss.phi1"),
                get<double>(ctx.config, "loss.marginal_weight")),
            Phi(get<std::string>(ctx.config, "loss.phi2"),
                get<double>(ctx.config, "loss.marginal_weight"))},
      options_(SemiDualOptions::from_json(ctx.config)),
      source_(ctx.problem.source),
      target_(ctx.problem.target),
      parallel_(ctx.parallel),
      device_(ctx.device),
      dim_(ctx.problem.dim) {
  const auto& o = options_;
  set_cost(o.cost_scale());
  // A lower bound (source, target, generated points and their gradients): what cannot fit, fails.
  check_fits_in_memory("train.batch_size", 4.0 * o.batch_size() * dim_ * sizeof(float));
  lr_horizon_ = o.lr_horizon() > 0 ? o.lr_horizon() : lr_horizon;
  parallel_.shard_batch(o.batch_size(), "train.batch_size");  // splits evenly, or fails now
  if (o.autocast() == "bf16" && !device_.is_cuda()) {
    // LibTorch's CPU autocast does not cover every op the image nets use (mixed-dtype cat).
    throw ConfigError(
        "train.autocast 'bf16' runs on CUDA only; use device 'cuda' or autocast 'none'");
  }
  generator_ = make_generator(dim_, o.generator());
  generator_ema_ = make_generator(dim_, o.generator());
  potential_ = make_potential(dim_, o.potential());
  generator_->to(device_);
  generator_ema_->to(device_);
  potential_->to(device_);
  copy_weights(*generator_ema_, *generator_);
  set_requires_grad(*generator_ema_, false);
  auto adam = [&](const std::vector<torch::Tensor>& params,
                  double lr) -> std::unique_ptr<torch::optim::Adam> {
    const auto options = torch::optim::AdamOptions(lr).betas({o.beta1(), o.beta2()});
    if (o.fused()) {
      return std::make_unique<FusedAdam>(params, options);
    }
    return std::make_unique<torch::optim::Adam>(params, options);
  };
  opt_g_ = adam(generator_->parameters(), o.lr_g());
  opt_d_ = adam(potential_->parameters(), o.lr_d());
}

void SemiDualMethod::set_cost(double cost_scale) {
  cost_ = cost_registry().create(options_.cost(), cost_scale,
                                 parse_cost_reduction(options_.cost_reduction()));
}

std::map<std::string, double> SemiDualMethod::step(int64_t step, RandomStreams& streams) {
  TORCH_CHECK(target_, "this method was built without its data set (loaded to sample only)");
  const auto& o = options_;
  begin_step(step);
  AutocastScope autocast(o.autocast() == "bf16", device_);
  set_adam_lr(*opt_g_, scheduled_lr(o.lr_schedule(), o.lr_g(), o.lr_min(), step, lr_horizon_));
  set_adam_lr(*opt_d_, scheduled_lr(o.lr_schedule(), o.lr_d(), o.lr_min(), step, lr_horizon_));
  const int64_t batch = parallel_.shard_batch(o.batch_size(), "train.batch_size");
  ShardMeans logged(parallel_);  // what the logs show

  // The explicit passes of a chain potential (float32 only: not under autocast).
  const ChainPlan* chain = o.fused() && o.autocast() == "none" ? potential_->chain() : nullptr;
  set_requires_grad(*potential_, true);
  // Frozen while the potential trains: the source-side penalty runs through the generator.
  set_requires_grad(*generator_, false);
  for (int64_t k = 0; k < o.d_steps(); ++k) {
    logged.clear();
    opt_d_->zero_grad();
    parallel_.accumulate(streams, [&](RandomStreams& shard) {
      auto& data_stream = shard["data"];
      auto real = target_->sample(batch, data_stream);  // [b, D] (CPU)
      if (instance_noise_ > 0) {
        real = real + instance_noise_ * torch::randn(real.sizes(), data_stream);
      }
      real = real.to(device_);
      auto [x, z] = draw_source(batch, shard["noise"]);
      torch::Tensor fake;
      {
        // The source-side penalty differentiates v(T(x, z)) with respect to x through the
        // generator (whose own weights need no gradients here); without it the generator runs
        // without a graph.
        torch::AutoGradMode graph(o.source_gp() > 0);
        x.requires_grad_(o.source_gp() > 0);
        fake = as_float(generator_->forward(x, z));  // [b, D]
      }
      torch::Tensor v_real;  // [b]
      torch::Tensor penalty;
      if (chain) {
        std::tie(v_real, penalty) = chain_value_and_penalty(*chain, real, o.r1_gamma() > 0);
      } else {
        real.requires_grad_(o.r1_gamma() > 0);
        v_real = as_float(potential_->forward(real));
        if (o.r1_gamma() > 0) {
          penalty = gradient_penalty(v_real, real);
        }
      }
      // The source-side penalty differentiates v(T(x, z)) twice: the generic graph then.
      auto v_fake = chain && o.source_gp() == 0 ? chain_value_and_penalty(*chain, fake, false).first
                                                : as_float(potential_->forward(fake));  // [b]
      // With a linear phi1 the cost term is constant in v: it is left out of the potential loss.
      auto cost_fake = loss_.phi1.is_linear() ? torch::zeros({x.size(0)}, v_fake.options())
                                              : (*cost_)(x.detach(), fake.detach());
      auto loss_v = loss_.potential(v_fake, cost_fake, v_real);
      logged.add("loss_v", loss_v);
      auto total = loss_v;
      if (penalty.defined()) {
        logged.add("r1", penalty);
        total = total + 0.5 * o.r1_gamma() * penalty;
      }
      if (o.source_gp() > 0) {
        auto source_penalty = gradient_penalty(v_fake, x);
        logged.add("source_gp", source_penalty);
        total = total + o.source_gp() * source_penalty;
      }
      return total;
    });
    parallel_.average_gradients(potential_->parameters());
    clip(*potential_);
    opt_d_->step();
  }

  // Generator step: the potential is fixed, so its weights need no gradients.
  set_requires_grad(*potential_, false);
  set_requires_grad(*generator_, true);
  opt_g_->zero_grad();
  parallel_.accumulate(streams, [&](RandomStreams& shard) {
    auto& noise_stream = shard["noise"];
    auto [x, z] = draw_source(batch, noise_stream);
    const auto reference = cost_reference(x, z, noise_stream);  // [b, D]
    auto fake = as_float(generator_->forward(x, z));
    const auto cost_g = (*cost_)(reference, fake);  // [b]
    auto v_fake = chain ? chain_value_and_penalty(*chain, fake, false).first
                        : as_float(potential_->forward(fake));
    auto loss_g = loss_.generator(v_fake, cost_g);
    logged.add("loss_g", loss_g);
    logged.add("transport_cost", cost_g.mean());
    return loss_g;
  });
  parallel_.average_gradients(generator_->parameters());
  clip(*generator_);
  opt_g_->step();
  if (o.ema_decay() > 0) {
    ema_update(*generator_ema_, *generator_, o.ema_decay());
  }

  return logged.values();
}

torch::Tensor SemiDualMethod::sample(int64_t n, at::Generator& gen, bool ema) {
  TORCH_CHECK(source_, "this method was built without its source (loaded to map inputs only)");
  return transport(source_->sample(n, gen).to(device_), gen, ema);
}

torch::Tensor SemiDualMethod::transport(const torch::Tensor& x, at::Generator& gen, bool ema) {
  torch::NoGradGuard no_grad;
  auto& net = (ema && has_ema()) ? generator_ema_ : generator_;
  auto z = torch::randn({x.size(0), net->latent_dim()}, gen).to(device_);
  return net->forward(x.to(device_), z);
}

void SemiDualMethod::save(torch::serialize::OutputArchive& archive) {
  write_state(archive, "generator", *generator_);
  write_state(archive, "generator_ema", *generator_ema_);
  write_state(archive, "potential", *potential_);
  write_state(archive, "opt_g", *opt_g_);
  write_state(archive, "opt_d", *opt_d_);
}

void SemiDualMethod::load(torch::serialize::InputArchive& archive) {
  read_state(archive, "generator", *generator_);
  read_state(archive, "generator_ema", *generator_ema_);
  read_state(archive, "potential", *potential_);
  read_state(archive, "opt_g", *opt_g_);
  read_state(archive, "opt_d", *opt_d_);
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
  return options_.ema_decay() > 0;
}

WeightGroups SemiDualMethod::phase_weights() {
  return {{"generator", named_tensors(*generator_)},
          {"generator_ema", named_tensors(*generator_ema_)}};
}

std::pair<torch::Tensor, torch::Tensor> SemiDualMethod::draw_source(int64_t n, at::Generator& gen) {
  auto x = source_->sample(n, gen).to(device_);
  auto z = torch::randn({n, generator_->latent_dim()}, gen).to(device_);
  return {x, z};
}

void SemiDualMethod::clip(torch::nn::Module& module) {
  if (options_.grad_clip() > 0) {
    torch::nn::utils::clip_grad_norm_(module.parameters(), options_.grad_clip());
  }
}

}  // namespace uotflow
