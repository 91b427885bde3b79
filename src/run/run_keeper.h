// Private to src/run: how a run's directory is kept: made or reopened under its lock, config.json,
// log.txt and metrics.jsonl, verified checkpoints of (step, random streams, method state) and the
// rows a resume drops. What a run does is the Trainer's (trainer.cpp).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/methods/method.h"

namespace uotflow::run_detail {

/// The state a run resumes from (its step, every random stream, the method's state nested under
/// "method") as the bytes of a LibTorch archive: a checkpoint's payload, and what rank 0 sends the
/// other processes of a data-parallel run.
std::string run_state_bytes(int64_t step, RandomStreams& streams, Method& method);
/// Loads bytes of run_state_bytes into streams and method and returns the step; c10::Error when
/// they do not fit the method.
int64_t load_run_state(const std::string& bytes, RandomStreams& streams, Method& method);

/// Before a resume builds anything from config.json: it must be the config the run's newest
/// checkpoint was written with (an edited "method" named as such, other edits by key). No
/// checkpoint, or one whose manifest fails verification, is left to RunKeeper::resume to name.
void check_config_unedited(const std::string& run_dir);

class RunKeeper {
 public:
  /// A new directory out_root/NNNNN-name, locked, with config.json (config + meta).
  static std::unique_ptr<RunKeeper> create(const std::string& out_root, const std::string& name,
                                           const Json& config, const Json& meta);
  /// An existing run directory, locked (a second writer is a ConfigError naming the holder).
  static std::unique_ptr<RunKeeper> reopen(const std::string& run_dir);

  const std::string& dir() const {
    return dir_;
  }
  /// The run's config.json as written, which checkpoints vouch for.
  const Json& stored_config() const {
    return stored_config_;
  }

  /// Appends "TIME message" to log.txt.
  void log(const std::string& message) const;
  void append_metrics(const Json& row) const;
  /// The rows of metrics.jsonl or eval.jsonl (unreadable lines skipped).
  std::vector<Json> read_rows(const std::string& file) const;

  /// checkpoints/step-N.ckpt of (step, every stream, the method's state) behind a verified
  /// manifest; the newest keep_last are kept.
  void save_checkpoint(int64_t step, RandomStreams& streams, Method& method,
                       const std::string& method_name, int64_t keep_last) const;
  /// Loads the newest checkpoint that verifies into streams and method and returns its step
  /// (0 when the run stopped before its first checkpoint). A newer one that fails is an error
  /// naming it unless from_last_good: then it is set aside as NAME.corrupt and logged. Rows of
  /// metrics.jsonl and eval.jsonl past the step are dropped (that training is redone).
  int64_t resume(RandomStreams& streams, Method& method, const Json& config, bool from_last_good,
                 std::ostream* progress, const std::string& command_line);
  /// The newest checkpoint that verifies ("" when none does).
  std::string newest_verified_checkpoint() const;

 private:
  RunKeeper(std::string dir, std::unique_ptr<RunLock> lock);
  void check_matches_run(const CheckpointManifest& manifest, const std::string& path,
                         const std::string& method) const;
  void trim_rows_after(int64_t step) const;

  std::string dir_;
  std::unique_ptr<RunLock> lock_;
  Json stored_config_;
};

}  // namespace uotflow::run_detail
