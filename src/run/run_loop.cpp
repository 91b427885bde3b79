// The run loop: resolved config -> problem and method -> run directory -> steps with logging,
// evaluation, snapshots, phases and atomic checkpoints; exact resume from the newest checkpoint.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "outputs.h"
#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/meters.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/checkpoint.h"
#include "uotflow/io/files.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/run_lock.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::max(0.0, seconds));
  std::ostringstream s;
  s << total / 3600 << ":" << zero_pad((total / 60) % 60, 2) << ":" << zero_pad(total % 60, 2);
  return s.str();
}

// The method of a config, its weights initialised from the run's "init" stream (LibTorch modules
// draw their initial weights from the global generator).
std::unique_ptr<Method> make_method(const Json& config, const Problem& problem,
                                    torch::Device device) {
  torch::manual_seed(derive_seed(get<uint64_t>(config, "seed"), "init"));
  return method_registry()
      .create(get<std::string>(config, "method"))
      .create(MethodContext{config, problem, device});
}

// A data set passed in memory is named so in the run's config (a resume must pass it again).
Json with_data_name(Json config, bool in_memory) {
  if (in_memory && config.contains("data")) {
    config["data"]["name"] = "in_memory";
    config["data"]["params"] = Json::object();
  }
  return config;
}

int64_t non_negative(const Json& config, const std::string& key) {
  const auto v = get<int64_t>(config, key);
  if (v < 0) {
    throw ConfigError("config key '" + key + "' must be >= 0, got " + std::to_string(v));
  }
  return v;
}

class Run {
 public:
  Run(const Json& config, std::shared_ptr<const Dataset> data, const TrainOptions& options)
      : config_(with_data_name(config, data != nullptr)),
        options_(options),
        seed_(get<uint64_t>(config, "seed")),
        device_(parse_device(get<std::string>(config, "device"))),
        problem_(make_problem(config, std::move(data))),
        method_(make_method(config_, problem_, device_)),
        phases_(method_->phases()),
        streams_(seed_),
        outputs_(config_, problem_, *method_, phases_) {
    total_steps_ = get<int64_t>(config, "train.steps");
    if (!phases_.empty()) {
      // A phased method fixes the run's length; train.steps may only repeat it.
      const int64_t phased = phases_.back().end_step;
      if (total_steps_ != 0 && total_steps_ != phased) {
        throw ConfigError("train.steps is " + std::to_string(total_steps_) +
                          " but the phases of '" + get<std::string>(config, "method") + "' take " +
                          std::to_string(phased) + " steps; leave train.steps at 0");
      }
      total_steps_ = phased;
    }
    if (total_steps_ <= 0) {
      throw ConfigError("train.steps must be > 0, got " + std::to_string(total_steps_));
    }
    for (const char* key : {"log_every", "eval_every", "checkpoint_every", "snapshot_every",
                            "keep_last", "phase_weights_every"}) {
      every_[key] = non_negative(config, std::string("train.") + key);
    }
    non_negative(config, "eval.n");
    non_negative(config, "eval.n_projections");
  }

  TrainResult run() {
    try {
      return run_steps();
    } catch (const std::exception& e) {
      // Once the run directory exists, every failure is in log.txt as well as on stderr.
      if (!run_dir_.empty()) {
        try {
          log(std::string("error: ") + e.what());
        } catch (const std::exception&) {
        }
      }
      throw;
    }
  }

