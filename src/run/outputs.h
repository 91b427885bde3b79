// Private to src/run: what a run writes besides checkpoints and logs: evaluations (eval.jsonl and
// plots/METRIC.png), sample snapshots and their pictures, phase strips and weights, target.json
// and final/.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "curves.h"
#include "uotflow/core/config.h"
#include "uotflow/features/feature_eval.h"
#include "uotflow/io/plot.h"
#include "uotflow/methods/method.h"
#include "uotflow/metrics/metrics.h"

namespace uotflow::run_detail {

class RunOutputs {
 public:
  using Log = std::function<void(const std::string&)>;

  /// Checks the eval settings against the problem (ConfigError) before anything is written. The
  /// outputs are in the problem's data space (a latent problem's samples are decoded).
  RunOutputs(const Json& config, const Problem& problem, Method& method, std::vector<Phase> phases);

  /// Binds the outputs to a run directory (made or resumed): sets up feature metrics and reads
  /// back the curves of earlier evaluations.
  void open(const std::string& run_dir, torch::Device device, const Log& log);

  /// target.json for runs towards a known Gaussian: its mean, covariance and precision, and the
  /// source's.
  void write_target() const;

  struct Evaluation {
    std::string summary;     ///< "name=value ..." for the log
    std::vector<Json> rows;  ///< the eval.jsonl rows
  };
  /// One evaluation after `step` steps (phase >= 0: at the end of that phase). With `record` and
  /// a run directory (open), its rows go to eval.jsonl and its curves to plots/.
  Evaluation evaluate(int64_t step, int64_t phase, bool record = true);

  /// Writes samples/TAG.{npy,png} and returns the samples (float32, CPU).
  torch::Tensor snapshot(const std::string& tag);

  /// The end of a phase: its samples, the phase strip samples/phases.png and, as
  /// train.phase_weights_every asks, the method's phase weights in phases/phase-KKKK/.
  void end_phase(int64_t phase);

  /// final/GROUP.safetensors and samples/final.{npy,png}.
  void write_final();
  /// RUN/report.html from what the run directory holds now (write_report).
  void refresh_report() const;

 private:
  /// n samples of the model (CPU, float32) and, for a translation, the source points they are
  /// the images of and the points' classes (else undefined); the same draws from `gen` as
  /// Method::sample.
  struct Draw {
    torch::Tensor inputs;
    torch::Tensor input_labels;
    torch::Tensor samples;  ///< in the data space
    torch::Tensor own;      ///< as the method drew them (in a latent space: the codes)
  };
  Draw draw(int64_t n, at::Generator& gen, bool ema);
  /// A translation's class preservation row, when the classes of inputs and images are known.
  void add_class_preservation(
      const Draw& drawn, bool finite,
      const std::function<void(const std::string&, double, const Json&)>& write_row);
  bool maps_source_points() const;
  const torch::Tensor& reference_samples(int64_t n);
  MetricContext metric_context(uint64_t seed) const;
  PlotWindow plot_window(const torch::Tensor& samples) const;
  torch::Tensor as_images(const torch::Tensor& x) const;
  int64_t grid_scale() const;
  void add_to_curve(const Json& row);
  void plot_curves() const;

  Json config_;
  const Problem& own_problem_;  // the method's
  Problem problem_;             // its data space, which the outputs show
  Method& method_;
  std::vector<Phase> phases_;
  uint64_t seed_;
  std::vector<std::string> metrics_;
  std::string run_dir_;
  std::unique_ptr<FeatureEvaluator> features_;
  std::map<int64_t, torch::Tensor> reference_cache_;
  std::map<std::string, Curve> curves_;
};

}  // namespace uotflow::run_detail
