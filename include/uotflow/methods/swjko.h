// SW-JKO: sliced-Wasserstein gradient flows. JKO step k minimises SW2^2(rho, rho_k) / (2 tau) +
// F(rho) over a parametrization (particles, grid, generator, RealNVP) for a fixed number of
// iterations, warm-started from rho_k; the JKO steps are the phases of the run.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/methods/method.h"

namespace uotflow {

/// The "swjko" config section.
///
///   auto options = SwjkoOptions().n_phases(20).jko_step_size(0.05).iterations(100);
struct SwjkoOptions {
  TORCH_ARG(int64_t, n_phases) = 10;        ///< JKO steps K
  TORCH_ARG(double, jko_step_size) = 0.05;  ///< tau, in SW-time
  TORCH_ARG(int64_t, iterations) = 200;     ///< optimiser steps per JKO step
  /// Optimiser steps of the first JKO steps, in order (longer first steps); later ones: iterations.
  TORCH_ARG(std::vector<int64_t>, first_iterations) = {};
  TORCH_ARG(int64_t, batch_size) = 1024;          ///< draws of rho and rho_k per iteration (nets)
  TORCH_ARG(int64_t, n_projections) = 1000;       ///< L directions per iteration
  TORCH_ARG(std::string, optimizer) = "default";  ///< adam, sgd, or the parametrization's own
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, init_lr) = 5e-3;  ///< lr of the first JKO step
  TORCH_ARG(double, momentum) = 0.9;  ///< of sgd

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads and checks the "swjko" section (ConfigError naming the key).
  static SwjkoOptions from_json(const Json& config);
  Json to_json() const;
};

/// Registers "swjko" in the method registry.
void register_swjko(MethodRegistry& registry);

}  // namespace uotflow
