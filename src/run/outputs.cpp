// What a run writes at evaluations, snapshots, phase ends and its end.
#include "outputs.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>
#include <tuple>

#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/run_dir.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/methods/jko.h"
#include "uotflow/metrics/gaussian.h"
#include "uotflow/metrics/metrics.h"
#include "uotflow/metrics/mixture.h"
#include "uotflow/run/report.h"

namespace fs = std::filesystem;

namespace uotflow::run_detail {
namespace {

constexpr int64_t kGridImages = 64;   // images in a snapshot grid (8 x 8)
constexpr int64_t kStripColumns = 8;  // images per phase in samples/phases.png
constexpr int64_t kSnapshotPoints = 2000;
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// KL(Gaussian fit of the samples || exact), or NaN when the fit is singular (collapsed samples).
double fitted_kl(const torch::Tensor& samples, const GaussianFit& exact) {
  try {
    return gaussian_kl(fit_gaussian(samples), exact);
  } catch (const ConfigError&) {
    return kMissing;
  }
}

}  // namespace

RunOutputs::RunOutputs(const Json& config, const Problem& problem, Method& method,
                       std::vector<Phase> phases)
    : config_(config),
      own_problem_(problem),
      problem_(problem.data_space()),
      method_(method),
      phases_(std::move(phases)),
      seed_(get<uint64_t>(config, "seed")),
      metrics_(get<std::vector<std::string>>(config, "eval.metrics")) {
  for (size_t i = 0; i < metrics_.size(); ++i) {
    const auto& m = metrics_[i];
    metric_registry().at(m);  // unknown names fail before the run starts
    if (std::find(metrics_.begin(), metrics_.begin() + i, m) != metrics_.begin() + i) {
      throw ConfigError("eval.metrics lists '" + m + "' more than once");
    }
    if (!problem_.target) {
      throw ConfigError("eval metric '" + m + "' compares with the target data, and method '" +
                        get<std::string>(config, "method") +
                        "' has none; leave eval.metrics "
                        "empty");
    }
  }
  const int64_t n = get<int64_t>(config, "eval.n");
  check_fits_in_memory("eval.n", 2.0 * n * problem_.dim * sizeof(float));
  if (n > 0) {
    // What each metric needs at the run's eval size fails now rather than at the first evaluation.
    for (const auto& m : metrics_) {
      try {
        check_metric(m, n, n, problem_.dim, metric_context(0));
      } catch (const ConfigError& e) {
        throw ConfigError("eval metric '" + m + "' with eval.n = " + std::to_string(n) + ": " +
                          e.what());
      }
    }
  }
  if (problem_.target) {
    FeatureEvaluator::validate(config_, *problem_.target);
  } else if (!get<std::vector<std::string>>(config, "eval.features.metrics").empty()) {
    throw ConfigError("eval.features.metrics need an image data set as the target");
  }
}

void RunOutputs::open(const std::string& run_dir, torch::Device device, const Log& log) {
  run_dir_ = run_dir;
  for (const char* sub : {"samples", "plots", "final"}) {
    fs::create_directories(fs::path(run_dir_) / sub);
  }
  if (!phases_.empty()) {
    fs::create_directories(fs::path(run_dir_) / "phases");
  }
  if (problem_.target) {
    features_ = FeatureEvaluator::create(config_, *problem_.target, run_dir_, device, log);
  }
  // The curves so far, so that the plots of a resumed run are whole.
  const auto eval_path = fs::path(run_dir_) / "eval.jsonl";
  if (fs::exists(eval_path)) {
    std::istringstream lines(read_file(eval_path.string()));
    for (std::string line; std::getline(lines, line);) {
      Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_object()) {  // a line torn by a kill is not
        add_to_curve(row);
      }
    }
  }
}

void RunOutputs::write_target() const {
  const auto target = problem_.target_gaussian();
  if (!target.mean.defined()) {
    return;
  }
  Json out{{"mean", tensor_to_json(target.mean)},
           {"covariance", tensor_to_json(target.covariance)},
           {"precision", tensor_to_json(torch::linalg_inv(target.covariance))}};
  const auto source = problem_.source->gaussian();
  if (source.mean.defined()) {
    out["source"] = Json{{"mean", tensor_to_json(source.mean)},
                         {"covariance", tensor_to_json(source.covariance)}};
  }
  write_file_atomic((fs::path(run_dir_) / "target.json").string(), out.dump(2) + "\n");
}

bool RunOutputs::maps_source_points() const {
  return problem_.translation && problem_.source && method_.maps_inputs();
}

