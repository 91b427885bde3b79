// What a run does, step by step: the problem and method of a config, the steps with their logs,
// evaluations, snapshots, phases and checkpoints, in memory or kept in a run directory
// (run_keeper.h); exact resume from the newest checkpoint.
#include "uotflow/run/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "outputs.h"
#include "run_keeper.h"
#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/meters.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/archive.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/methods/autoencoder.h"
#include "uotflow/run/config.h"

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
// draw their initial weights from the global generator, whose state is put back afterwards).
std::unique_ptr<Method> make_method(const Json& config, const Problem& problem,
                                    torch::Device device, const DataParallel& parallel) {
  GlobalSeedScope init(derive_seed(get<uint64_t>(config, "seed"), "init"));
  auto method = method_registry()
                    .create(get<std::string>(config, "method"))
                    .create(MethodContext{config, problem, device, parallel});
  if (parallel.active() && !method->data_parallel()) {
    throw ConfigError("method '" + get<std::string>(config, "method") +
                      "' does not train data parallel: run it in one process with train.shards 1");
  }
  return method;
}

// Data sets passed in memory are named so in the run's config (a resume must pass them again).
Json with_data_names(Json config, bool data_in_memory, bool source_in_memory) {
  for (const auto& [section, in_memory] :
       {std::pair<const char*, bool>{"data", data_in_memory},
        std::pair<const char*, bool>{"source", source_in_memory}}) {
    if (in_memory && config.contains(section)) {
      config[section]["name"] = "in_memory";
      config[section]["params"] = Json::object();
    }
  }
  return config;
}

}  // namespace

struct Trainer::Impl {
  Impl(const Json& config, std::shared_ptr<const Dataset> data,
       std::shared_ptr<const Dataset> source, TrainOptions options)
      : config_(with_data_names(config, data != nullptr, source != nullptr)),
        options_(std::move(options)),
        seed_(get<uint64_t>(config, "seed")),
        device_(parse_device(get<std::string>(config, "device"))),
        schedule_(ScheduleOptions::from_json(config)),
        collective_(options_.collective ? options_.collective : std::make_shared<Collective>()),
        together_(collective_->world_size() > 1),
        parallel_(collective_, schedule_.shards()),
        problem_(make_problem(config, std::move(data), nullptr, std::move(source))),
        method_(make_method(config_, problem_, device_, parallel_)),
        phases_(method_->phases()),
        streams_(seed_, parallel_.shards()),
        outputs_(config_, problem_, *method_, phases_) {
    if (!collective_->is_root()) {
      // Rank 0 keeps the run directory, logs, evaluates and writes; the others only train.
      options_.out_root.clear();
      options_.resume_dir.clear();
      options_.progress = nullptr;
      options_.on_progress = nullptr;
    }
    if (problem_.latent) {
      // The autoencoder run this one uses, by absolute path and with its weights' checksum:
      // checked again on resume and when sampling.
      config_["latent"]["run"] = problem_.latent->run_dir();
      config_["latent"]["sha256"] = problem_.latent->sha256();
    }
    total_steps_ = schedule_.steps();
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
    EvalOptions::from_json(config);  // eval.n and eval.n_projections >= 0
    const bool in_memory = options_.out_root.empty() && options_.resume_dir.empty();
    if (in_memory && collective_->is_root() &&
        !get<std::vector<std::string>>(config, "eval.features.metrics").empty()) {
      throw ConfigError(
          "eval.features.metrics need a run directory (the extractor is kept there); give the "
          "run an output folder or leave them empty");
    }
    if (!in_memory) {
      open_run_dir();
    }
    if (together_) {
      start_together();
    }
  }

