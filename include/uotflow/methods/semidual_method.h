// The generator/potential pair trained on the semi-dual UOT loss: the machinery UOTM and S-JKO
// share (nets, EMA, optimisers, lr schedule, checkpoint state, final weights). It is not a method
// of its own; UOTM uses it as it is, S-JKO through the hooks below.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <memory>

#include "uotflow/nets/nets.h"
#include "uotflow/ot/semidual.h"
#include "uotflow/train/method.h"

namespace uotflow {

/// Trains T(x, z) and v(y) on L(v, T) = E Psi1*(v(T) - c(r(x), T)) + E Psi2*(-v(y)): d_steps
/// potential updates (+ R1), then one generator update, where r(x) is the cost reference (x itself
/// for UOTM). Reads the common config sections (loss, train, prior, generator, potential).
///
///   class MyMethod : public SemiDualMethod {
///    public:
///     explicit MyMethod(const MethodContext& ctx)
///         : SemiDualMethod(ctx, get<int64_t>(ctx.config, "train.steps")) {}
///    protected:
///     torch::Tensor cost_reference(const torch::Tensor& x, at::Generator&) override { ... }
///   };
class SemiDualMethod : public Method {
 public:
  /// lr_horizon: steps of the lr schedule when train.lr_horizon is 0 (the run's total steps).
  SemiDualMethod(const MethodContext& ctx, int64_t lr_horizon);

  std::map<std::string, double> step(int64_t step, TrainStreams& streams) override;
  torch::Tensor sample(int64_t n, at::Generator& gen, bool ema) override;
  void save(torch::serialize::OutputArchive& archive) override;
  void load(torch::serialize::InputArchive& archive) override;
  WeightGroups export_weights() override;
  /// Needs "generator" (and "generator_ema" when EMA is on); "potential" is loaded when present
  /// (a phase's weights hold the generators only).
  void import_weights(const WeightGroups& weights) override;
  std::map<std::string, double> learning_rates() const override;
  bool has_ema() const override;

 protected:
  /// Called at the start of every step, before anything is drawn (S-JKO changes phase here).
  virtual void begin_step(int64_t /*step*/) {}

  /// The points the generator's cost compares T(x, z) with. x: [B, D] -> [B, D]. May draw from
  /// `noise` (after x and z were drawn). UOTM: x.
  virtual torch::Tensor cost_reference(const torch::Tensor& x, at::Generator& /*noise*/) {
    return x;
  }

  /// The cost term of the potential loss for pairs (x, fake): [B, D] each -> [B]. With a linear
  /// phi1 it is constant in v, so a subclass may leave it out (return zeros).
  virtual torch::Tensor potential_cost(const torch::Tensor& x, const torch::Tensor& fake) {
    return cost_(x, fake);
  }

  /// x ~ N(0, prior_std^2 I) [n, D] and z ~ N(0, I) [n, nz], drawn on the CPU for device
  /// independence, returned on the method's device.
  std::pair<torch::Tensor, torch::Tensor> draw_source(int64_t n, at::Generator& gen);

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
  QuadraticCost cost_;
  /// Std of Gaussian noise added to real data before the potential sees it (0: none; drawn from
  /// the data stream only when > 0).
  double instance_noise_ = 0;

 private:
  void clip(torch::nn::Module& module);

  const Dataset& data_;
  torch::Device device_;
  int64_t dim_;
  int64_t batch_size_ = 0;
  int64_t d_steps_ = 1;
  double r1_gamma_ = 0;
  double prior_std_ = 1;
  double lr_g_ = 0, lr_d_ = 0, lr_min_ = 0;
  std::string lr_schedule_;
  int64_t lr_horizon_ = 0;
  double ema_decay_ = 0;
  double grad_clip_ = 0;
  bool autocast_bf16_ = false;
  std::shared_ptr<GeneratorNet> generator_;
  std::shared_ptr<GeneratorNet> generator_ema_;
  std::shared_ptr<PotentialNet> potential_;
  std::unique_ptr<torch::optim::Adam> opt_g_;
  std::unique_ptr<torch::optim::Adam> opt_d_;
};

/// Raises a ConfigError unless config[key] > 0; returns it.
int64_t positive_int(const Json& config, const std::string& key);
double positive_number(const Json& config, const std::string& key);

}  // namespace uotflow
