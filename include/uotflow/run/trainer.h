// The in-memory handle of one training run: built from a resolved config or typed RunOptions, it
// steps, evaluates and samples in memory and, when asked, keeps a run directory (config.json,
// logs, checkpoints with exact resume, outputs) through the same calls. `train` and the CLI are
// thin uses of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/data/dataset.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/options.h"

namespace uotflow {

/// What a progress callback receives at each log tick.
struct TrainProgress {
  int64_t step = 0;               ///< steps done
  int64_t total_steps = 0;        ///< the run's length
  double steps_per_second = 0.0;  ///< since this process started the run
  double eta_seconds = 0.0;
  std::map<std::string, double> losses;  ///< means since the last tick
};

/// How a run is kept and watched (what it is, is the config).
struct TrainOptions {
  /// Parent of new run directories; "" keeps a new run in memory only (no directory, no
  /// checkpoints, no pictures: evaluations and metrics rows stay in the Trainer).
  std::string out_root = "runs";
  std::string name;                         ///< run name (default: method-target)
  std::string resume_dir;                   ///< continue this run instead of starting one
  bool resume_from_last_good = false;       ///< skip (and set aside) checkpoints that fail checks
  std::string command_line;                 ///< recorded in config.json and log.txt
  const std::atomic<bool>* stop = nullptr;  ///< set by a signal handler: checkpoint and return
  /// Polled before each step (e.g. a Python interpreter's pending Ctrl-C); true stops as `stop`.
  std::function<bool()> stop_requested;
  std::ostream* progress = nullptr;   ///< progress line / tick lines (nullptr: silent)
  bool progress_is_terminal = false;  ///< redraw one line instead of printing ticks
  std::function<void(const TrainProgress&)> on_progress;  ///< called at each log tick
  /// The processes that train this run together (data parallel; null: this one alone). Rank 0
  /// keeps the run directory (out_root, resume_dir), logs, evaluates and writes; the others train
  /// in memory and follow it. Each process builds its Trainer with the same config and calls
  /// step(), run() and checkpoint() alike: they are collective (docs/distributed.md).
  std::shared_ptr<const Collective> collective;

  /// A run kept in memory only.
  static TrainOptions in_memory() {
    TrainOptions o;
    o.out_root = "";
    return o;
  }
};

struct TrainResult {
  std::string run_dir;       ///< "" for a run kept in memory
  int64_t step = 0;          ///< steps done when training returned
  bool interrupted = false;  ///< stopped by `stop`, checkpoint written
};

/// One run, stepped by the caller. Everything that can reject the config does so in the
/// constructor, before a run directory exists (ConfigError naming the key); with a directory, it
/// is made (or resumed from its newest verified checkpoint) and locked by the constructor. The
/// library's global state is left alone: weights are initialised from the run's own "init" seed
/// with LibTorch's global generator put back afterwards, and no thread count is set.
///
///   auto data = std::make_shared<TensorDataset>(x);  // x: [N, 2]
///   Trainer trainer(RunOptions().method("uotm").seed(0)
///                       .schedule(ScheduleOptions().steps(2000)), data);
///   trainer.run();
///   torch::Tensor y = trainer.sample(1000, /*seed=*/1);  // [1000, 2]
class Trainer {
 public:
  /// A run of a resolved config (resolve_config); `data` replaces its "data" section when given
  /// (for a flow: the data set of its functional's data term, sw_data).
  Trainer(const Json& config, std::shared_ptr<const Dataset> data, const TrainOptions& options);
  /// The same with the source mu held in memory too (a translation from the program's own data
  /// set; null: the config's "source" section).
  Trainer(const Json& config, std::shared_ptr<const Dataset> data,
          std::shared_ptr<const Dataset> source, const TrainOptions& options);
  /// A run of typed options, in memory unless `options` says where to keep it.
  explicit Trainer(const RunOptions& run, std::shared_ptr<const Dataset> data = nullptr,
                   const TrainOptions& options = TrainOptions::in_memory());
  Trainer(const RunOptions& run, std::shared_ptr<const Dataset> data,
          std::shared_ptr<const Dataset> source,
          const TrainOptions& options = TrainOptions::in_memory());
  /// Continues the run in `run_dir` from its newest verified checkpoint, with its own config
  /// (a run trained on data held in memory needs the same `data` and `source` again). `changes`
  /// may set what a resume may change, as dotted keys: {"train.steps", 8000} for a longer run.
  static Trainer resume(const std::string& run_dir, std::shared_ptr<const Dataset> data = nullptr,
                        TrainOptions options = {},
                        const std::vector<std::pair<std::string, Json>>& changes = {},
                        std::shared_ptr<const Dataset> source = nullptr);
  ~Trainer();
  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;

  /// Up to n more steps, with the logs, evaluations, snapshots and checkpoints they fall on;
  /// returns the steps done in all. Returns early at the run's end (final weights written) or on
  /// a stop request (a checkpoint written). A non-finite loss raises a RuntimeError.
  int64_t step(int64_t n = 1);
  /// To the end of the run (or a stop request).
  TrainResult run();
  /// Writes a checkpoint of the current step (a run with a directory; no-op in memory).
  void checkpoint();

  /// n samples [n, D] (CPU, float32) of the model as it is now, from their own seed: the same
  /// (step, n, seed, ema) gives the same samples. ema: the EMA weights where the method has them.
  torch::Tensor sample(int64_t n, uint64_t seed, bool ema = true);
  /// The images of given source points under the current map (Method::transport): x [n, D] (or
  /// [n, C, H, W] for images) -> [n, D] (CPU, float32), row i the image of row i; the map's noise
  /// from its own seed, so the same (step, x, seed, ema) gives the same output. A wrong shape, or
  /// a method without a map of inputs, is a ConfigError.
  torch::Tensor map(const torch::Tensor& x, uint64_t seed, bool ema = true);
  /// An evaluation now (the run's metrics, checks and the method's rows), returned, not recorded.
  std::vector<Json> evaluate();

  /// metrics.jsonl rows so far (a resumed run: those before the resume too).
  const std::vector<Json>& metrics() const;
  /// eval.jsonl rows so far.
  const std::vector<Json>& evaluations() const;
  /// The weights final/ holds (CPU tensors), as they are now.
  WeightGroups weights();

  int64_t current_step() const;
  int64_t total_steps() const;
  bool finished() const;
  bool interrupted() const;
  /// The run directory ("" in memory).
  const std::string& run_dir() const;
  /// The resolved config.
  const Json& config() const;
  const Problem& problem() const;
  Method& method();

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace uotflow
