// The SW-JKO loop: per step, freeze rho_k, minimise SW2^2(rho, rho_k) / (2 tau) + F(rho) for a
// fixed number of inner iterations (fresh batch and directions each), then evaluate and checkpoint.
#include "uotflow/flow/swgf.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/ot/sliced.h"
#include "uotflow/train/trainer.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

using Clock = std::chrono::steady_clock;

// An optimiser over the parametrization's tensors, new for every JKO step (the reference restarts
// it per step; this also makes a checkpoint at a step boundary the whole state).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name,
                                                        std::vector<torch::Tensor> params,
                                                        double lr, double momentum) {
  if (name == "adam") {
    return std::make_unique<torch::optim::Adam>(std::move(params), torch::optim::AdamOptions(lr));
  }
  if (name == "sgd") {
    return std::make_unique<torch::optim::SGD>(std::move(params),
                                               torch::optim::SGDOptions(lr).momentum(momentum));
  }
  throw ConfigError("unknown flow.optimizer '" + name + "' (known: default, adam, sgd)");
}

// log N(x; m, S) for the rows of x: [N, D] (float64).
torch::Tensor gaussian_log_prob(const torch::Tensor& x, const GaussianFit& g) {
  auto l = torch::linalg_cholesky(g.cov);
  auto diff = (x.to(torch::kDouble) - g.mean).t();  // [D, N]
  auto sol = torch::linalg_solve_triangular(l, diff, /*upper=*/false);
  const double d = static_cast<double>(x.size(1));
  return -0.5 * sol.pow(2).sum(0) - l.diagonal().log().sum() - 0.5 * d * std::log(2 * M_PI);
}

torch::Tensor gaussian_draw(const GaussianFit& g, int64_t n, at::Generator& gen) {
  auto l = torch::linalg_cholesky(g.cov);
  return g.mean + torch::randn({n, g.mean.size(0)}, gen, torch::kDouble).matmul(l.t());
}

class FlowRun {
 public:
  FlowRun(const Json& config, const FlowOptions& options)
      : config_(config),
        options_(options),
        seed_(get<uint64_t>(config, "seed")),
        device_(parse_device(get<std::string>(config, "device"))),
        stream_(make_stream(seed_, "flow")) {
    const auto requested = get<int64_t>(config, "dim");
    if (requested < 0) {
      throw ConfigError("config key 'dim' must be >= 0 (0 = the functional's own)");
    }
    functional_ = make_functional(at_path(config, "functional"), requested);
    dim_ = requested != 0 ? requested : functional_->dim();
    if (dim_ == 0) {
      throw ConfigError("functional '" + get<std::string>(config, "functional.name") +
                        "' does not fix a dimension; set 'dim'");
    }
    // Net initialisations draw from the global generator: seed it from the run's seed.
    torch::manual_seed(derive_seed(seed_, "init"));
    rho_ = make_parametrization(at_path(config, "parametrization"), dim_, device_);
    if (functional_->needs_entropy() && !rho_->has_entropy()) {
      throw ConfigError("functional '" + get<std::string>(config, "functional.name") +
                        "' needs an entropy estimate, which parametrization '" +
                        get<std::string>(config, "parametrization.name") +
                        "' cannot give (use realnvp, particles or grid)");
    }
    for (const char* key : {"flow.n_steps", "flow.inner_iterations", "flow.batch_size",
                            "flow.n_projections", "eval.n"}) {
      if (get<int64_t>(config, key) < 1) {
        throw ConfigError(std::string("config key '") + key + "' must be >= 1");
      }
    }
    for (const char* key : {"flow.jko_step_size", "flow.lr", "flow.lr_first"}) {
      if (!(get<double>(config, key) > 0)) {
        throw ConfigError(std::string("config key '") + key + "' must be > 0");
      }
    }
    optimizer_ = get<std::string>(config, "flow.optimizer");
    if (optimizer_ == "default") {
      optimizer_ = rho_->default_optimizer();
    }
    make_optimizer(optimizer_, {}, 1.0, 0.0);  // unknown names fail before anything is written
    n_steps_ = get<int64_t>(config, "flow.n_steps");
    tau_ = get<double>(config, "flow.jko_step_size");
    target_ = functional_->gaussian_target();
    const auto start_mean = get<Json>(config, "parametrization.init.mean");
    const double start_std = get<double>(config, "parametrization.init.std");
    start_ = GaussianFit{start_mean.is_number()
                             ? torch::full({dim_}, start_mean.get<double>(), torch::kDouble)
                             : torch::tensor(start_mean.get<std::vector<double>>(), torch::kDouble),
                         start_std * start_std * torch::eye(dim_, torch::kDouble)};
  }

