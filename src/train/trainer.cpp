// The training loop: resolved config -> run directory -> steps with logging, evaluation, snapshots
// and atomic checkpoints; exact resume from the newest checkpoint.
#include "uotflow/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/nets/nets.h"

#include "feature_eval.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kGridImages = 64;   // images in a snapshot grid (8 x 8)
constexpr int64_t kStripColumns = 8;  // images per phase in samples/phases.png

// Running means of the losses between two log ticks.
class LossMeter {
 public:
  void add(const std::map<std::string, double>& losses) {
    for (const auto& [k, v] : losses) {
      sums_[k] += v;
    }
    ++count_;
  }
  std::map<std::string, double> means() const {
    std::map<std::string, double> out;
    for (const auto& [k, v] : sums_) {
      out[k] = v / std::max<int64_t>(count_, 1);
    }
    return out;
  }
  void reset() {
    sums_.clear();
    count_ = 0;
  }

 private:
  std::map<std::string, double> sums_;
  int64_t count_ = 0;
};

std::string format_losses(const std::map<std::string, double>& losses) {
  std::ostringstream s;
  s << std::setprecision(4);
  for (const auto& [k, v] : losses) {
    s << " " << k << "=" << v;
  }
  return s.str();
}

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::max(0.0, seconds));
  std::ostringstream s;
  s << total / 3600 << ":" << zero_pad((total / 60) % 60, 2) << ":" << zero_pad(total % 60, 2);
  return s.str();
}

// Builds the method with its weights initialised from the run's "init" stream (LibTorch modules
// draw their initial weights from the global generator).
std::unique_ptr<Method> make_method(const Json& config, const Dataset& data, torch::Device device) {
  torch::manual_seed(derive_seed(get<uint64_t>(config, "seed"), "init"));
  return method_registry()
      .create(get<std::string>(config, "method"))
      .create(MethodContext{config, data, device});
}

class Run {
 public:
  Run(const Json& config, const TrainOptions& options)
      : config_(config),
        options_(options),
        seed_(get<uint64_t>(config, "seed")),
        device_(parse_device(get<std::string>(config, "device"))),
        data_(make_dataset(at_path(config, "data"))),
        method_(make_method(config_, *data_, device_)),
        streams_{make_stream(seed_, "data"), make_stream(seed_, "noise")} {
    total_steps_ = get<int64_t>(config, "train.steps");
    phases_ = method_->phases();
    if (!phases_.empty()) {
      // A phased method fixes the run's length; train.steps may only repeat it.
      const int64_t phased = phases_.back().end_step;
      if (total_steps_ != 0 && total_steps_ != phased) {
        throw ConfigError("train.steps is " + std::to_string(total_steps_) +
                          " but the phases of '" + get<std::string>(config, "method") + "' take " +
                          std::to_string(phased) + " steps; leave train.steps at 0");
      }
      total_steps_ = phased;
      config_["train"]["steps"] = phased;
    }
    if (total_steps_ <= 0) {
      throw ConfigError("train.steps must be > 0, got " + std::to_string(total_steps_));
    }
    for (const char* key :
         {"train.log_every", "train.eval_every", "train.checkpoint_every", "train.snapshot_every",
          "train.keep_last", "eval.n", "eval.n_projections"}) {
      if (get<int64_t>(config, key) < 0) {
        throw ConfigError(std::string("config key '") + key + "' must be >= 0");
      }
    }
    if (get<int64_t>(config, "train.phase_weights_every") < 0) {
      throw ConfigError("config key 'train.phase_weights_every' must be >= 0");
    }
    train_detail::FeatureEvaluator::validate(config_, *data_);
    eval_metrics_ = get<std::vector<std::string>>(config, "eval.metrics");
    for (const auto& m : eval_metrics_) {
      metric_registry().at(m);  // unknown names fail before the run starts
      if ((m == "modes" || m == "hq_fraction") && !data_->centres().defined()) {
        throw ConfigError("eval metric '" + m + "' needs a data set with known mode centres");
      }
    }
  }