 private:
  TrainResult run_steps() {
    if (options_.resume_dir.empty()) {
      const auto dir = create_run_dir(options_.out_root, run_name());
      lock_ = std::make_unique<RunLock>(dir);
      run_dir_ = dir;
      write_run_config(
          run_dir_, config_,
          Json{{"device", device_.str()},
               {"command_line", options_.command_line},
               {"steps", total_steps_},
               {"problem", {{"dim", problem_.dim}, {"image_shape", problem_.image_shape}}}});
      stored_config_ = read_run_config(run_dir_);
      outputs_.open(run_dir_, device_, logger());
      outputs_.write_target();
      log("start: " + options_.command_line);
    } else {
      lock_ = std::make_unique<RunLock>(options_.resume_dir);
      run_dir_ = options_.resume_dir;
      if (lock_->removed_temp_files() > 0) {
        log("removed " + std::to_string(lock_->removed_temp_files()) +
            " temp file(s) left by an interrupted writer");
      }
      resume();
      outputs_.open(run_dir_, device_, logger());
      // The outputs of the checkpoint's step, in case the run stopped between its checkpoint and
      // them (they are written after it, so that a failed evaluation never costs training).
      if (step_ > 0) {
        step_outputs(phase_ending_at(step_), step_ == total_steps_, has_eval_rows(step_));
      }
    }
    fs::create_directories(fs::path(run_dir_) / "checkpoints");
    log("device " + device_.str() + ", seed " + std::to_string(seed_) + ", steps " +
        std::to_string(step_) + " -> " + std::to_string(total_steps_));

    if (step_ == 0 && get<bool>(config_, "eval.at_start") && !has_eval_rows(0)) {
      evaluate(-1);  // the untrained model: the baseline later evaluations improve on
      outputs_.refresh_report();
    }
    TrainResult result;
    TimeMeter time(step_);
    AverageMeter losses;
    while (step_ < total_steps_) {
      if (options_.stop != nullptr && options_.stop->load()) {
        result.interrupted = true;
        break;
      }
      auto values = method_->step(step_, streams_);
      check_finite(values);
      ++step_;
      losses.add(values);
      const int64_t phase = phase_ending_at(step_);
      const bool last = step_ == total_steps_;
      if (due("log_every") || last || phase >= 0) {
        write_metrics(losses.means(), time.tick(step_), time.elapsed());
        report_progress(losses.means(), time);
        losses.reset();
      }
      if (due("checkpoint_every") || last || phase >= 0) {
        save_checkpoint();
      }
      step_outputs(phase, last, false);
    }
    if (options_.progress != nullptr && options_.progress_is_terminal) {
      *options_.progress << "\n";
    }
    if (result.interrupted) {
      save_checkpoint();
      log("interrupted at step " + std::to_string(step_) + "; resume with --resume " + run_dir_);
    }
    outputs_.write_final();
    log(result.interrupted ? "stopped" : "done at step " + std::to_string(step_));
    outputs_.refresh_report();
    result.run_dir = run_dir_;
    result.step = step_;
    return result;
  }

  // Evaluation, snapshot and phase outputs due after step_ steps, then the report.
  void step_outputs(int64_t phase, bool last, bool evaluated) {
    const bool evaluate_now = (due("eval_every") || last || phase >= 0) && !evaluated;
    const bool snapshot_now = due("snapshot_every") || last;
    if (evaluate_now) {
      evaluate(phase);
    }
    if (snapshot_now) {
      outputs_.snapshot("step-" + zero_pad(step_, 7));
    }
    if (phase >= 0) {
      outputs_.end_phase(phase);
    }
    if (evaluate_now || snapshot_now || phase >= 0) {
      outputs_.refresh_report();
    }
  }

  std::string run_name() const {
    if (!options_.name.empty()) {
      return options_.name;
    }
    const auto method = get<std::string>(config_, "method");
    const char* target = problem_.functional ? "functional.name" : "data.name";
    return method + "-" + get<std::string>(config_, target);
  }

  bool due(const char* every) const {
    const int64_t n = every_.at(every);
    return n > 0 && step_ % n == 0;
  }

  // The phase that ends after `step` steps, or -1 (end steps ascend: a binary search per step).
  int64_t phase_ending_at(int64_t step) const {
    const auto it = std::lower_bound(phases_.begin(), phases_.end(), step,
                                     [](const Phase& p, int64_t s) { return p.end_step < s; });
    return it != phases_.end() && it->end_step == step ? it - phases_.begin() : -1;
  }

  void check_finite(const std::map<std::string, double>& values) {
    for (const auto& [k, v] : values) {
      if (!std::isfinite(v)) {
        std::ostringstream msg;
        msg << "non-finite " << k << " (" << v << ") at step " << step_ + 1 << "; ";
        const auto last = newest_verified_checkpoint();
        msg << (last.empty() ? "no verified checkpoint was written yet"
                             : "the newest verified checkpoint is " + last);
        throw RuntimeError(msg.str());
      }
    }
  }