  FlowResult run() {
    if (options_.resume_dir.empty()) {
      std::string name = options_.name;
      if (name.empty()) {
        name = "swgf-" + get<std::string>(config_, "functional.name") + "-" +
               get<std::string>(config_, "parametrization.name");
      }
      run_dir_ = create_run_dir(options_.out_root, name);
      write_run_config(run_dir_, config_, device_.str(), options_.command_line);
      write_target();
      log("start: " + options_.command_line);
    } else {
      run_dir_ = options_.resume_dir;
      resume();
    }
    for (const char* sub : {"checkpoints", "samples", "plots", "final"}) {
      fs::create_directories(fs::path(run_dir_) / sub);
    }
    log("device " + device_.str() + ", seed " + std::to_string(seed_) + ", dim " +
        std::to_string(dim_) + ", JKO steps " + std::to_string(step_) + " -> " +
        std::to_string(n_steps_));
    if (step_ == 0 && !fs::exists(fs::path(run_dir_) / "samples" / "step-0000.npy")) {
      evaluate();  // rho_0, so every curve starts at t = 0
    }
    FlowResult result;
    while (step_ < n_steps_) {
      if (!jko_step()) {
        result.interrupted = true;
        log("interrupted in JKO step " + std::to_string(step_ + 1) + "; resume with --resume " +
            run_dir_ + " (from step " + std::to_string(step_) + ")");
        break;
      }
      ++step_;
      evaluate();
      save_checkpoint();
    }
    if (!result.interrupted) {
      save_safetensors((fs::path(run_dir_) / "final" / "model.safetensors").string(),
                       rho_->export_weights());
      log("done at JKO step " + std::to_string(step_));
    }
    result.run_dir = run_dir_;
    result.step = step_;
    return result;
  }

