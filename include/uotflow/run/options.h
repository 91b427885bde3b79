// The typed settings of a run: the run loop's schedule and evaluation, and a whole run's options.
// Each struct declares its defaults once; Json is read and written only at the edge (from_json /
// to_json), and the built-in config defaults are these structs written out.
#pragma once

#include <c10/util/Optional.h>
#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/core/config.h"

namespace uotflow {

/// The run loop's schedule: the keys of the config section "train" that belong to no method.
///
///   auto schedule = ScheduleOptions().steps(2000).eval_every(500);
struct ScheduleOptions {
  /// Training length in steps. A phased method (sjko, swjko) fixes the length itself and leaves
  /// this at 0; kDefaultSteps is the length of a method that does not.
  static constexpr int64_t kDefaultSteps = 4000;
  TORCH_ARG(int64_t, steps) = kDefaultSteps;
  TORCH_ARG(int64_t, log_every) = 100;        ///< metrics rows and progress (0 = never)
  TORCH_ARG(int64_t, eval_every) = 1000;      ///< evaluations (0 = at phase ends and the end)
  TORCH_ARG(int64_t, snapshot_every) = 1000;  ///< samples/step-N.{npy,png}
  TORCH_ARG(int64_t, checkpoint_every) = 1000;
  TORCH_ARG(int64_t, keep_last) = 3;            ///< checkpoints kept (0 = all)
  TORCH_ARG(int64_t, phase_weights_every) = 1;  ///< phases/phase-K/ every this many phases
  /// Parts of each batch, each drawn from streams of its own and its gradients averaged with the
  /// others' (data parallel; 0 = one per process). A multiple of the number of processes; one
  /// process of N shards takes the steps N processes take (docs/distributed.md).
  TORCH_ARG(int64_t, shards) = 0;

 public:
  /// train.* of a resolved config; each count must be >= 0 (ConfigError naming the key).
  static ScheduleOptions from_json(const Json& config);
  /// {"train": {...}}
  Json to_json() const;
};

/// What a run evaluates (config section "eval").
///
///   auto eval = EvalOptions().n(5000).metrics({"sw2", "w2"});
struct EvalOptions {
  TORCH_ARG(int64_t, n) = 2000;  ///< samples per evaluation (0 = no evaluation)
  TORCH_ARG(bool, at_start) = false;
  TORCH_ARG(int64_t, n_projections) = 500;  ///< L of the sliced metrics
  TORCH_ARG(std::vector<std::string>, metrics) = std::vector<std::string>{
      "sw2", "energy", "mean_error", "cov_error"};
  TORCH_ARG(double, plot_radius) = 0.0;  ///< half-width of 2-D scatter plots (0 = from the data)
  TORCH_ARG(Json, features) = default_features();  ///< FID/KID settings (docs/config.md)

 public:
  static EvalOptions from_json(const Json& config);
  /// {"eval": {...}}
  Json to_json() const;

 private:
  static Json default_features();
};

/// Everything a run is: the method and its sections, the run's own sections, seed and device.
/// to_json() is the resolved config `train` and the run directory record, so a run made from
/// options and one made from the same config file are the same run.
///
///   auto options = RunOptions().method("uotm").seed(0)
///                      .schedule(ScheduleOptions().steps(2000))
///                      .sections(SemiDualOptions().cost_scale(0.1).to_json());
///   Trainer trainer(options, data);
struct RunOptions {
  TORCH_ARG(std::string, method) = "uotm";
  /// The master seed; nullopt draws a fresh one (recorded in the config).
  TORCH_ARG(c10::optional<uint64_t>, seed) = c10::nullopt;
  TORCH_ARG(std::string, device) = "cpu";  ///< "cpu", "cuda", "cuda:N"
  TORCH_ARG(int64_t, threads) = 1;         ///< intra-op threads (the CLI sets them; see docs)
  /// The source mu: a data-set section; null = the method's default (N(0, I)).
  TORCH_ARG(Json, source) = nullptr;
  TORCH_ARG(ScheduleOptions, schedule) = ScheduleOptions();
  TORCH_ARG(EvalOptions, eval) = EvalOptions();
  /// The method's own sections and the target's ("data" or "functional"), e.g.
  /// SemiDualOptions().to_json() for uotm; merged over the method's defaults and checked like a
  /// config file. Every key given here wins, so for a method whose defaults differ from a
  /// struct's (sjko: loss.phi1 = linear) give only the keys to change.
  TORCH_ARG(Json, sections) = Json::object();

 public:
  /// The resolved config (every key checked; ConfigError naming a bad one).
  Json to_json() const;
  /// The options of a resolved config.
  static RunOptions from_json(const Json& config);
};

}  // namespace uotflow
