// S-JKO: a Wasserstein gradient flow whose JKO steps are fixed-source UOT problems, trained with
// warm starts so that K steps cost O(K).
#pragma once

#include <torch/arg.h>

#include <string>
#include <vector>

#include "uotflow/methods/method.h"

namespace uotflow {

/// The "sjko" config section: the JKO steps (phases) of S-JKO. Its other sections are those of
/// SemiDualOptions, with loss.phi1 = linear (each JKO step is a fixed-source problem).
///
///   auto options = SjkoOptions().n_phases(20).jko_step_size(0.1).iterations(500);
struct SjkoOptions {
  TORCH_ARG(int64_t, n_phases) = 10;                    ///< JKO steps K
  TORCH_ARG(double, init_jko_step_size) = 1.0;          ///< h of phase 0
  TORCH_ARG(double, jko_step_size) = 1.0;               ///< h of later phases
  TORCH_ARG(int64_t, init_iterations) = 1000;           ///< steps of phase 0
  TORCH_ARG(int64_t, iterations) = 1000;                ///< steps of each later phase
  TORCH_ARG(double, instance_noise) = 0.0;              ///< std at phase 0, / (k + 1) in phase k
  TORCH_ARG(std::string, reference_latent) = "shared";  ///< shared: T_old(x, z); fresh: a new z'
  /// Weight alpha of the target divergence per phase (a shorter list goes on with its last value);
  /// empty: loss.marginal_weight throughout.
  TORCH_ARG(std::vector<double>, marginal_weights) = std::vector<double>{};

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads and checks the "sjko" section (ConfigError naming the key).
  static SjkoOptions from_json(const Json& config);
  /// {"sjko": {...}}
  Json to_json() const;
};

/// Registers "sjko" in the method registry.
void register_sjko(MethodRegistry& registry);

}  // namespace uotflow
