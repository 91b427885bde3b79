// The interface every training method (UOTM, S-JKO, ...) implements, and the method registry.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/registry.h"
#include "uotflow/data/dataset.h"

namespace uotflow {

/// The random streams a training step may draw from. Their states are part of every checkpoint.
struct TrainStreams {
  at::Generator data;   ///< data minibatches
  at::Generator noise;  ///< prior samples x and generator noise z
};

/// Named groups of named tensors, e.g. {"generator": {"trunk.input.weight": ...}}: what final/
/// holds.
using WeightGroups = std::map<std::string, std::map<std::string, torch::Tensor>>;

/// One phase of a phased method (S-JKO: one JKO step).
struct Phase {
  int64_t end_step = 0;  ///< steps done when the phase ends (the last phase ends the run)
  /// Flow time t at the end of the phase of the Fokker-Planck (KL) flow the phases follow, so a
  /// Gaussian target can be checked against the closed form; NaN when they follow no such flow.
  double flow_time = 0.0;
};

/// A training method. It owns its networks, optimisers and EMA; the trainer owns the loop, logging,
/// checkpoints, evaluation and run directory.
class Method {
 public:
  virtual ~Method() = default;

  /// One optimisation step (`step` counts from 0). Returns named scalar losses for logging.
  virtual std::map<std::string, double> step(int64_t step, TrainStreams& streams) = 0;

  /// Draws n samples: [n, D] on the method's device, with the EMA generator when `ema` (and EMA is
  /// on).
  virtual torch::Tensor sample(int64_t n, at::Generator& gen, bool ema) = 0;

  /// Full training state (nets, EMA, optimisers) for exact resume.
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;

  /// Weights for final/ (CPU tensors) and back, for `uotflow sample`.
  virtual WeightGroups export_weights() = 0;
  virtual void import_weights(const WeightGroups& weights) = 0;

  /// Current learning rates, by name (for logs).
  virtual std::map<std::string, double> learning_rates() const = 0;

  /// Whether sample(ema = true) really uses an EMA.
  virtual bool has_ema() const = 0;

  /// The phases of the run, in order; empty for a method without phases. The trainer writes
  /// samples, an evaluation and the generator weights at the end of each phase.
  virtual std::vector<Phase> phases() const {
    return {};
  }
};

/// What a method is built from.
struct MethodContext {
  const Json& config;   ///< the fully resolved config
  const Dataset& data;  ///< the target distribution
  torch::Device device;
};

/// A registered method: a factory plus the config sections it adds to the common defaults.
struct MethodEntry {
  std::function<std::unique_ptr<Method>(const MethodContext&)> create;
  std::function<Json()> default_sections;  ///< e.g. {"sjko": {...}}; {} when none
};
using MethodRegistry = Registry<MethodEntry()>;
MethodRegistry& method_registry();

}  // namespace uotflow