RunOutputs::Draw RunOutputs::draw(int64_t n, at::Generator& gen, bool ema) {
  Draw drawn;
  if (!maps_source_points()) {
    drawn.own = method_.sample(n, gen, ema).cpu().to(torch::kFloat32);
    drawn.samples = own_problem_.to_data_space(drawn.own);
    return drawn;
  }
  std::tie(drawn.inputs, drawn.input_labels) = problem_.source->sample_labelled(n, gen);
  drawn.samples = method_.transport(drawn.inputs, gen, ema).cpu().to(torch::kFloat32);
  drawn.own = drawn.samples;
  return drawn;
}

// Between two mixtures with as many components: classes by nearest centre. Between two labelled
// image sets with as many classes: the inputs' labels against the classes the run's classifier
// (trained on the target) gives their images. Classes are paired by their order.
void RunOutputs::add_class_preservation(
    const Draw& drawn, bool finite,
    const std::function<void(const std::string&, double, const Json&)>& write_row) {
  const auto& source = *problem_.source;
  const auto& target = *problem_.target;
  std::optional<ClassPreservation> kept;
  const auto source_centres = source.centres();
  const auto target_centres = target.centres();
  if (source_centres.defined() && target_centres.defined() &&
      source_centres.sizes() == target_centres.sizes()) {
    if (finite) {
      kept = class_preservation(drawn.inputs.to(torch::kFloat64), drawn.samples.to(torch::kFloat64),
                                source_centres, target_centres, target.mode_std());
    }
  } else if (drawn.input_labels.defined() && features_ && source.n_classes() > 0 &&
             source.n_classes() == target.n_classes()) {
    if (finite) {
      const auto image_labels = features_->classify(drawn.samples);
      if (!image_labels.defined()) {
        return;  // a TorchScript extractor: no classes
      }
      kept = class_preservation(drawn.input_labels, image_labels, source.n_classes());
    }
  } else {
    return;
  }
  if (!kept) {
    write_row("class_preservation", kMissing, Json::object());
    return;
  }
  write_row("class_preservation", kept->rate,
            Json{{"per_class", kept->per_class}, {"target_share", kept->target_share}});
}

// A fixed draw of the data, the same for every evaluation and snapshot: drawn once per size.
const torch::Tensor& RunOutputs::reference_samples(int64_t n) {
  auto& cached = reference_cache_[n];
  if (!cached.defined()) {
    auto gen = make_stream(seed_, "eval-reference");
    cached = problem_.target->sample(n, gen);
  }
  return cached;
}

// Rows for eval.jsonl: the configured metrics against the target data, feature metrics, for a
// Gaussian target the KL of the samples' Gaussian fit to it (target_kl) and, at the end of a phase
// of a KL flow, to the exact Fokker-Planck solution at the phase's time (ou_kl), and the method's
// own rows.
RunOutputs::Evaluation RunOutputs::evaluate(int64_t step, int64_t phase, bool record) {
  const int64_t n = get<int64_t>(config_, "eval.n");
  const auto target = problem_.target_gaussian();
  Evaluation evaluation;
  if (n <= 0) {
    return evaluation;
  }
  record = record && !run_dir_.empty();
  const uint64_t seed = derive_seed(seed_, "eval", step);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const bool ema = method_.has_ema();
  const auto drawn = draw(n, gen, ema);
  const auto& inputs = drawn.inputs;
  const auto& samples = drawn.samples;
  std::ostringstream summary;
  summary << std::setprecision(5);
  const bool finite = torch::isfinite(samples).all().item<bool>();
  std::string rows;  // appended at once: a stopped evaluation leaves all its rows or none
  auto write_row = [&](const std::string& name, double value, const Json& extra) {
    Json row{{"step", step},         {"metric", name}, {"value", value},
             {"n", samples.size(0)}, {"ema", ema},     {"seed", seed}};
    row.update(extra);
    if (phase >= 0) {
      row["phase"] = phase;
    }
    rows += (rows.empty() ? "" : "\n") + row.dump();
    if (record) {
      add_to_curve(row);
    }
    summary << " " << name << "=" << value;
    evaluation.rows.push_back(std::move(row));
  };
  if (!metrics_.empty()) {
    const auto& reference = reference_samples(n);
    const auto context = metric_context(seed);
    for (const auto& name : metrics_) {
      write_row(name, finite ? compute_metric(name, samples, reference, context) : kMissing,
                Json::object());
    }
  }
  if (features_) {
    const auto& reference = reference_samples(n);
    for (const auto& record : features_->evaluate(samples, reference, seed)) {
      write_row(record.metric, record.value, features_->provenance());
    }
  }
  if (target.mean.defined()) {
    const GaussianFit exact{target.mean, target.covariance};
    write_row("target_kl", finite ? fitted_kl(samples, exact) : kMissing, Json::object());
    const double time = phase >= 0 ? phases_[phase].flow_time : kMissing;
    const GaussianFlowCheck check(problem_);
    if (std::isfinite(time) && check.defined()) {
      write_row("ou_kl", finite ? check.fitted_kl(samples, time) : kMissing, Json{{"time", time}});
    }
  }
  if (inputs.defined()) {
    // A translation: the map's cost and, between mixtures with paired components, its classes.
    const auto x = inputs.to(torch::kFloat64);
    const auto y = samples.to(torch::kFloat64);
    write_row("transport_cost", finite ? (y - x).square().sum(1).mean().item<double>() : kMissing,
              Json::object());
    if (problem_.target) {
      add_class_preservation(drawn, finite, write_row);
    }
  }
  for (const auto& row : method_.evaluate(drawn.own, gen)) {
    write_row(row.metric, row.value, row.extra);
  }
  if (record) {
    if (!rows.empty()) {
      append_line((fs::path(run_dir_) / "eval.jsonl").string(), rows);
    }
    plot_curves();
  }
  evaluation.summary = summary.str();
  return evaluation;
}

