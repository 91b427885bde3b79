// The resolved config of a run: the run loop's own defaults plus the sections of its method,
// overridden by a file, --set assignments and dedicated flags; legacy key names are migrated.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"

namespace uotflow {

/// Built-in defaults of every key a run of `method` accepts: the run's sections (seed, device,
/// threads, source, train.steps and the schedule keys, eval) plus "data" (or "functional") and
/// the method's own sections.
Json default_config(const std::string& method);

/// The key of a dedicated flag that sets the method's number of JKO steps, whichever key holds it
/// (MethodEntry::jko_steps_key, e.g. swjko.n_phases): `uotflow flow --steps`.
inline constexpr char kJkoStepsFlag[] = "jko_steps";

/// Precedence: defaults < config file < --set assignments < dedicated flags (dotted key -> value,
/// or kJkoStepsFlag).
/// `file_config` may be null (no file). The method is the file's "method" (or a --set of it),
/// else `default_method`. Every key is checked against the defaults (ConfigError), legacy keys
/// are renamed first, and a null seed becomes a fresh random one.
Json resolve_config(const Json& file_config, const std::vector<std::string>& sets,
                    const std::vector<std::pair<std::string, Json>>& flags,
                    const std::string& default_method = "uotm");

/// RUN_DIR/config.json read back as a resolved config (its "meta" section removed).
Json load_run_config(const std::string& run_dir);

/// Renames the keys of earlier versions in place (prior.std -> source.params.std,
/// eval.keep_checkpoints -> train.keep_last, and each method's MethodEntry::renamed_keys); a config
/// with no "method" and a section a method is implied by (MethodEntry::implied_by_sections) is a
/// config of that method. Returns the renames made ("old -> new").
std::vector<std::string> migrate_config(Json& config);

/// What a command line asks of `train`: a new run from a config, or --resume of a run directory.
struct RunRequest {
  std::string config_file;                          ///< "" = built-in defaults
  std::vector<std::string> sets;                    ///< key.path=value
  std::vector<std::pair<std::string, Json>> flags;  ///< dedicated flags (--seed, --steps, ...)
  std::string resume_dir;                           ///< continue this run
  bool names_output = false;                        ///< --out or --name given
  std::string default_method = "uotm";
};

/// The config a request runs: resolved from its file, sets and flags, or, with resume_dir, the
/// run's own config.json with the flags applied (a config file, --set, --seed, --out or --name
/// with resume_dir are a ConfigError: a run continues with its own config).
Json resolve_run_request(const RunRequest& request);

}  // namespace uotflow
