// JKO-ICNN (Mokrov et al. 2021): W2 JKO steps whose maps are gradients of input-convex nets.
// Step k minimises E |x - grad psi_k(x)|^2 / (2h) + F(grad psi_k # rho_k) over psi_k, where
// samples of rho_k are samples of rho_0 pushed through every earlier map: step k costs O(k), K
// steps O(K^2). It is the baseline that S-JKO (O(K)) and SW-JKO measure themselves against.
#pragma once

#include <torch/arg.h>

#include <string>

#include "uotflow/methods/method.h"

namespace uotflow {

/// The "jko_icnn" config section (the net is the "icnn" section, IcnnOptions).
///
///   auto options = JkoIcnnOptions().n_phases(10).jko_step_size(0.1).log_det("stochastic");
struct JkoIcnnOptions {
  TORCH_ARG(int64_t, n_phases) = 10;       ///< JKO steps K
  TORCH_ARG(double, jko_step_size) = 0.1;  ///< h, in W-time
  TORCH_ARG(int64_t, iterations) = 500;    ///< optimiser steps per JKO step
  TORCH_ARG(int64_t, batch_size) = 512;    ///< draws of rho_0 per iteration
  TORCH_ARG(std::string, optimizer) = "adam";
  TORCH_ARG(double, lr) = 5e-3;
  /// The entropy's log det of the Hessian in training: exact (D double backwards, then slogdet)
  /// or stochastic (Lanczos value, conjugate-gradient gradient; for larger D). Evaluations use
  /// the exact one.
  TORCH_ARG(std::string, log_det) = "exact";
  TORCH_ARG(int64_t, probes) = 1;          ///< stochastic: Rademacher probes per sample
  TORCH_ARG(int64_t, lanczos_steps) = 10;  ///< stochastic: Lanczos steps (capped at D)
  TORCH_ARG(int64_t, cg_iterations) = 20;  ///< stochastic: conjugate gradient iterations

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads and checks the "jko_icnn" section (ConfigError naming the key).
  static JkoIcnnOptions from_json(const Json& config);
  /// {"jko_icnn": {...}}
  Json to_json() const;
};

/// Registers "jko_icnn" in the method registry.
void register_jko_icnn(MethodRegistry& registry);

}  // namespace uotflow