 private:
  // One JKO step; false when stopped by a signal (the step is then discarded).
  bool jko_step() {
    const auto start = Clock::now();
    rho_->freeze();
    const double lr = get<double>(config_, step_ == 0 ? "flow.lr_first" : "flow.lr");
    const auto params = rho_->parameters();
    auto optimizer = make_optimizer(optimizer_, params, lr, get<double>(config_, "flow.momentum"));
    const int64_t iterations = get<int64_t>(config_, "flow.inner_iterations");
    const int64_t batch = get<int64_t>(config_, "flow.batch_size");
    const int64_t n_projections = get<int64_t>(config_, "flow.n_projections");
    const bool entropy = functional_->needs_entropy();
    const double scale = rho_->gradient_scale();
    // Running sums of the terms stay tensors (one read at the end); only the objective is read per
    // iteration, for the finiteness check.
    double sum_loss = 0.0;
    torch::Tensor sum_sw, sum_f;
    for (int64_t it = 0; it < iterations; ++it) {
      if (options_.stop != nullptr && options_.stop->load()) {
        return false;
      }
      FlowBatch now = rho_->draw(batch, stream_, entropy);
      now.gen = &stream_;
      FlowBatch before = rho_->draw_previous(batch, stream_);
      auto theta = random_directions(dim_, n_projections, stream_, now.x.options());
      auto sw = sliced_wasserstein_pp(now.x, before.x, theta, 2.0, now.weights, before.weights);
      auto f = functional_->value(now);
      auto loss = sw / (2.0 * tau_) + f;
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        const auto found = list_checkpoints(run_dir_);
        std::ostringstream msg;
        msg << "non-finite objective (" << value << ") in JKO step " << step_ + 1
            << ", inner iteration " << it + 1 << "; "
            << (found.empty() ? "no checkpoint was written yet"
                              : "the last good checkpoint is " + found.back().string());
        log("error: " + msg.str());
        throw RuntimeError(msg.str());
      }
      optimizer->zero_grad();
      loss.backward();
      if (scale != 1.0) {
        torch::NoGradGuard no_grad;
        for (const auto& p : params) {
          p.mutable_grad().mul_(scale);
        }
      }
      optimizer->step();
      rho_->project();
      sum_loss += value;
      sum_sw = sum_sw.defined() ? sum_sw + sw.detach() : sw.detach();
      sum_f = sum_f.defined() ? sum_f + f.detach() : f.detach();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double n = static_cast<double>(iterations);
    Json row{{"step", step_ + 1},
             {"sw_time", (step_ + 1) * tau_},
             {"objective", sum_loss / n},
             {"sw2_previous", sum_sw.item<double>() / n},
             {"functional", sum_f.item<double>() / n},
             {"lr", lr},
             {"seconds", seconds},
             {"sec_per_iteration", seconds / n}};
    append_line((fs::path(run_dir_) / "metrics.jsonl").string(), row.dump());
    return true;
  }

  // Rows for eval.jsonl after `step_` JKO steps, the samples and pictures of the step, the plots.
  void evaluate() {
    const int64_t n = get<int64_t>(config_, "eval.n");
    const uint64_t seed = derive_seed(seed_, "eval", step_);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const FlowBatch drawn = rho_->sample(n, gen);
    const double sw_time = step_ * tau_;
    const double w_time = sw_time * dim_;
    std::ostringstream summary;
    summary << std::setprecision(5);
    auto write_row = [&](const std::string& name, double value, const Json& extra) {
      Json row{{"step", step_},    {"metric", name},       {"value", value}, {"sw_time", sw_time},
               {"w_time", w_time}, {"n", drawn.x.size(0)}, {"seed", seed}};
      row.update(extra);
      append_line((fs::path(run_dir_) / "eval.jsonl").string(), row.dump());
      add_to_curve(row);
      summary << " " << name << "=" << value;
    };
    {
      // The objective's terms on an evaluation batch (no gradient).
      torch::NoGradGuard no_grad;
      FlowBatch batch = rho_->draw(n, gen, functional_->needs_entropy());
      batch.gen = &gen;
      for (const auto& [name, value] : functional_->terms(batch)) {
        write_row("functional_" + name, value, Json::object());
      }
    }
    for (const auto& [name, value] : functional_->diagnostics(drawn.x, drawn.weights)) {
      write_row(name, value, Json::object());
    }
    if (target_.mean.defined()) {
      const GaussianFit stationary{target_.mean, target_.covariance};
      write_row(
          "target_kl",
          fitted(drawn.x, [&](const GaussianFit& fit) { return gaussian_kl(fit, stationary); }),
          Json::object());
      for (const auto& [name, time] :
           {std::pair<std::string, double>{"sym_kl_w_time", w_time}, {"sym_kl_sw_time", sw_time}}) {
        auto [value, estimator] =
            symmetric_kl(drawn.x, fokker_planck_gaussian(start_, stationary, time), gen);
        write_row(name, value, Json{{"time", time}, {"estimator", estimator}});
      }
    }
    log("eval JKO step " + std::to_string(step_) + ":" + summary.str());
    write_samples(drawn);
    plot_metrics();
    if (options_.progress != nullptr) {
      *options_.progress << "step " << step_ << "/" << n_steps_ << " t_sw=" << sw_time
                         << " t_w=" << w_time << summary.str() << "\n"
                         << std::flush;
    }
  }