  TrainResult run() {
    if (options_.resume_dir.empty()) {
      std::string name = options_.name;
      if (name.empty()) {
        name = get<std::string>(config_, "method") + "-" + get<std::string>(config_, "data.name");
      }
      run_dir_ = create_run_dir(options_.out_root, name);
      write_config();
      write_target();
      log("start: " + options_.command_line);
    } else {
      run_dir_ = options_.resume_dir;
      resume();
    }
    fs::create_directories(fs::path(run_dir_) / "checkpoints");
    fs::create_directories(fs::path(run_dir_) / "samples");
    fs::create_directories(fs::path(run_dir_) / "final");
    if (!phases_.empty()) {
      fs::create_directories(fs::path(run_dir_) / "phases");
    }
    log("device " + device_.str() + ", seed " + std::to_string(seed_) + ", steps " +
        std::to_string(step_) + " -> " + std::to_string(total_steps_));
    features_ = train_detail::FeatureEvaluator::create(
        config_, *data_, run_dir_, device_, [this](const std::string& line) { log(line); });

    const int64_t log_every = get<int64_t>(config_, "train.log_every");
    const int64_t eval_every = get<int64_t>(config_, "train.eval_every");
    const int64_t checkpoint_every = get<int64_t>(config_, "train.checkpoint_every");
    const int64_t snapshot_every = get<int64_t>(config_, "train.snapshot_every");
    auto due = [](int64_t step, int64_t every) { return every > 0 && step % every == 0; };

    if (step_ == 0 && get<bool>(config_, "eval.at_start")) {
      evaluate(-1);  // the untrained model: the baseline later evaluations improve on
    }
    TrainResult result;
    const auto start = Clock::now();
    auto tick_start = start;
    const int64_t first_step = step_;
    int64_t tick_first = step_;
    LossMeter meter;
    while (step_ < total_steps_) {
      if (options_.stop != nullptr && options_.stop->load()) {
        result.interrupted = true;
        break;
      }
      auto losses = method_->step(step_, streams_);
      for (const auto& [k, v] : losses) {
        if (!std::isfinite(v)) {
          std::ostringstream msg;
          msg << "non-finite " << k << " (" << v << ") at step " << step_ + 1 << "; ";
          const auto last = latest_checkpoint(run_dir_);
          msg << (last.empty() ? "no checkpoint was written yet"
                               : "the last good checkpoint is " + last);
          log("error: " + msg.str());
          throw RuntimeError(msg.str());
        }
      }
      ++step_;
      meter.add(losses);
      const bool last = step_ == total_steps_;
      if (due(step_, log_every) || last) {
        const double seconds = std::chrono::duration<double>(Clock::now() - tick_start).count();
        const double per_step = seconds / std::max<int64_t>(step_ - tick_first, 1);
        write_metrics(meter.means(), per_step, start);
        report_progress(meter.means(), first_step, start);
        meter.reset();
        tick_start = Clock::now();
        tick_first = step_;
      }
      const int64_t phase = phase_ending_at(step_);
      if (due(step_, eval_every) || last || phase >= 0) {
        evaluate(phase);
      }
      if (due(step_, snapshot_every) || last) {
        snapshot("step-" + zero_pad(step_, 7));
      }
      if (phase >= 0) {
        end_phase(phase);
      }
      if (due(step_, checkpoint_every) || last) {
        save_checkpoint();
      }
    }
    if (options_.progress != nullptr && options_.progress_is_terminal) {
      *options_.progress << "\n";
    }
    if (result.interrupted) {
      save_checkpoint();
      log("interrupted at step " + std::to_string(step_) + "; resume with --resume " + run_dir_);
    }
    write_final();
    log(result.interrupted ? "stopped" : "done at step " + std::to_string(step_));
    result.run_dir = run_dir_;
    result.step = step_;
    return result;
  }

 private:
  void write_config() {
    write_run_config(run_dir_, config_, device_.str(), options_.command_line);
  }

  void resume() {
    const auto path = latest_checkpoint(run_dir_);
    if (path.empty()) {
      throw ConfigError("run '" + run_dir_ + "' has no checkpoint to resume from");
    }
    torch::serialize::InputArchive archive;
    try {
      archive.load_from(path);
      torch::Tensor step;
      archive.read("step", step);
      step_ = step.item<int64_t>();
      load_generator_state(archive, "rng/data", streams_.data);
      load_generator_state(archive, "rng/noise", streams_.noise);
      torch::serialize::InputArchive method_archive;
      archive.read("method", method_archive);
      method_->load(method_archive);
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      what = what.substr(0, what.find('\n'));
      throw ConfigError("checkpoint '" + path + "' is corrupt or truncated (" + what + ")");
    }
    log("resume from " + path + " at step " + std::to_string(step_) + ": " + options_.command_line);
  }