  std::string newest_verified_checkpoint() const {
    const auto found = list_checkpoints(run_dir_);
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      try {
        read_checkpoint(it->string());
        return it->string();
      } catch (const CheckpointError&) {
      }
    }
    return "";
  }

  void evaluate(int64_t phase) {
    const auto summary = outputs_.evaluate(step_, phase);
    if (!summary.empty()) {
      log("eval step " + std::to_string(step_) + ":" + summary);
    }
  }

  // Loads the newest checkpoint that verifies. A newer one that fails is an error naming it,
  // unless options_.resume_from_last_good: then it is set aside as NAME.corrupt and logged.
  void resume() {
    const auto found = list_checkpoints(run_dir_);
    stored_config_ = read_run_config(run_dir_);
    if (found.empty()) {
      if (has_legacy_checkpoints(run_dir_)) {
        throw ConfigError("run '" + run_dir_ +
                          "' has only step-N.pt checkpoints, written by an earlier uotflow "
                          "without the manifest this version verifies; start a new run");
      }
      // Stopped before its first checkpoint: the run starts over in its own directory.
      trim_rows_after(0);
      log("resume: no checkpoint yet, starting from step 0: " + options_.command_line);
      return;
    }
    Checkpoint checkpoint;
    std::string path;
    for (auto it = found.rbegin(); it != found.rend() && path.empty(); ++it) {
      try {
        checkpoint = read_checkpoint(it->string());
        path = it->string();
      } catch (const CheckpointError& e) {
        if (!options_.resume_from_last_good) {
          throw CheckpointError(std::string(e.what()) +
                                "; --resume-from-last-good resumes from the newest checkpoint "
                                "that verifies");
        }
        const auto aside = it->string() + ".corrupt";
        fs::rename(*it, aside);
        const auto skipped = std::string("skipped ") + e.what() + "; kept as " + aside;
        log(skipped);
        if (options_.progress != nullptr) {
          *options_.progress << skipped << "\n";
        }
      }
    }
    if (path.empty()) {
      throw CheckpointError("no checkpoint of run '" + run_dir_ + "' verifies (" +
                            std::to_string(found.size()) + " tried)");
    }
    check_matches_run(checkpoint.manifest, path);
    try {
      std::istringstream payload(checkpoint.payload);
      torch::serialize::InputArchive archive;
      archive.load_from(payload);
      torch::Tensor step;
      archive.read("step", step);
      step_ = step.item<int64_t>();
      streams_.load(archive);
      torch::serialize::InputArchive method_archive;
      archive.read("method", method_archive);
      method_->load(method_archive);
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      throw CheckpointError("checkpoint '" + path + "' verifies but does not fit method '" +
                            get<std::string>(config_, "method") + "' (" +
                            what.substr(0, what.find('\n')) + ")");
    }
    if (step_ != checkpoint.manifest.step) {
      throw CheckpointError("checkpoint '" + path + "' holds step " + std::to_string(step_) +
                            " but its manifest says " + std::to_string(checkpoint.manifest.step));
    }
    trim_rows_after(step_);
    log("resume from " + path + " at step " + std::to_string(step_) + ": " + options_.command_line);
  }

  // The checkpoint must come from this run as it is configured now: same method, same config.
  void check_matches_run(const CheckpointManifest& manifest, const std::string& path) const {
    const auto method = get<std::string>(config_, "method");
    if (manifest.method != method) {
      throw ConfigError("checkpoint '" + path + "' is of method '" + manifest.method +
                        "' but run '" + run_dir_ + "' is configured for '" + method + "'");
    }
    if (manifest.config_sha256 != config_digest(stored_config_)) {
      std::string keys;
      for (const auto& key : changed_keys(manifest.config, stored_config_)) {
        keys += (keys.empty() ? "" : ", ") + key;
      }
      throw ConfigError("config.json of run '" + run_dir_ + "' differs from the config of " +
                        "checkpoint '" + path + "' in: " + (keys.empty() ? "(formatting)" : keys) +
                        "; restore those keys, or start a new run with the new config");
    }
  }

  // Rows of metrics.jsonl and eval.jsonl past the resumed step are from training that the
  // checkpoint does not hold (it will be redone): they are dropped.
  void trim_rows_after(int64_t step) {
    for (const char* name : {"metrics.jsonl", "eval.jsonl"}) {
      const auto path = (fs::path(run_dir_) / name).string();
      if (!fs::is_regular_file(path)) {
        continue;
      }
      std::istringstream lines(read_file(path));
      std::string kept;
      bool dropped = false;
      for (std::string line; std::getline(lines, line);) {
        if (row_step(line) > step) {
          dropped = true;
        } else if (!line.empty()) {
          kept += line + "\n";
        }
      }
      if (dropped) {
        write_file_atomic(path, kept);
      }
    }
  }

  static int64_t row_step(const std::string& line) {
    const Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    return row.is_object() && row.contains("step") && row["step"].is_number_integer()
               ? row["step"].get<int64_t>()
               : -1;
  }

  // Whether eval.jsonl has the rows of `step` (an evaluation appends all its rows at once).
  bool has_eval_rows(int64_t step) const {
    const auto path = (fs::path(run_dir_) / "eval.jsonl").string();
    if (!fs::is_regular_file(path)) {
      return false;
    }
    std::istringstream lines(read_file(path));
    for (std::string line; std::getline(lines, line);) {
      if (row_step(line) == step) {
        return true;
      }
    }
    return false;
  }

  void save_checkpoint() {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(step_, torch::kInt64));
    streams_.save(archive);
    torch::serialize::OutputArchive method_archive;
    method_->save(method_archive);
    archive.write("method", method_archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    const auto dir = fs::path(run_dir_) / "checkpoints";
    const auto method = get<std::string>(config_, "method");
    write_file_atomic((dir / ("step-" + zero_pad(step_, 8) + ".ckpt")).string(),
                      encode_checkpoint(step_, method, stored_config_, bytes.str()));
    prune_checkpoints(run_dir_, every_.at("keep_last"));
  }

  void write_metrics(const std::map<std::string, double>& losses, double per_step, double elapsed) {
    Json row{{"step", step_}, {"time", elapsed}, {"sec_per_step", per_step}};
    for (const auto& [k, v] : losses) {
      row[k] = v;
    }
    for (const auto& [k, v] : method_->learning_rates()) {
      row[k] = v;
    }
    append_line((fs::path(run_dir_) / "metrics.jsonl").string(), row.dump());
  }

  void report_progress(const std::map<std::string, double>& losses, const TimeMeter& time) {
    std::ostringstream line;
    line << "step " << step_ << "/" << total_steps_ << " " << std::fixed << std::setprecision(1)
         << time.rate(step_) << " it/s eta " << format_duration(time.eta(step_, total_steps_))
         << std::defaultfloat << std::setprecision(4);
    for (const auto& [k, v] : losses) {
      line << " " << k << "=" << v;
    }
    log(line.str());
    if (options_.progress == nullptr) {
      return;
    }
    if (options_.progress_is_terminal) {
      *options_.progress << "\r\033[K" << line.str() << std::flush;
    } else {
      *options_.progress << line.str() << "\n" << std::flush;
    }
  }

  run_detail::RunOutputs::Log logger() {
    return [this](const std::string& line) { log(line); };
  }

  void log(const std::string& message) {
    log_line(run_dir_, message);
  }

  Json config_;
  TrainOptions options_;
  uint64_t seed_;
  torch::Device device_;
  Problem problem_;
  std::unique_ptr<Method> method_;
  std::vector<Phase> phases_;
  RandomStreams streams_;
  run_detail::RunOutputs outputs_;
  std::map<std::string, int64_t> every_;
  std::unique_ptr<RunLock> lock_;
  std::string run_dir_;
  Json stored_config_;  // the run's config.json as written, which checkpoints vouch for
  int64_t step_ = 0;
  int64_t total_steps_ = 0;
};

}  // namespace

TrainResult train(const Json& config, const TrainOptions& options) {
  return train(config, nullptr, options);
}

TrainResult train(const Json& config, std::shared_ptr<const Dataset> data,
                  const TrainOptions& options) {
  Run run(config, std::move(data), options);
  return run.run();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto found = list_checkpoints(run_dir);
  return found.empty() ? "" : found.back().string();
}

}  // namespace uotflow