  // A Gaussian-fit statistic of samples, or NaN when the fit is singular or samples not finite.
  template <typename F>
  static double fitted(const torch::Tensor& x, F&& statistic) {
    if (!torch::isfinite(x).all().item<bool>()) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    try {
      return statistic(fit_gaussian(x));
    } catch (const ConfigError&) {
      return std::numeric_limits<double>::quiet_NaN();
    }
  }

  // KL(rho | exact) + KL(exact | rho): Monte Carlo with rho's own density where the
  // parametrization has one (x ~ rho given, as many draws from the exact solution), else between
  // the Gaussian fit of x and the exact solution.
  std::pair<double, std::string> symmetric_kl(const torch::Tensor& x, const GaussianFit& exact,
                                              at::Generator& gen) {
    if (!rho_->has_density()) {
      return {fitted(x, [&](const GaussianFit& fit) { return gaussian_symmetric_kl(fit, exact); }),
              "gaussian_fit"};
    }
    auto y = gaussian_draw(exact, x.size(0), gen).to(torch::kFloat32);
    auto forward = (rho_->log_density(x).to(torch::kDouble) - gaussian_log_prob(x, exact)).mean();
    auto backward = (gaussian_log_prob(y, exact) - rho_->log_density(y).to(torch::kDouble)).mean();
    return {(forward + backward).item<double>(), "density"};
  }

  void write_samples(const FlowBatch& drawn) {
    const auto dir = fs::path(run_dir_) / "samples";
    const std::string tag = "step-" + zero_pad(step_, 4);
    const int64_t keep = std::min<int64_t>(drawn.x.size(0), get<int64_t>(config_, "eval.n_saved"));
    auto x = drawn.x.slice(0, 0, keep).contiguous();
    save_npy((dir / (tag + ".npy")).string(), x);
    if (dim_ != 2) {
      return;
    }
    PlotWindow window;
    window.radius = get<double>(config_, "eval.plot_radius");
    if (window.radius <= 0) {
      window.radius = std::max(1e-3, 1.1 * x.abs().max().item<double>());
    }
    save_scatter_png((dir / (tag + ".png")).string(), torch::Tensor(), x, window);
    // A strip of at most 10 steps, evenly spread, the newest always shown.
    const int64_t panels = std::min<int64_t>(step_ + 1, 10);
    std::vector<torch::Tensor> strip;
    for (int64_t i = 0; i < panels; ++i) {
      const int64_t k = panels == 1 ? step_ : i * step_ / (panels - 1);
      const auto path = dir / ("step-" + zero_pad(k, 4) + ".npy");
      if (k == step_) {
        strip.push_back(x);
      } else if (fs::exists(path)) {
        strip.push_back(load_npy(path.string()));
      }
    }
    save_scatter_strip_png((dir / "steps.png").string(), torch::Tensor(), strip, window, 256);
  }

  // One eval.jsonl row on its metric's curve: against W-time for *_w_time metrics, SW-time
  // otherwise.
  void add_to_curve(const Json& row) {
    const auto name = row["metric"].get<std::string>();
    const bool w = name.size() > 7 && name.compare(name.size() - 7, 7, "_w_time") == 0;
    auto& [t, v] = curves_[name];
    t.push_back(row[w ? "w_time" : "sw_time"].get<double>());
    v.push_back(row["value"].is_number() ? row["value"].get<double>()
                                         : std::numeric_limits<double>::quiet_NaN());
  }

  // plots/METRIC.png: each metric's curve so far.
  void plot_metrics() {
    for (const auto& [name, curve] : curves_) {
      save_line_plot_png((fs::path(run_dir_) / "plots" / (name + ".png")).string(), curve.first,
                         {curve.second});
    }
  }