  void save_checkpoint() {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(step_, torch::kInt64));
    save_generator_state(archive, "rng/data", streams_.data);
    save_generator_state(archive, "rng/noise", streams_.noise);
    torch::serialize::OutputArchive method_archive;
    method_->save(method_archive);
    archive.write("method", method_archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    const auto dir = fs::path(run_dir_) / "checkpoints";
    write_file_atomic((dir / ("step-" + zero_pad(step_, 8) + ".pt")).string(), bytes.str());
    prune_checkpoints(run_dir_, get<int64_t>(config_, "train.keep_last"));
  }

  // A fixed draw of the data, the same for every evaluation and snapshot: drawn once per size.
  const torch::Tensor& reference_samples(int64_t n) {
    auto& cached = reference_cache_[n];
    if (!cached.defined()) {
      auto gen = make_stream(seed_, "eval-reference");
      cached = data_->sample(n, gen);
    }
    return cached;
  }

  // The phase that ends after `step` steps, or -1 (end steps ascend: a binary search per step).
  int64_t phase_ending_at(int64_t step) const {
    const auto it = std::lower_bound(phases_.begin(), phases_.end(), step,
                                     [](const Phase& p, int64_t s) { return p.end_step < s; });
    return it != phases_.end() && it->end_step == step ? it - phases_.begin() : -1;
  }

  // Samples, their picture and the generators at the end of a phase, and a strip of the phases so
  // far.
  void end_phase(int64_t phase) {
    const std::string tag = "phase-" + zero_pad(phase, 4);
    const auto current = snapshot(tag);
    const int64_t every = get<int64_t>(config_, "train.phase_weights_every");
    const bool last_phase = phase + 1 == static_cast<int64_t>(phases_.size());
    if (last_phase || (every > 0 && (phase + 1) % every == 0)) {
      const auto dir = fs::path(run_dir_) / "phases" / tag;
      fs::create_directories(dir);
      for (const auto& [group, tensors] : method_->export_weights()) {
        if (group.rfind("generator", 0) == 0) {
          save_safetensors((dir / (group + ".safetensors")).string(), tensors);
        }
      }
    }
    if (data_->dim() < 2) {
      return;
    }
    // At most 10 panels, evenly spread over the phases done, the last one always shown.
    const int64_t done = phase + 1;
    const int64_t panels = std::min<int64_t>(done, 10);
    std::vector<torch::Tensor> samples;
    for (int64_t i = 0; i < panels; ++i) {
      const int64_t k = panels == 1 ? phase : i * phase / (panels - 1);
      // Earlier phases come from their files (they may predate a resume).
      const auto path = fs::path(run_dir_) / "samples" / ("phase-" + zero_pad(k, 4) + ".npy");
      if (k == phase) {
        samples.push_back(current);
      } else if (fs::exists(path)) {
        samples.push_back(load_npy(path.string()));
      }
    }
    const auto strip = (fs::path(run_dir_) / "samples" / "phases.png").string();
    if (is_image()) {
      // One row of the first kStripColumns snapshot images per phase shown.
      std::vector<torch::Tensor> rows;
      for (const auto& x : samples) {
        rows.push_back(as_images(x.slice(0, 0, kStripColumns)));
      }
      save_image_grid_png(strip, torch::cat(rows), kStripColumns, grid_scale());
      return;
    }
    for (auto& x : samples) {
      x = x.slice(1, 0, 2);
    }
    save_scatter_strip_png(strip, reference_samples(2000).slice(1, 0, 2), samples, plot_window(),
                           256);
  }

  PlotWindow plot_window() const {
    PlotWindow window;
    window.radius = data_->plot_radius();
    auto centre = data_->plot_centre();
    if (centre.defined()) {
      window.centre_x = centre[0].item<double>();
      window.centre_y = centre.numel() > 1 ? centre[1].item<double>() : 0.0;
    }
    return window;
  }

  // For Gaussian data: the target's mean and covariance, and the prior the flow starts from.
  void write_target() {
    const auto target = data_->gaussian();
    if (!target.mean.defined()) {
      return;
    }
    const double prior_std = get<double>(config_, "prior.std");
    Json out{{"mean", tensor_to_json(target.mean)},
             {"covariance", tensor_to_json(target.covariance)},
             {"precision", tensor_to_json(torch::linalg_inv(target.covariance))},
             {"prior", {{"mean", 0.0}, {"std", prior_std}}}};
    write_file_atomic((fs::path(run_dir_) / "target.json").string(), out.dump(2) + "\n");
  }