MetricContext RunOutputs::metric_context(uint64_t seed) const {
  MetricContext context;
  context.seed = seed;
  context.n_projections = get<int64_t>(config_, "eval.n_projections");
  context.centres = problem_.target->centres();
  context.mode_std = problem_.target->mode_std();
  return context;
}

PlotWindow RunOutputs::plot_window(const torch::Tensor& samples) const {
  PlotWindow window;
  const double radius = get<double>(config_, "eval.plot_radius");
  if (radius > 0) {
    window.radius = radius;
  } else if (problem_.target) {
    // A data set's own window; for a translation the square holding the source's and target's.
    auto window_of = [](const Dataset& set) {
      PlotWindow w;
      w.radius = set.plot_radius();
      auto centre = set.plot_centre();
      if (centre.defined()) {
        w.centre_x = centre[0].item<double>();
        w.centre_y = centre.numel() > 1 ? centre[1].item<double>() : 0.0;
      }
      return w;
    };
    window = window_of(*problem_.target);
    if (maps_source_points()) {
      const auto other = window_of(*problem_.source);
      const double lo_x = std::min(window.centre_x - window.radius, other.centre_x - other.radius);
      const double hi_x = std::max(window.centre_x + window.radius, other.centre_x + other.radius);
      const double lo_y = std::min(window.centre_y - window.radius, other.centre_y - other.radius);
      const double hi_y = std::max(window.centre_y + window.radius, other.centre_y + other.radius);
      window.centre_x = (lo_x + hi_x) / 2.0;
      window.centre_y = (lo_y + hi_y) / 2.0;
      window.radius = std::max(hi_x - lo_x, hi_y - lo_y) / 2.0;
    }
  } else {
    const auto finite = samples.isfinite().all().item<bool>();
    window.radius = finite ? std::max(1e-3, 1.1 * samples.abs().max().item<double>()) : 1.0;
  }
  return window;
}

// x: [N, C*H*W] -> [N, C, H, W]
torch::Tensor RunOutputs::as_images(const torch::Tensor& x) const {
  const auto& shape = problem_.image_shape;
  return x.view({x.size(0), shape[0], shape[1], shape[2]});
}

// Small images are drawn at twice their size so the grids are readable.
int64_t RunOutputs::grid_scale() const {
  return problem_.image_shape[1] <= 32 ? 2 : 1;
}

