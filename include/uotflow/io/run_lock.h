// One writer per run directory: an exclusive flock on RUN_DIR/.lock, held for as long as the
// process writes the run (train, resume, sample into the run).
#pragma once

#include <string>

namespace uotflow {

/// Holds RUN_DIR/.lock exclusively; released when destroyed (or when the process dies, so a
/// killed writer never leaves a stale lock).
///
///   RunLock lock(run_dir);  // ConfigError if another process writes the run
class RunLock {
 public:
  /// Takes the lock, or raises a ConfigError naming the holder's PID. Once held, removes the
  /// temp files (NAME.uotflow-tmp.PID of another process) that writers which died mid-write left in
  /// the run directory: every writer holds the lock, so none of them is active.
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  /// Temp files removed when the lock was taken.
  int removed_temp_files() const {
    return removed_;
  }

 private:
  int fd_ = -1;
  int removed_ = 0;
};

/// The run directory that `path` lies in (the nearest folder above it with a config.json that has
/// a "meta" section), or "" when it is in none.
std::string enclosing_run_dir(const std::string& path);

}  // namespace uotflow