  // KL(Gaussian fit of the samples || exact), or NaN when the fit is singular (collapsed samples).
  static double fitted_kl(const torch::Tensor& samples, const GaussianFit& exact) {
    try {
      return gaussian_kl(fit_gaussian(samples), exact);
    } catch (const ConfigError&) {
      return std::numeric_limits<double>::quiet_NaN();
    }
  }

  // Rows for eval.jsonl: the configured metrics and, for a Gaussian target, the KL of the samples'
  // Gaussian fit to the target (target_kl) and, at the end of a phase of a KL flow, to the exact
  // Fokker-Planck solution at the phase's flow time (ou_kl).
  void evaluate(int64_t phase) {
    const int64_t n = get<int64_t>(config_, "eval.n");
    const auto target = data_->gaussian();
    if (n <= 0 || (eval_metrics_.empty() && !target.mean.defined() && !features_)) {
      return;
    }
    const uint64_t seed = derive_seed(seed_, "eval", step_);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const bool ema = method_->has_ema();
    auto samples = method_->sample(n, gen, ema).cpu();
    auto reference = reference_samples(n);
    MetricContext context;
    context.seed = seed;
    context.n_projections = get<int64_t>(config_, "eval.n_projections");
    context.centres = data_->centres();
    context.mode_std = data_->mode_std();
    std::ostringstream summary;
    summary << std::setprecision(5);
    const bool finite = torch::isfinite(samples).all().item<bool>();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto write_row = [&](const std::string& name, double value, double time,
                         const Json& extra = Json::object()) {
      Json row{{"step", step_}, {"metric", name}, {"value", value},
               {"n", n},        {"ema", ema},     {"seed", seed}};
      row.update(extra);
      if (phase >= 0) {
        row["phase"] = phase;
      }
      if (std::isfinite(time)) {
        row["time"] = time;
      }
      append_line((fs::path(run_dir_) / "eval.jsonl").string(), row.dump());
      summary << " " << name << "=" << value;
    };
    for (const auto& name : eval_metrics_) {
      write_row(name, finite ? compute_metric(name, samples, reference, context) : nan, nan);
    }
    if (features_) {
      for (const auto& record : features_->evaluate(samples, reference, seed)) {
        write_row(record.metric, record.value, nan, features_->provenance());
      }
    }
    if (target.mean.defined()) {
      const GaussianFit exact{target.mean, target.covariance};
      write_row("target_kl", finite ? fitted_kl(samples, exact) : nan, nan);
      const double time = phase >= 0 ? phases_[phase].flow_time : nan;
      if (std::isfinite(time)) {
        const double prior_std = get<double>(config_, "prior.std");
        const int64_t d = data_->dim();
        const GaussianFit start{torch::zeros({d}, torch::kDouble),
                                prior_std * prior_std * torch::eye(d, torch::kDouble)};
        write_row("ou_kl",
                  finite ? fitted_kl(samples, fokker_planck_gaussian(start, exact, time)) : nan,
                  time);
      }
    }
    log("eval step " + std::to_string(step_) + ":" + summary.str());
  }

  bool is_image() const {
    return !data_->image_shape().empty();
  }

  // x: [N, C*H*W] -> [N, C, H, W]
  torch::Tensor as_images(const torch::Tensor& x) const {
    const auto shape = data_->image_shape();
    return x.view({x.size(0), shape[0], shape[1], shape[2]});
  }

  // Small images are drawn at twice their size so the grids are readable.
  int64_t grid_scale() const {
    return data_->image_shape()[1] <= 32 ? 2 : 1;
  }

