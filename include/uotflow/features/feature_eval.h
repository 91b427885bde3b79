// FID/KID and classifier metrics of image runs (eval.features), with the
// extractor's kind and SHA-256 in every record.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/data/dataset.h"
#include "uotflow/features/features.h"

namespace uotflow {

/// One eval.jsonl record of a feature metric.
struct FeatureRecord {
  std::string metric;  ///< e.g. "classifier_fid" or "fid"
  double value = 0.0;
};

class FeatureEvaluator {
 public:
  /// Checks eval.features against the data set and reads the extractor and reference files it
  /// names (ConfigError), writing nothing: what a run checks before its directory exists.
  static void validate(const Json& config, const Dataset& data);

  /// Sets up the extractor for a run: the built-in classifier is trained on a new run and saved in
  /// RUN/extractor/, and loaded from there on resume. Returns null when no feature metric is asked
  /// for. `log` receives progress lines. Call validate() first, before the run directory exists:
  /// create() repeats its checks of the settings, not its trial reads of the files.
  static std::unique_ptr<FeatureEvaluator> create(
      const Json& config, const Dataset& data, const std::string& run_dir, torch::Device device,
      const std::function<void(const std::string&)>& log);

  /// samples: [N, D] generated images; reference: [M, D] data images (used unless eval.features.
  /// reference names a statistics file). Non-finite samples give NaN values.
  std::vector<FeatureRecord> evaluate(const torch::Tensor& samples, const torch::Tensor& reference,
                                      uint64_t seed);

  /// The class the built-in classifier gives each of `images` [N, D] ([N] int64, the classes of
  /// the data set it was trained on), or undefined when the extractor is not a classifier.
  torch::Tensor classify(const torch::Tensor& images);

  /// Fields every record carries: {"extractor": kind, "extractor_sha256": hex}.
  Json provenance() const;

 private:
  FeatureEvaluator(std::unique_ptr<FeatureExtractor> extractor, std::vector<std::string> metrics,
                   std::string reference_path);
  const GaussianFit& reference_statistics(const torch::Tensor& reference);

  std::unique_ptr<FeatureExtractor> extractor_;
  std::vector<std::string> metrics_;
  std::string reference_path_;
  GaussianFit reference_stats_;
  torch::Tensor reference_features_;
};

/// The default eval.features section (no feature metrics).
Json default_features_section();

}  // namespace uotflow