  // Every process starts from rank 0's step, weights, optimiser states and random streams (of a
  // new run or of the checkpoint it resumed from).
  void start_together() {
    logged([&] {
      // The same run on every process: a config that differs (a seed drawn per process) would
      // train N different models that average their gradients.
      const auto root_config = collective_->broadcast(config_.dump());
      if (root_config != config_.dump()) {
        const auto diff = Json::diff(Json::parse(root_config), config_);
        throw ConfigError("data parallel: the config of rank " +
                          std::to_string(collective_->rank()) + " differs from rank 0's at '" +
                          (diff.empty() ? std::string("?") : diff[0].value("path", "?")) +
                          "'; give every process the same config and seed");
      }
      const auto state = collective_->broadcast(
          collective_->is_root() ? run_detail::run_state_bytes(step_, streams_, *method_) : "");
      if (!collective_->is_root()) {
        step_ = run_detail::load_run_state(state, streams_, *method_);
      }
    });
    log("data parallel: " + std::to_string(collective_->world_size()) + " processes (" +
        collective_->backend() + "), " + std::to_string(parallel_.shards()) +
        " shards, started from rank 0's state at step " + std::to_string(step_));
  }

  // The shape of the run's samples as its files hold them (in the data space), for config.json.
  Json data_shape() const {
    const auto space = problem_.data_space();
    return Json{{"dim", space.dim}, {"image_shape", space.image_shape}};
  }

  // Makes or resumes the run directory; every failure from here on is in its log.txt too.
  void open_run_dir() {
    if (options_.resume_dir.empty()) {
      keeper_ = run_detail::RunKeeper::create(options_.out_root, run_name(), config_,
                                              Json{{"device", device_.str()},
                                                   {"command_line", options_.command_line},
                                                   {"steps", total_steps_},
                                                   {"problem", data_shape()}});
      logged([&] {
        outputs_.open(keeper_->dir(), device_, logger());
        outputs_.write_target();
        log("start: " + options_.command_line);
      });
    } else {
      keeper_ = run_detail::RunKeeper::reopen(options_.resume_dir);
      logged([&] {
        step_ = keeper_->resume(streams_, *method_, config_, options_.resume_from_last_good,
                                options_.progress, options_.command_line);
        metric_rows_ = keeper_->read_rows("metrics.jsonl");  // as resume() left them
        eval_rows_ = keeper_->read_rows("eval.jsonl");
        fs::create_directories(fs::path(keeper_->dir()) / "checkpoints");
        outputs_.open(keeper_->dir(), device_, logger());
        // The outputs of the checkpoint's step, in case the run stopped between its checkpoint
        // and them (they are written after it, so that a failed evaluation never costs training).
        if (step_ > 0) {
          step_outputs(phase_ending_at(step_), step_ == total_steps_, has_eval_rows(step_));
        }
      });
    }
    log("device " + device_.str() + ", seed " + std::to_string(seed_) + ", steps " +
        std::to_string(step_) + " -> " + std::to_string(total_steps_));
  }

  int64_t step(int64_t n) {
    logged([&] { steps(n); });
    return step_;
  }

  void steps(int64_t n) {
    if (step_ < total_steps_) {
      interrupted_ = false;  // stepping again after a stop
      final_written_ = false;
    }
    if (!started_) {
      started_ = true;
      time_ = TimeMeter(step_);
      if (step_ == 0 && get<bool>(config_, "eval.at_start") && !has_eval_rows(0) &&
          collective_->is_root()) {
        evaluate(-1);  // the untrained model: the baseline later evaluations improve on
        refresh_report();
      }
    }
    for (int64_t i = 0; i < n && step_ < total_steps_; ++i) {
      if (!together_ && stop_requested()) {
        interrupted_ = true;
        break;
      }
      auto values = method_->step(step_, streams_);
      if (together_) {
        // Every process learns whether any stopped or went non-finite, and they stop together.
        const auto agreed =
            collective_->average({all_finite(values) ? 0.0 : 1.0, stop_requested() ? 1.0 : 0.0});
        if (agreed[0] > 0) {
          check_finite(values);
          throw RuntimeError("a non-finite loss on another process at step " +
                             std::to_string(step_ + 1) + "; every process stops");
        }
        if (agreed[1] > 0) {
          interrupted_ = true;  // after this step, which every process took
        }
      }
      check_finite(values);
      ++step_;
      losses_.add(values);
      ++steps_averaged_;
      const int64_t phase = phase_ending_at(step_);
      const bool last = step_ == total_steps_;
      if (due(schedule_.log_every()) || last || phase >= 0) {
        const auto means = averaged_over_processes(losses_.means());
        write_metrics(means, time_.tick(step_), time_.elapsed());
        report_progress(means);
        losses_.reset();
        steps_averaged_ = 0;
      }
      if (due(schedule_.checkpoint_every()) || last || phase >= 0) {
        save_checkpoint();
      }
      step_outputs(phase, last, false);
      if (interrupted_) {
        break;
      }
    }
    if (interrupted_ || step_ == total_steps_) {
      finish();
    }
  }