  // Writes samples/TAG.{npy,png} and returns the samples (float32, CPU): [2000, D] drawn over the
  // data, or for images [64, D] shown as an 8 x 8 grid. The seed is fixed, so snapshots compare.
  torch::Tensor snapshot(const std::string& tag) {
    const int64_t n = is_image() ? kGridImages : 2000;
    auto gen = make_stream(seed_, "snapshot");
    auto samples = method_->sample(n, gen, method_->has_ema()).cpu().to(torch::kFloat32);
    const auto dir = fs::path(run_dir_) / "samples";
    save_npy((dir / (tag + ".npy")).string(), samples);
    if (is_image()) {
      save_image_grid_png((dir / (tag + ".png")).string(), as_images(samples), 8, grid_scale());
      return samples;
    }
    auto reference = reference_samples(n);
    const PlotWindow window = plot_window();
    const auto png = (dir / (tag + ".png")).string();
    if (data_->dim() == 1) {
      save_histogram_png(png, reference, samples, window);
    } else {
      save_scatter_png(png, reference.slice(1, 0, 2), samples.slice(1, 0, 2), window);
    }
    return samples;
  }

  void write_final() {
    const auto dir = fs::path(run_dir_) / "final";
    for (const auto& [group, tensors] : method_->export_weights()) {
      save_safetensors((dir / (group + ".safetensors")).string(), tensors);
    }
    snapshot("final");
  }

  void write_metrics(const std::map<std::string, double>& losses, double per_step,
                     Clock::time_point start) {
    Json row{{"step", step_},
             {"time", std::chrono::duration<double>(Clock::now() - start).count()},
             {"sec_per_step", per_step}};
    for (const auto& [k, v] : losses) {
      row[k] = v;
    }
    for (const auto& [k, v] : method_->learning_rates()) {
      row[k] = v;
    }
    append_line((fs::path(run_dir_) / "metrics.jsonl").string(), row.dump());
  }

  void report_progress(const std::map<std::string, double>& losses, int64_t first_step,
                       Clock::time_point start) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = (step_ - first_step) / std::max(elapsed, 1e-9);
    const double eta = (total_steps_ - step_) / std::max(rate, 1e-9);
    std::ostringstream line;
    line << "step " << step_ << "/" << total_steps_ << " " << std::fixed << std::setprecision(1)
         << rate << " it/s eta " << format_duration(eta) << format_losses(losses);
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

  void log(const std::string& message) {
    log_line(run_dir_, message);
  }

  Json config_;
  TrainOptions options_;
  uint64_t seed_;
  torch::Device device_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Method> method_;
  TrainStreams streams_;
  std::vector<std::string> eval_metrics_;
  std::unique_ptr<train_detail::FeatureEvaluator> features_;
  std::map<int64_t, torch::Tensor> reference_cache_;
  std::string run_dir_;
  int64_t step_ = 0;
  int64_t total_steps_ = 0;
  std::vector<Phase> phases_;
};

Json common_defaults() {
  return Json{{"method", "uotm"},
              {"seed", nullptr},
              {"device", "cpu"},
              {"threads", 1},
              {"data", default_data_section()},
              {"prior", {{"std", 1.0}}},
              {"generator", default_generator_section()},
              {"potential", default_potential_section()},
              {"loss",
               {{"phi1", "kl"},
                {"phi2", "kl"},
                {"marginal_weight", 1.0},
                {"cost", "quadratic"},
                {"cost_scale", 1.0},
                {"cost_reduction", "sum"},
                {"r1_gamma", 0.0}}},
              {"train",
               {{"steps", 4000},
                {"batch_size", 256},
                {"d_steps", 1},
                {"lr_g", 1e-4},
                {"lr_d", 1e-4},
                {"beta1", 0.5},
                {"beta2", 0.9},
                {"lr_schedule", "constant"},
                {"lr_min", 0.0},
                {"lr_horizon", 0},
                {"ema_decay", 0.999},
                {"grad_clip", 0.0},
                {"log_every", 100},
                {"eval_every", 1000},
                {"snapshot_every", 1000},
                {"checkpoint_every", 1000},
                {"keep_last", 3},
                {"phase_weights_every", 1},
                {"autocast", "none"}}},
              {"eval",
               {{"n", 2000},
                {"at_start", false},
                {"n_projections", 500},
                {"metrics", Json::array({"sw2", "energy", "mean_error", "cov_error"})},
                {"features", train_detail::default_features_section()}}}};
}

}  // namespace

Json default_config(const std::string& method) {
  Json defaults = common_defaults();
  defaults["method"] = method;
  // A method adds its own sections and may change common defaults (e.g. sjko: loss.phi1).
  defaults.merge_patch(method_registry().create(method).default_sections());
  return defaults;
}

