// The training loop around a Method: config resolution, run directories, checkpoints with exact
// resume, logs, periodic evaluation, snapshots, final weights, stop on signals and on non-finite
// losses.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/train/method.h"

namespace uotflow {

/// Built-in defaults of every key `train` accepts for `method` (common sections plus the method's
/// own).
Json default_config(const std::string& method);

/// Precedence: defaults < config file < --set assignments < dedicated flags (dotted key -> value).
/// `file_config` may be null (no file). Every key is checked against the defaults (ConfigError).
Json resolve_config(const Json& file_config, const std::vector<std::string>& sets,
                    const std::vector<std::pair<std::string, Json>>& flags);

/// Reads RUN_DIR/config.json back as a resolved config (the "meta" section removed).
Json load_run_config(const std::string& run_dir);

/// Parses "cpu", "cuda", "cuda:N"; CUDA that is not available is a ConfigError.
torch::Device parse_device(const std::string& name);

/// Everything `train` needs besides the config.
struct TrainOptions {
  std::string out_root = "runs";            ///< parent of new run directories
  std::string name;                         ///< run name (default: method-dataset)
  std::string resume_dir;                   ///< continue this run instead of starting one
  std::string command_line;                 ///< recorded in config.json and log.txt
  const std::atomic<bool>* stop = nullptr;  ///< set by a signal handler: checkpoint and return
  std::ostream* progress = nullptr;         ///< progress line / tick lines (nullptr: silent)
  bool progress_is_terminal = false;        ///< redraw one line instead of printing ticks
};

struct TrainResult {
  std::string run_dir;
  int64_t step = 0;          ///< steps done when train returned
  bool interrupted = false;  ///< stopped by `stop`, checkpoint written
};

/// Trains `config` (resolved). A new run gets a fresh auto-numbered directory under out_root (an
/// existing directory is never reused); with resume_dir the latest checkpoint is loaded and
/// training continues up to train.steps. Config problems raise ConfigError before anything is
/// written; a non-finite loss raises RuntimeError and leaves the last good checkpoint in place.
TrainResult train(const Json& config, const TrainOptions& options);

/// Draws n samples [n, D] (CPU) from a finished run's final/ weights, with seed and EMA choice;
/// with phase >= 0, from the generator at the end of that phase (phases/phase-XXXX/).
torch::Tensor sample_run(const std::string& run_dir, int64_t n, uint64_t seed, bool ema,
                         int64_t phase = -1);

/// One sample per seed from a finished run (as sample_run), each independent of the others: the
/// sample of seed s is sample_run(run_dir, 1, s, ...).
struct SeedSamples {
  torch::Tensor samples;             ///< [S, D] (CPU)
  std::vector<int64_t> image_shape;  ///< [C, H, W] for image data, else empty
};
SeedSamples sample_run_seeds(const std::string& run_dir, const std::vector<uint64_t>& seeds,
                             bool ema, int64_t phase = -1);

/// Path of the newest checkpoint of a run ("" when there is none).
std::string latest_checkpoint(const std::string& run_dir);

}  // namespace uotflow