  // The end of a run, or of a stopped one: its checkpoint, final weights and report.
  void finish() {
    if (final_written_) {
      return;
    }
    final_written_ = true;
    if (options_.progress != nullptr && options_.progress_is_terminal) {
      *options_.progress << "\n";
    }
    if (interrupted_) {
      save_checkpoint();
      log("interrupted at step " + std::to_string(step_) +
          "; its checkpoint is saved and the run " + "resumes from " + dir());
    }
    if (keeper_) {
      outputs_.write_final();
    }
    log(interrupted_ ? "stopped" : "done at step " + std::to_string(step_));
    refresh_report();
  }

  bool stop_requested() const {
    return (options_.stop != nullptr && options_.stop->load()) ||
           (options_.stop_requested && options_.stop_requested());
  }

  // Whether an evaluation of `step` is recorded (an evaluation appends all its rows at once).
  bool has_eval_rows(int64_t step) const {
    return std::any_of(eval_rows_.begin(), eval_rows_.end(),
                       [step](const Json& r) { return r.value("step", int64_t{-1}) == step; });
  }

  // Evaluation, snapshot and phase outputs due after step_ steps, then the report (rank 0).
  void step_outputs(int64_t phase, bool last, bool evaluated) {
    if (!collective_->is_root()) {
      return;
    }
    const bool evaluate_now = (due(schedule_.eval_every()) || last || phase >= 0) && !evaluated;
    const bool snapshot_now = keeper_ && (due(schedule_.snapshot_every()) || last);
    if (evaluate_now) {
      evaluate(phase);
    }
    if (snapshot_now) {
      outputs_.snapshot("step-" + zero_pad(step_, 7));
    }
    if (phase >= 0 && keeper_) {
      outputs_.end_phase(phase);
    }
    if (evaluate_now || snapshot_now || phase >= 0) {
      refresh_report();
    }
  }

  void evaluate(int64_t phase) {
    auto evaluation = outputs_.evaluate(step_, phase);
    for (auto& row : evaluation.rows) {
      eval_rows_.push_back(std::move(row));
    }
    if (!evaluation.summary.empty()) {
      log("eval step " + std::to_string(step_) + ":" + evaluation.summary);
    }
  }

