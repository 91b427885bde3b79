// Sliced-Wasserstein gradient flows (SWGF): K JKO steps rho_{k+1} = argmin SW2^2(rho, rho_k) /
// (2 tau) + F(rho) of a functional F over a parametrization, each warm-started from rho_k, with a
// run directory like `train`'s: per-step samples, checks and pictures, exact resume.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"

namespace uotflow {

/// Built-in defaults of every key `flow` accepts.
Json default_flow_config();

/// Precedence: defaults < config file < --set assignments < dedicated flags; every key is checked
/// against the defaults (ConfigError). A null seed becomes a fresh random one.
Json resolve_flow_config(const Json& file_config, const std::vector<std::string>& sets,
                         const std::vector<std::pair<std::string, Json>>& flags);

/// Reads RUN_DIR/config.json of a flow run back as a resolved config.
Json load_flow_run_config(const std::string& run_dir);

struct FlowOptions {
  std::string out_root = "runs";            ///< parent of new run directories
  std::string name;                         ///< run name (default: swgf-FUNCTIONAL-PARAMETRIZATION)
  std::string resume_dir;                   ///< continue this run from its newest checkpoint
  std::string command_line;                 ///< recorded in config.json and log.txt
  const std::atomic<bool>* stop = nullptr;  ///< set by a signal handler: stop at the next iteration
  std::ostream* progress = nullptr;         ///< one line per JKO step (nullptr: silent)
};

struct FlowResult {
  std::string run_dir;
  int64_t step = 0;          ///< JKO steps done
  bool interrupted = false;  ///< stopped by `stop`; the run resumes from its last finished step
};

/// Runs config (resolved) for flow.n_steps JKO steps. Checkpoints are written after every JKO step;
/// an interrupted step is discarded and redone on resume, so a resumed run equals one run in one
/// go. Config problems raise ConfigError before anything is written; a non-finite objective raises
/// RuntimeError and leaves the last good checkpoint in place.
FlowResult run_flow(const Json& config, const FlowOptions& options);

}  // namespace uotflow
