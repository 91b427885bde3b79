// How a run's directory is kept: lock, config.json, logs, verified checkpoints, resume.
#include "run_keeper.h"

#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "uotflow/core/error.h"
#include "uotflow/io/archive.h"
#include "uotflow/io/files.h"
#include "uotflow/io/run_dir.h"

namespace fs = std::filesystem;

namespace uotflow::run_detail {
namespace {

int64_t row_step(const std::string& line) {
  const Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  return row.is_object() && row.contains("step") && row["step"].is_number_integer()
             ? row["step"].get<int64_t>()
             : -1;
}

}  // namespace

RunKeeper::RunKeeper(std::string dir, std::unique_ptr<RunLock> lock)
    : dir_(std::move(dir)), lock_(std::move(lock)) {}

std::unique_ptr<RunKeeper> RunKeeper::create(const std::string& out_root, const std::string& name,
                                             const Json& config, const Json& meta) {
  auto dir = create_run_dir(out_root, name);
  auto lock = std::make_unique<RunLock>(dir);
  std::unique_ptr<RunKeeper> keeper(new RunKeeper(dir, std::move(lock)));
  write_run_config(dir, config, meta);
  keeper->stored_config_ = read_run_config(dir);
  fs::create_directories(fs::path(dir) / "checkpoints");
  return keeper;
}

std::unique_ptr<RunKeeper> RunKeeper::reopen(const std::string& run_dir) {
  auto lock = std::make_unique<RunLock>(run_dir);
  const int removed = lock->removed_temp_files();
  std::unique_ptr<RunKeeper> keeper(new RunKeeper(run_dir, std::move(lock)));
  if (removed > 0) {
    keeper->log("removed " + std::to_string(removed) +
                " temp file(s) left by an interrupted writer");
  }
  keeper->stored_config_ = read_run_config(run_dir);
  return keeper;
}

void RunKeeper::log(const std::string& message) const {
  log_line(dir_, message);
}

void RunKeeper::append_metrics(const Json& row) const {
  append_line((fs::path(dir_) / "metrics.jsonl").string(), row.dump());
}

std::vector<Json> RunKeeper::read_rows(const std::string& file) const {
  std::vector<Json> rows;
  const auto path = (fs::path(dir_) / file).string();
  if (!fs::is_regular_file(path)) {
    return rows;
  }
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) {
    Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_object()) {
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

void RunKeeper::save_checkpoint(int64_t step, RandomStreams& streams, Method& method,
                                const std::string& method_name, int64_t keep_last) const {
  const auto dir = fs::path(dir_) / "checkpoints";
  write_file_atomic(
      (dir / ("step-" + zero_pad(step, 8) + ".ckpt")).string(),
      encode_checkpoint(step, method_name, stored_config_, run_state_bytes(step, streams, method)));
  prune_checkpoints(dir_, keep_last);
}

std::string RunKeeper::newest_verified_checkpoint() const {
  const auto found = list_checkpoints(dir_);
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    try {
      read_checkpoint(it->string());
      return it->string();
    } catch (const CheckpointError&) {
    }
  }
  return "";
}

int64_t RunKeeper::resume(RandomStreams& streams, Method& method, const Json& config,
                          bool from_last_good, std::ostream* progress,
                          const std::string& command_line) {
  const auto found = list_checkpoints(dir_);
  if (found.empty()) {
    if (has_legacy_checkpoints(dir_)) {
      throw ConfigError("run '" + dir_ +
                        "' has only step-N.pt checkpoints, written by an earlier uotflow "
                        "without the manifest this version verifies; start a new run");
    }
    // Stopped before its first checkpoint: the run starts over in its own directory.
    trim_rows_after(0);
    log("resume: no checkpoint yet, starting from step 0: " + command_line);
    return 0;
  }
  Checkpoint checkpoint;
  std::string path;
  std::vector<std::pair<fs::path, std::string>> failed;  // newer than the one that verifies
  for (auto it = found.rbegin(); it != found.rend() && path.empty(); ++it) {
    try {
      checkpoint = read_checkpoint(it->string());
      path = it->string();
    } catch (const CheckpointError& e) {
      if (!from_last_good) {
        throw CheckpointError(std::string(e.what()) +
                              "; resuming with resume_from_last_good starts from the newest "
                              "checkpoint that verifies");
      }
      failed.emplace_back(*it, e.what());
    }
  }
  if (path.empty()) {
    // Nothing is set aside: the files stay as they were for whoever can mend them.
    throw CheckpointError("no checkpoint of run '" + dir_ + "' verifies (" +
                          std::to_string(found.size()) +
                          " tried, all left in place; the newest: " + failed.front().second + ")");
  }
  // The newer ones that failed are set aside, so that a later plain resume does not stop at them.
  for (const auto& [bad, why] : failed) {
    const auto aside = bad.string() + ".corrupt";
    fs::rename(bad, aside);
    const auto skipped = "skipped " + why + "; kept as " + aside;
    log(skipped);
    if (progress != nullptr) {
      *progress << skipped << "\n";
    }
  }
  const auto method_name = get<std::string>(config, "method");
  check_matches_run(checkpoint.manifest, path, method_name);
  int64_t step = 0;
  try {
    step = load_run_state(checkpoint.payload, streams, method);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw CheckpointError("checkpoint '" + path + "' verifies but does not fit method '" +
                          method_name + "' (" + what.substr(0, what.find('\n')) + ")");
  }
  if (step != checkpoint.manifest.step) {
    throw CheckpointError("checkpoint '" + path + "' holds step " + std::to_string(step) +
                          " but its manifest says " + std::to_string(checkpoint.manifest.step));
  }
  trim_rows_after(step);
  log("resume from " + path + " at step " + std::to_string(step) + ": " + command_line);
  return step;
}

namespace {

// A ConfigError unless the checkpoint `path` was written by `method` with the config `stored`.
void check_written_with(const CheckpointManifest& manifest, const std::string& path,
                        const std::string& dir, const std::string& method, const Json& stored) {
  if (manifest.method != method) {
    throw ConfigError("config.json of run '" + dir + "' names method '" + method +
                      "', but its checkpoint '" + path + "' was written by method '" +
                      manifest.method + "'; restore \"method\": \"" + manifest.method +
                      "\", or start a new run");
  }
  if (manifest.config_sha256 != config_digest(stored)) {
    std::string keys;
    for (const auto& key : changed_keys(manifest.config, stored)) {
      keys += (keys.empty() ? "" : ", ") + key;
    }
    throw ConfigError("config.json of run '" + dir + "' differs from the config of " +
                      "checkpoint '" + path + "' in: " + (keys.empty() ? "(formatting)" : keys) +
                      "; restore those keys, or start a new run with the new config");
  }
}

}  // namespace

std::string run_state_bytes(int64_t step, RandomStreams& streams, Method& method) {
  torch::serialize::OutputArchive archive;
  archive.write("step", torch::tensor(step, torch::kInt64));
  streams.save(archive);
  write_state(archive, "method", method);
  return archive_bytes(archive);
}

int64_t load_run_state(const std::string& bytes, RandomStreams& streams, Method& method) {
  torch::serialize::InputArchive archive;
  load_archive_bytes(archive, bytes);
  torch::Tensor step;
  archive.read("step", step);
  streams.load(archive);
  read_state(archive, "method", method);
  return step.item<int64_t>();
}

void check_config_unedited(const std::string& run_dir) {
  const auto found = list_checkpoints(run_dir);
  if (found.empty()) {
    return;
  }
  CheckpointManifest manifest;
  try {
    manifest = read_checkpoint_manifest(found.back().string());
  } catch (const CheckpointError&) {
    return;  // named, or set aside, by RunKeeper::resume
  }
  const Json stored = read_run_config(run_dir);
  const Json* method =
      stored.is_object() && stored.contains("method") ? &stored["method"] : nullptr;
  check_written_with(manifest, found.back().string(), run_dir,
                     method != nullptr && method->is_string() ? method->get<std::string>()
                                                              : manifest.method,  // keys say it
                     stored);
}

// The checkpoint must come from this run as it is configured now: same method, same config.
void RunKeeper::check_matches_run(const CheckpointManifest& manifest, const std::string& path,
                                  const std::string& method) const {
  check_written_with(manifest, path, dir_, method, stored_config_);
}

// Rows of metrics.jsonl and eval.jsonl past the resumed step are from training that the
// checkpoint does not hold (it will be redone): they are dropped, and so is a line torn by a kill
// mid-append (one that is not a JSON object).
void RunKeeper::trim_rows_after(int64_t step) const {
  for (const char* name : {"metrics.jsonl", "eval.jsonl"}) {
    const auto path = (fs::path(dir_) / name).string();
    if (!fs::is_regular_file(path)) {
      continue;
    }
    std::istringstream lines(read_file(path));
    std::string kept;
    bool dropped = false;
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) {
        continue;
      }
      const auto at = row_step(line);
      if (at < 0) {
        log(std::string("dropped a torn line of ") + name +
            " (a write cut short): " + line.substr(0, 80));
      }
      if (at > step || at < 0) {
        dropped = true;
      } else {
        kept += line + "\n";
      }
    }
    if (dropped) {
      write_file_atomic(path, kept);
    }
  }
}

}  // namespace uotflow::run_detail