// [2000, D] points drawn over the data (or alone), or for images [64, D] shown as an 8 x 8 grid.
// The seed is fixed, so snapshots compare.
torch::Tensor RunOutputs::snapshot(const std::string& tag) {
  const int64_t n = problem_.is_image() ? kGridImages : kSnapshotPoints;
  auto gen = make_stream(seed_, "snapshot");
  const auto drawn = draw(n, gen, method_.has_ema());
  const auto& inputs = drawn.inputs;
  const auto samples = drawn.samples.contiguous();
  const auto dir = fs::path(run_dir_) / "samples";
  save_npy((dir / (tag + ".npy")).string(), samples);
  const auto png = (dir / (tag + ".png")).string();
  if (problem_.is_image()) {
    // "step-0001000" -> "RUN: step 1000", "phase-0003" -> "RUN: phase 3", "final" -> "RUN: final"
    std::string what = tag;
    const auto dash = tag.find('-');
    if (dash != std::string::npos) {
      what = tag.substr(0, dash) + " " + std::to_string(std::stoll(tag.substr(dash + 1)));
    }
    if (inputs.defined()) {
      // A translation: rows of 8 inputs, each above its 8 images (32 pairs).
      std::vector<torch::Tensor> rows;
      std::vector<std::string> labels;
      for (int64_t r = 0; r < 4; ++r) {
        rows.push_back(as_images(inputs.slice(0, 8 * r, 8 * r + 8)));
        rows.push_back(as_images(samples.slice(0, 8 * r, 8 * r + 8)));
        labels.insert(labels.end(), {"x", "T(x)"});
      }
      save_labelled_image_rows_png(png, rows, labels, grid_scale());
    } else {
      // At most 8 x 8: a method may give more than asked (particles give all of theirs).
      save_image_grid_png(png, as_images(samples.slice(0, 0, kGridImages)), 8, grid_scale(),
                          fs::path(run_dir_).filename().string() + ": " + what);
    }
    return samples;
  }
  const auto reference = problem_.target ? reference_samples(kSnapshotPoints) : torch::Tensor();
  if (problem_.dim == 1) {
    save_histogram_png(png, reference, samples, plot_window(samples));
  } else if (inputs.defined()) {
    save_transport_png(png, reference.defined() ? reference.slice(1, 0, 2) : reference,
                       inputs.slice(1, 0, 2), samples.slice(1, 0, 2), plot_window(samples));
  } else {
    save_scatter_png(png, reference.defined() ? reference.slice(1, 0, 2) : reference,
                     samples.slice(1, 0, 2), plot_window(samples));
  }
  return samples;
}

void RunOutputs::end_phase(int64_t phase) {
  const std::string tag = "phase-" + zero_pad(phase, 4);
  const auto current = snapshot(tag);
  const int64_t every = get<int64_t>(config_, "train.phase_weights_every");
  const bool last_phase = phase + 1 == static_cast<int64_t>(phases_.size());
  if (last_phase || (every > 0 && (phase + 1) % every == 0)) {
    const auto dir = fs::path(run_dir_) / "phases" / tag;
    fs::create_directories(dir);
    for (const auto& [group, tensors] : method_.phase_weights()) {
      save_safetensors((dir / (group + ".safetensors")).string(), tensors);
    }
  }
  if (problem_.dim < 2) {
    return;
  }
  // At most 10 panels, evenly spread over the phases done, the last one always shown; earlier
  // phases come from their files (they may predate a resume).
  const int64_t panels = std::min<int64_t>(phase + 1, 10);
  std::vector<torch::Tensor> samples;
  std::vector<std::string> labels;
  for (int64_t i = 0; i < panels; ++i) {
    const int64_t k = panels == 1 ? phase : i * phase / (panels - 1);
    const auto path = fs::path(run_dir_) / "samples" / ("phase-" + zero_pad(k, 4) + ".npy");
    if (k == phase) {
      samples.push_back(current);
    } else if (fs::exists(path)) {
      samples.push_back(load_npy(path.string()));
    } else {
      continue;
    }
    labels.push_back("phase " + std::to_string(k));
  }
  const auto strip = (fs::path(run_dir_) / "samples" / "phases.png").string();
  if (problem_.is_image()) {
    std::vector<torch::Tensor> rows;  // the first kStripColumns images of each phase shown
    for (const auto& x : samples) {
      rows.push_back(as_images(x.slice(0, 0, kStripColumns)));
    }
    save_labelled_image_rows_png(strip, rows, labels, grid_scale());
    return;
  }
  for (auto& x : samples) {
    x = x.slice(1, 0, 2);
  }
  const auto reference =
      problem_.target ? reference_samples(kSnapshotPoints).slice(1, 0, 2) : torch::Tensor();
  save_scatter_strip_png(strip, reference, samples, plot_window(current), 256, labels);
}

void RunOutputs::write_final() {
  const auto dir = fs::path(run_dir_) / "final";
  for (const auto& [group, tensors] : method_.export_weights()) {
    save_safetensors((dir / (group + ".safetensors")).string(), tensors);
  }
  snapshot("final");
}

void RunOutputs::refresh_report() const {
  write_report({run_dir_}, (fs::path(run_dir_) / "report.html").string());
}

void RunOutputs::add_to_curve(const Json& row) {
  add_eval_row(curves_, row);
}

// plots/METRIC.png: each metric's curve so far.
void RunOutputs::plot_curves() const {
  const auto run = fs::path(run_dir_).filename().string();
  for (const auto& [name, curve] : curves_) {
    LinePlot plot;
    plot.title = run + ": " + name;
    plot.x_label = curve_x_label(curve);
    plot.y_label = name;
    plot.series = {LineSeries{name, curve.x, curve.y}};
    save_line_plot_png((fs::path(run_dir_) / "plots" / (name + ".png")).string(), plot);
  }
}

}  // namespace uotflow::run_detail
