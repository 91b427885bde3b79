// The generator/potential pair trained on the semi-dual UOT loss: the machinery UOTM and S-JKO
// share (options, nets, EMA, optimisers, lr schedule, checkpoint state, final weights). It is not
// a method of its own; UOTM uses it as it is, S-JKO through the hooks below.
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <memory>

#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/ot/cost.h"
#include "uotflow/ot/semidual.h"

namespace uotflow {

/// Largest train.d_steps: the potential updates of one step, which a stop request waits for.
constexpr int64_t kMaxDSteps = 1000;

/// The settings of a semi-dual method, with the defaults of the config sections "loss", "train"
/// (its optimisation keys), "generator" and "potential".
///
///   auto options = SemiDualOptions().phi1("linear").cost_scale(0.05).batch_size(400);
///   Json sections = options.to_json();  // {"loss": {...}, "train": {...}, ...}
struct SemiDualOptions {
  TORCH_ARG(std::string, phi1) = "kl";  ///< Psi1* of the source marginal
  TORCH_ARG(std::string, phi2) = "kl";  ///< Psi2* of the target marginal
  TORCH_ARG(double, marginal_weight) = 1.0;
  TORCH_ARG(std::string, cost) = "quadratic";
  TORCH_ARG(double, cost_scale) = 1.0;
  TORCH_ARG(std::string, cost_reduction) = "sum";
  TORCH_ARG(double, r1_gamma) = 0.0;
  /// Weight of the source-side gradient penalty E ||grad_x v(T(x, z))||^2 (0 = off).
  TORCH_ARG(double, source_gp) = 0.0;
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(int64_t, d_steps) = 1;  ///< potential steps per generator step
  TORCH_ARG(double, lr_g) = 1e-4;
  TORCH_ARG(double, lr_d) = 1e-4;
  TORCH_ARG(double, beta1) = 0.5;
  TORCH_ARG(double, beta2) = 0.9;
  TORCH_ARG(std::string, lr_schedule) = "constant";
  TORCH_ARG(double, lr_min) = 0.0;
  TORCH_ARG(int64_t, lr_horizon) = 0;  ///< steps of the lr schedule; 0 = the run's length
  TORCH_ARG(double, ema_decay) = 0.999;
  TORCH_ARG(double, grad_clip) = 0.0;
  TORCH_ARG(std::string, autocast) = "none";
  /// The hand-written fast paths: chain potentials (resnet_fc, mlp) run their explicit passes (R1
  /// without a double backward, a first-order v without a graph per op) and Adam updates each
  /// tensor in one pass; false = autograd's generic graph and torch::optim::Adam.
  TORCH_ARG(bool, fused) = false;
  TORCH_ARG(Json, generator) = default_generator_section();
  TORCH_ARG(Json, potential) = default_potential_section();

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads loss.*, the optimisation keys of train.*, generator and potential of a config, and
  /// checks every value (ConfigError naming the key).
  static SemiDualOptions from_json(const Json& config);
  /// The config sections these options stand for.
  Json to_json() const;
};

/// Trains T(x, z) and v(y) on L(v, T) = E Psi1*(v(T) - c(r(x), T)) + E Psi2*(-v(y)): d_steps
/// potential updates (+ R1 on the data, + the source-side gradient penalty), then one generator
/// update, where x ~ the problem's source and r(x) is the cost reference (x itself for UOTM).
///
///   class MyMethod : public SemiDualMethod {
///    public:
///     explicit MyMethod(const MethodContext& ctx)
///         : SemiDualMethod(ctx, get<int64_t>(ctx.config, "train.steps")) {}
///    protected:
///     torch::Tensor cost_reference(const torch::Tensor& x, const torch::Tensor& z,
///                                  at::Generator&) override { ... }
///   };
class SemiDualMethod : public Method {
 public:
  /// lr_horizon: steps of the lr schedule when train.lr_horizon is 0 (the run's total steps).
  SemiDualMethod(const MethodContext& ctx, int64_t lr_horizon);

  std::map<std::string, double> step(int64_t step, RandomStreams& streams) override;
  torch::Tensor sample(int64_t n, at::Generator& gen, bool ema) override;
  bool has_ema() const override;
  bool maps_inputs() const override {
    return true;
  }
  /// T(x, z) with z ~ N(0, I) drawn from `gen`.
  torch::Tensor transport(const torch::Tensor& x, at::Generator& gen, bool ema) override;
  void save(torch::serialize::OutputArchive& archive) override;
  void load(torch::serialize::InputArchive& archive) override;
  WeightGroups export_weights() override;
  /// Needs "generator" (and "generator_ema" when EMA is on); "potential" is loaded when present
  /// (a phase's weights hold the generators only).
  void import_weights(const WeightGroups& weights) override;
  WeightGroups phase_weights() override;
  std::map<std::string, double> learning_rates() const override;
  bool data_parallel() const override {
    return true;
  }

 protected:
  /// Called at the start of every step, before anything is drawn (S-JKO changes phase here).
  virtual void begin_step(int64_t /*step*/) {}

  /// The points the generator's cost compares T(x, z) with. x: [B, D], z: [B, nz] (the latent
  /// of T(x, z)) -> [B, D]. May draw from `noise` (after x and z were drawn). UOTM: x.
  virtual torch::Tensor cost_reference(const torch::Tensor& x, const torch::Tensor& /*z*/,
                                       at::Generator& /*noise*/) {
    return x;
  }

  /// x ~ source [n, D] and z ~ N(0, I) [n, nz], drawn on the CPU for device independence,
  /// returned on the method's device.
  std::pair<torch::Tensor, torch::Tensor> draw_source(int64_t n, at::Generator& gen);

  /// Sets the cost (the scale changes per S-JKO phase).
  void set_cost(double cost_scale);

  const SemiDualOptions& options() const {
    return options_;
  }
  torch::Device device() const {
    return device_;
  }
  int64_t dim() const {
    return dim_;
  }
  GeneratorNet& generator() {
    return *generator_;
  }

  SemiDualLoss loss_;
  /// Std of Gaussian noise added to real data before the potential sees it (0: none; drawn from
  /// the data stream only when > 0).
  double instance_noise_ = 0;

 private:
  void clip(torch::nn::Module& module);

  SemiDualOptions options_;
  std::unique_ptr<Cost> cost_;
  std::shared_ptr<const Dataset> source_;
  std::shared_ptr<const Dataset> target_;
  DataParallel parallel_;
  torch::Device device_;
  int64_t dim_;
  int64_t lr_horizon_ = 0;
  std::shared_ptr<GeneratorNet> generator_;
  std::shared_ptr<GeneratorNet> generator_ema_;
  std::shared_ptr<PotentialNet> potential_;
  std::unique_ptr<torch::optim::Adam> opt_g_;
  std::unique_ptr<torch::optim::Adam> opt_d_;
};

}  // namespace uotflow