  void refresh_report() {
    if (keeper_) {
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

  bool due(int64_t every) const {
    return every > 0 && step_ % every == 0;
  }

  // The phase that ends after `step` steps, or -1 (end steps ascend: a binary search per step).
  int64_t phase_ending_at(int64_t step) const {
    const auto it = std::lower_bound(phases_.begin(), phases_.end(), step,
                                     [](const Phase& p, int64_t s) { return p.end_step < s; });
    return it != phases_.end() && it->end_step == step ? it - phases_.begin() : -1;
  }

  static bool all_finite(const std::map<std::string, double>& values) {
    return std::all_of(values.begin(), values.end(),
                       [](const auto& kv) { return std::isfinite(kv.second); });
  }

  // The means of every process (the same names on each: every process ran the same method).
  std::map<std::string, double> averaged_over_processes(std::map<std::string, double> means) const {
    if (!together_) {
      return means;
    }
    std::vector<double> values;
    for (const auto& [k, v] : means) {
      values.push_back(v);
    }
    values = collective_->average(values);
    size_t i = 0;
    for (auto& [k, v] : means) {
      v = values[i++];
    }
    return means;
  }

  void check_finite(const std::map<std::string, double>& values) {
    for (const auto& [k, v] : values) {
      if (!std::isfinite(v)) {
        std::ostringstream msg;
        msg << "non-finite " << k << " (" << v << ") at step " << step_ + 1;
        if (keeper_) {
          const auto last = keeper_->newest_verified_checkpoint();
          msg << "; "
              << (last.empty() ? "no verified checkpoint was written yet"
                               : "the newest verified checkpoint is " + last);
        }
        throw RuntimeError(msg.str());
      }
    }
  }

  void save_checkpoint() {
    if (together_) {
      // Rank 0's checkpoint holds every process's shard streams.
      torch::serialize::OutputArchive mine;
      streams_.save_shards(mine, parallel_.first_shard(), parallel_.local_shards());
      const auto all = collective_->all_gather(archive_bytes(mine));
      if (collective_->is_root()) {
        for (size_t r = 1; r < all.size(); ++r) {
          torch::serialize::InputArchive theirs;
          load_archive_bytes(theirs, all[r]);
          streams_.load_shards(theirs);
        }
      }
    }
    if (keeper_) {
      keeper_->save_checkpoint(step_, streams_, *method_, get<std::string>(config_, "method"),
                               schedule_.keep_last());
    }
  }

  void write_metrics(const std::map<std::string, double>& losses, double per_step, double elapsed) {
    // steps_averaged: the steps the means cover, fewer than log_every after a resume between ticks.
    Json row{{"step", step_},
             {"time", elapsed},
             {"sec_per_step", per_step},
             {"steps_averaged", steps_averaged_}};
    for (const auto& [k, v] : losses) {
      row[k] = v;
    }
    for (const auto& [k, v] : method_->learning_rates()) {
      row[k] = v;
    }
    if (together_ && steps_averaged_ > 0) {
      // Rank 0's seconds in collectives per step since the last row (waiting for the slowest
      // process included).
      const double communicating = collective_->seconds_communicating();
      row["comm_sec_per_step"] = (communicating - communicated_) / steps_averaged_;
      communicated_ = communicating;
    }
    if (keeper_) {
      keeper_->append_metrics(row);
    }
    metric_rows_.push_back(std::move(row));
  }

  void report_progress(const std::map<std::string, double>& losses) {
    TrainProgress progress{step_, total_steps_, time_.rate(step_), time_.eta(step_, total_steps_),
                           losses};
    std::ostringstream line;
    line << "step " << step_ << "/" << total_steps_ << " " << std::fixed << std::setprecision(1)
         << progress.steps_per_second << " it/s eta " << format_duration(progress.eta_seconds)
         << std::defaultfloat << std::setprecision(4);
    for (const auto& [k, v] : losses) {
      line << " " << k << "=" << v;
    }
    log(line.str());
    if (options_.on_progress) {
      options_.on_progress(progress);
    }
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

  void log(const std::string& message) const {
    if (keeper_) {
      keeper_->log(message);
    }
  }

  // Runs `work`; once the run directory exists, a failure is in its log.txt as well.
  template <typename F>
  void logged(F&& work) {
    try {
      work();
    } catch (const std::exception& e) {
      try {
        log(std::string("error: ") + e.what());
      } catch (const std::exception&) {
      }
      throw;
    }
  }

  const std::string& dir() const {
    static const std::string none;
    return keeper_ ? keeper_->dir() : none;
  }

  Json config_;
  TrainOptions options_;
  uint64_t seed_;
  torch::Device device_;
  ScheduleOptions schedule_;
  std::shared_ptr<const Collective> collective_;
  bool together_;  ///< more than one process: every step and checkpoint is collective
  DataParallel parallel_;
  Problem problem_;
  std::unique_ptr<Method> method_;
  std::vector<Phase> phases_;
  RandomStreams streams_;
  run_detail::RunOutputs outputs_;
  std::unique_ptr<run_detail::RunKeeper> keeper_;
  int64_t step_ = 0;
  int64_t total_steps_ = 0;
  bool started_ = false;
  bool interrupted_ = false;
  bool final_written_ = false;
  TimeMeter time_;
  AverageMeter losses_;
  int64_t steps_averaged_ = 0;  // steps in losses_
  double communicated_ = 0.0;   // collective_->seconds_communicating() at the last metrics row
  std::vector<Json> metric_rows_;
  std::vector<Json> eval_rows_;
};

Trainer::Trainer(const Json& config, std::shared_ptr<const Dataset> data,
                 const TrainOptions& options)
    : Trainer(config, std::move(data), nullptr, options) {}

Trainer::Trainer(const Json& config, std::shared_ptr<const Dataset> data,
                 std::shared_ptr<const Dataset> source, const TrainOptions& options)
    : impl_(std::make_unique<Impl>(config, std::move(data), std::move(source), options)) {}

Trainer::Trainer(const RunOptions& run, std::shared_ptr<const Dataset> data,
                 const TrainOptions& options)
    : Trainer(run.to_json(), std::move(data), nullptr, options) {}

Trainer::Trainer(const RunOptions& run, std::shared_ptr<const Dataset> data,
                 std::shared_ptr<const Dataset> source, const TrainOptions& options)
    : Trainer(run.to_json(), std::move(data), std::move(source), options) {}

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Trainer Trainer::resume(const std::string& run_dir, std::shared_ptr<const Dataset> data,
                        TrainOptions options,
                        const std::vector<std::pair<std::string, Json>>& changes,
                        std::shared_ptr<const Dataset> source) {
  options.resume_dir = run_dir;
  RunRequest request;
  request.resume_dir = run_dir;
  request.flags = changes;
  return Trainer(resolve_run_request(request), std::move(data), std::move(source), options);
}

Trainer::~Trainer() = default;
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;

int64_t Trainer::step(int64_t n) {
  if (n < 0) {
    throw ConfigError("Trainer::step: n must be >= 0, got " + std::to_string(n));
  }
  return impl_->step(n);
}

TrainResult Trainer::run() {
  impl_->step(impl_->total_steps_ - impl_->step_);
  return TrainResult{run_dir(), impl_->step_, impl_->interrupted_};
}

void Trainer::checkpoint() {
  impl_->save_checkpoint();
}

torch::Tensor Trainer::sample(int64_t n, uint64_t seed, bool ema) {
  impl_->problem_.check_sample_count(n, "sample: n");
  auto gen = make_stream(seed, "sample");
  return impl_->problem_.to_data_space(impl_->method_->sample(n, gen, ema).cpu());
}

torch::Tensor Trainer::map(const torch::Tensor& x, uint64_t seed, bool ema) {
  auto points = impl_->problem_.inputs(x);
  auto& method = *impl_->method_;
  if (!method.maps_inputs()) {
    throw ConfigError("method '" + get<std::string>(impl_->config_, "method") +
                      "' does not map given inputs (its samples are not images of source points)");
  }
  auto gen = make_stream(seed, "sample");
  return impl_->problem_.to_data_space(method.transport(points.to(impl_->device_), gen, ema).cpu());
}

std::vector<Json> Trainer::evaluate() {
  return impl_->outputs_.evaluate(impl_->step_, -1, /*record=*/false).rows;
}

const std::vector<Json>& Trainer::metrics() const {
  return impl_->metric_rows_;
}
const std::vector<Json>& Trainer::evaluations() const {
  return impl_->eval_rows_;
}
WeightGroups Trainer::weights() {
  return impl_->method_->export_weights();
}
int64_t Trainer::current_step() const {
  return impl_->step_;
}
int64_t Trainer::total_steps() const {
  return impl_->total_steps_;
}
bool Trainer::finished() const {
  return impl_->step_ == impl_->total_steps_;
}
bool Trainer::interrupted() const {
  return impl_->interrupted_;
}
const std::string& Trainer::run_dir() const {
  return impl_->dir();
}
const Json& Trainer::config() const {
  return impl_->config_;
}
const Problem& Trainer::problem() const {
  return impl_->problem_;
}
Method& Trainer::method() {
  return *impl_->method_;
}

}  // namespace uotflow