  void write_target() {
    if (!target_.mean.defined()) {
      return;
    }
    Json out{{"mean", tensor_to_json(target_.mean)},
             {"covariance", tensor_to_json(target_.covariance)},
             {"precision", tensor_to_json(torch::linalg_inv(target_.covariance))},
             {"start",
              {{"mean", tensor_to_json(start_.mean)}, {"covariance", tensor_to_json(start_.cov)}}}};
    write_file_atomic((fs::path(run_dir_) / "target.json").string(), out.dump(2) + "\n");
  }

  void save_checkpoint() {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(step_, torch::kInt64));
    save_generator_state(archive, "rng/flow", stream_);
    torch::serialize::OutputArchive state;
    rho_->save(state);
    archive.write("parametrization", state);
    std::ostringstream bytes;
    archive.save_to(bytes);
    const auto path = fs::path(run_dir_) / "checkpoints" / ("step-" + zero_pad(step_, 8) + ".pt");
    write_file_atomic(path.string(), bytes.str());
    prune_checkpoints(run_dir_, get<int64_t>(config_, "eval.keep_checkpoints"));
  }

  void resume() {
    const auto found = list_checkpoints(run_dir_);
    if (found.empty()) {
      throw ConfigError("run '" + run_dir_ + "' has no checkpoint to resume from");
    }
    const auto path = found.back().string();
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(path);
      torch::Tensor step;
      archive.read("step", step);
      step_ = step.item<int64_t>();
      load_generator_state(archive, "rng/flow", stream_);
      torch::serialize::InputArchive state;
      archive.read("parametrization", state);
      rho_->load(state);
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      throw ConfigError("checkpoint '" + path + "' is corrupt or truncated (" +
                        what.substr(0, what.find('\n')) + ")");
    }
    // The curves so far, so the plots of a resumed run are whole.
    const auto eval_path = fs::path(run_dir_) / "eval.jsonl";
    if (fs::exists(eval_path)) {
      std::istringstream lines(read_file(eval_path.string()));
      for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) {
          add_to_curve(Json::parse(line));
        }
      }
    }
    log("resume from " + path + " at JKO step " + std::to_string(step_) + ": " +
        options_.command_line);
  }

  void log(const std::string& message) {
    log_line(run_dir_, message);
  }

  Json config_;
  FlowOptions options_;
  uint64_t seed_;
  torch::Device device_;
  at::Generator stream_;
  std::unique_ptr<Functional> functional_;
  std::unique_ptr<Parametrization> rho_;
  std::string optimizer_;
  std::string run_dir_;
  int64_t dim_ = 0;
  int64_t n_steps_ = 0;
  int64_t step_ = 0;
  double tau_ = 0.05;
  GaussianParams target_;
  GaussianFit start_;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> curves_;
};

}  // namespace

Json default_flow_config() {
  return Json{
      {"seed", nullptr},
      {"device", "cpu"},
      {"threads", 1},
      {"dim", 0},
      {"functional", {{"name", "kl"}, {"params", Json::object()}}},
      {"parametrization", default_parametrization_section()},
      {"flow",
       {{"n_steps", 10},
        {"jko_step_size", 0.05},
        {"inner_iterations", 200},
        {"batch_size", 1024},
        {"n_projections", 1000},
        {"optimizer", "default"},
        {"lr", 1e-3},
        {"lr_first", 5e-3},
        {"momentum", 0.9}}},
      {"eval", {{"n", 10000}, {"n_saved", 2000}, {"plot_radius", 0.0}, {"keep_checkpoints", 3}}}};
}

Json resolve_flow_config(const Json& file_config, const std::vector<std::string>& sets,
                         const std::vector<std::pair<std::string, Json>>& flags) {
  Json config = default_flow_config();
  apply_overrides(config, file_config, sets, flags);
  resolve_seed(config);
  return config;
}

Json load_flow_run_config(const std::string& run_dir) {
  return resolve_flow_config(read_run_config(run_dir), {}, {});
}

FlowResult run_flow(const Json& config, const FlowOptions& options) {
  FlowRun run(config, options);
  return run.run();
}

}  // namespace uotflow
