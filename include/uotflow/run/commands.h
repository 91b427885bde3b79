// The work behind the command-line tool's subcommands besides `train`, as library calls: each
// subcommand is one call here (or to train / sample_run), so the CLI holds no logic of its own.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/metrics/metrics.h"

namespace uotflow {

/// Guards a file that a command writes (sample --out, data --out): an empty path, a file that
/// belongs to a run (its config.json, logs, final/, checkpoints/, phases/, plots/) or an existing
/// file without `overwrite` is a ConfigError. A path inside a run directory holds that run's lock
/// while the guard lives, so it never races the run's own writer.
///
///   OutputGuard guard(out, overwrite);  // before any work
///   save_npy(out, x);
class OutputGuard {
 public:
  OutputGuard(const std::string& path, bool overwrite);

 private:
  std::unique_ptr<RunLock> lock_;
};

/// `uotflow report`: the HTML report of `run_dirs` (write_report). With `out` empty it is
/// RUN_DIRS[0]/report.html, refreshed in place under that run's lock (a run being trained refreshes
/// its own at each evaluation); any other `out` is guarded like OutputGuard. Returns the path.
std::string write_run_report(const std::vector<std::string>& run_dirs, const std::string& out,
                             bool overwrite = false);

/// "0-63", "3", "0-3,10,12-13" -> the seeds in order; a bad entry is a ConfigError.
std::vector<uint64_t> parse_seed_ranges(const std::string& text);

/// "a,b,,c" -> {"a", "b", "c"}.
std::vector<std::string> split_names(const std::string& list);

/// One PNG per seed of a finished image run: OUT_DIR/seed-SSSSSS.png (as sample_run_seeds).
/// Every file is guarded (OutputGuard) before any is written. Returns the paths written.
std::vector<std::string> write_seed_pngs(const std::string& run_dir,
                                         const std::vector<uint64_t>& seeds, bool ema,
                                         int64_t phase, const std::string& out_dir,
                                         bool overwrite = false);

/// `uotflow sample --input`: the images of the points in `input` (.npy [n, D], or [n, C, H, W]
/// for an image run) under a finished run's map (map_run), in the input's order: to `out` as .npy
/// [n, D], or, for an image run whose `out` is not an .npy path, one PNG per input row,
/// OUT/NNNNNN.png (the row index). The inputs are read and every output guarded (OutputGuard)
/// before the run is loaded; nothing is written when anything fails. Returns the paths written.
std::vector<std::string> write_mapped_inputs(const std::string& run_dir, const std::string& input,
                                             uint64_t seed, bool ema, int64_t phase,
                                             const std::string& out, bool overwrite = false);

/// n samples [n, D] of a registered data set, drawn from `seed` (`uotflow data`).
torch::Tensor draw_dataset(const std::string& name, const Json& params, int64_t n, uint64_t seed);

/// `uotflow eval`: metrics between two .npy sample files.
struct EvalRequest {
  std::string samples;    ///< .npy [N, D] (or [N])
  std::string reference;  ///< .npy [M, D] (or [M])
  std::vector<std::string> metrics;
  MetricContext context;
  std::string centres;    ///< .npy [K, D] mixture centres, or ""
  std::string outliers;   ///< .npy [K, D] outlier locations, or ""
  std::string data_name;  ///< take centres and mode std from this data set, or ""
  Json data_params = Json::object();
  std::string device = "cpu";
};
/// {metric: value} in the order asked for; bad requests raise a ConfigError before any work.
nlohmann::ordered_json evaluate_sample_files(const EvalRequest& request);

/// Every registry a config names things from, as (title, [(name, description)]), for
/// `uotflow info`.
std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
registry_listing();

}  // namespace uotflow