Json resolve_config(const Json& file_config, const std::vector<std::string>& sets,
                    const std::vector<std::pair<std::string, Json>>& flags) {
  // The method decides which sections exist, so find it first (file < --set).
  std::string method = "uotm";
  if (file_config.is_object() && file_config.contains("method")) {
    if (!file_config["method"].is_string()) {
      throw ConfigError("config key 'method' must be a string");
    }
    method = file_config["method"].get<std::string>();
  }
  for (const auto& s : sets) {
    if (s.rfind("method=", 0) == 0) {
      method = s.substr(7);
    }
  }
  Json config = default_config(method);
  apply_overrides(config, file_config, sets, flags);
  resolve_seed(config);
  return config;
}

Json load_run_config(const std::string& run_dir) {
  return resolve_config(read_run_config(run_dir), {}, {});
}

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw ConfigError("device '" + name + "' requested but CUDA is not available");
    }
    if (!device.is_cpu() && !device.is_cuda()) {
      throw ConfigError("unsupported device '" + name + "' (known: cpu, cuda, cuda:N)");
    }
    return device;
  } catch (const c10::Error&) {
    throw ConfigError("invalid device '" + name + "' (known: cpu, cuda, cuda:N)");
  }
}

TrainResult train(const Json& config, const TrainOptions& options) {
  Run run(config, options);
  return run.run();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto found = list_checkpoints(run_dir);
  return found.empty() ? "" : found.back().string();
}

namespace {

// A finished run's method with its final/ (or phases/phase-K/) generator weights loaded, on the
// CPU, and the run's data set.
struct LoadedRun {
  std::unique_ptr<Dataset> data;
  std::unique_ptr<Method> method;
};

LoadedRun load_trained_run(const std::string& run_dir, int64_t phase) {
  Json config = load_run_config(run_dir);
  config["device"] = "cpu";
  LoadedRun run;
  run.data = make_dataset(at_path(config, "data"));
  run.method = make_method(config, *run.data, torch::Device(torch::kCPU));
  WeightGroups weights;
  auto dir = fs::path(run_dir) / "final";
  if (phase >= 0) {
    const auto phases = run.method->phases();
    if (phases.empty()) {
      throw ConfigError("run '" + run_dir + "' (method '" + get<std::string>(config, "method") +
                        "') has no phases; leave out --phase");
    }
    if (phase >= static_cast<int64_t>(phases.size())) {
      throw ConfigError("--phase " + std::to_string(phase) + " is out of range: the run has " +
                        std::to_string(phases.size()) + " phases (0.." +
                        std::to_string(phases.size() - 1) + ")");
    }
    dir = fs::path(run_dir) / "phases" / ("phase-" + zero_pad(phase, 4));
    if (!fs::is_directory(dir)) {
      throw ConfigError("run '" + run_dir + "' has no weights for phase " + std::to_string(phase) +
                        " (no " + dir.string() +
                        "; unfinished, or skipped by train.phase_weights_every)");
    }
  } else if (!fs::is_directory(dir)) {
    throw ConfigError("run '" + run_dir + "' has no final/ weights yet");
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") {
      weights[e.path().stem().string()] = load_safetensors(e.path().string());
    }
  }
  try {
    run.method->import_weights(weights);
  } catch (const ConfigError& e) {
    throw ConfigError("run '" + run_dir + "' " + dir.filename().string() + "/: " + e.what());
  }
  return run;
}

}  // namespace

torch::Tensor sample_run(const std::string& run_dir, int64_t n, uint64_t seed, bool ema,
                         int64_t phase) {
  if (n <= 0) {
    throw ConfigError("--n must be > 0, got " + std::to_string(n));
  }
  auto run = load_trained_run(run_dir, phase);
  auto gen = make_stream(seed, "sample");
  return run.method->sample(n, gen, ema).cpu();
}

SeedSamples sample_run_seeds(const std::string& run_dir, const std::vector<uint64_t>& seeds,
                             bool ema, int64_t phase) {
  if (seeds.empty()) {
    throw ConfigError("--seeds: no seeds given");
  }
  auto run = load_trained_run(run_dir, phase);
  std::vector<torch::Tensor> rows;
  for (const auto seed : seeds) {
    // One draw per seed, so a seed's image does not depend on the other seeds asked for.
    auto gen = make_stream(seed, "sample");
    rows.push_back(run.method->sample(1, gen, ema).cpu());
  }
  return {torch::cat(rows), run.data->image_shape()};
}

}  // namespace uotflow
