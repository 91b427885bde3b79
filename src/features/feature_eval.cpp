// FID/KID and the classifier's outlier fraction for image runs: extractor set-up (train or load the
// built-in classifier, or load a TorchScript module) and the per-evaluation records.
#include "uotflow/features/feature_eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <sstream>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/images.h"
#include "uotflow/io/files.h"
#include "uotflow/io/sha256.h"
#include "uotflow/metrics/mmd.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

constexpr const char* kClassifier = "classifier";
const std::vector<std::string> kFeatureMetrics = {"fid", "kid", "outlier_fraction"};

std::vector<std::string> feature_metrics(const Json& config) {
  auto metrics = get<std::vector<std::string>>(config, "eval.features.metrics");
  for (const auto& m : metrics) {
    if (std::find(kFeatureMetrics.begin(), kFeatureMetrics.end(), m) == kFeatureMetrics.end()) {
      throw ConfigError("unknown eval.features.metrics entry '" + m +
                        "' (known: fid, kid, outlier_fraction)");
    }
  }
  return metrics;
}

bool asks_for(const std::vector<std::string>& metrics, const std::string& name) {
  return std::find(metrics.begin(), metrics.end(), name) != metrics.end();
}

// The labelled set the built-in classifier learns from when it is not the run's own target:
// eval.features.classifier.data, or null.
std::unique_ptr<Dataset> classifier_data(const Json& config) {
  const Json& section = at_path(config, "eval.features.classifier.data");
  if (section.is_null()) {
    return nullptr;
  }
  Json full = default_data_section();
  merge_checked(full, section, "eval.features.classifier.data");
  return make_dataset(full, "eval.features.classifier.data");
}

ClassifierOptions classifier_options(const Json& config, uint64_t seed) {
  ClassifierOptions o;
  o.steps = get<int64_t>(config, "eval.features.classifier.steps");
  o.batch_size = get<int64_t>(config, "eval.features.classifier.batch_size");
  o.lr = get<double>(config, "eval.features.classifier.lr");
  o.width = get<int64_t>(config, "eval.features.classifier.width");
  o.feature_dim = get<int64_t>(config, "eval.features.classifier.feature_dim");
  o.seed = seed;
  return o;
}

// Trains the run's classifier, writing RUN/extractor/classifier.{safetensors,json}.
// `target`: the run's target data (as the run holds it: from the config or in memory).
std::string train_run_classifier(const Json& config, const Dataset& target,
                                 const std::string& run_dir,
                                 const std::function<void(const std::string&)>& log) {
  const auto dir = fs::path(run_dir) / "extractor";
  fs::create_directories(dir);
  const auto path = (dir / "classifier.safetensors").string();
  if (fs::exists(path)) {
    return path;  // resumed run
  }
  const auto own = classifier_data(config);
  const auto* images = dynamic_cast<const ImageSet*>(own ? own.get() : &target);
  if (images == nullptr) {
    throw ConfigError(own ? "eval.features.classifier.data must be an image data set"
                          : "the built-in classifier learns from an image data set with labels, "
                            "and the run's target is not one; set "
                            "eval.features.classifier.data");
  }
  const auto options =
      classifier_options(config, derive_seed(get<uint64_t>(config, "seed"), "classifier"));
  log("training the built-in feature classifier (" + std::to_string(options.steps) + " steps)");
  std::ostringstream progress;
  const auto report = train_classifier(*images, options, path, &progress);
  Json info{{"accuracy", report.accuracy},
            {"n_train", report.n_train},
            {"n_holdout", report.n_holdout},
            {"steps", options.steps},
            {"sha256", sha256_file(path)},
            {"note",
             "uotflow's small CNN classifier, not Inception-v3: FIDs on its features are "
             "recorded as classifier_fid"}};
  write_file_atomic((dir / "classifier.json").string(), info.dump(2) + "\n");
  log("feature classifier: held-out accuracy " + std::to_string(report.accuracy));
  return path;
}

}  // namespace

Json default_features_section() {
  return Json{{"metrics", Json::array()},
              {"extractor", kClassifier},
              {"input_range", "signed"},
              {"input_channels", 0},
              {"reference", ""},
              {"classifier",
               {{"data", nullptr},
                {"steps", 2000},
                {"batch_size", 128},
                {"lr", 1e-3},
                {"width", 16},
                {"feature_dim", 128}}}};
}

namespace {

// The checks of validate() that read no file.
void check_settings(const Json& config, const Dataset& data) {
  const auto metrics = feature_metrics(config);
  if (metrics.empty()) {
    return;
  }
  if (data.image_shape().empty()) {
    throw ConfigError(
        "eval.features.metrics need an image data set as the target; this run's "
        "target is not one");
  }
  const auto extractor = get<std::string>(config, "eval.features.extractor");
  const auto reference = get<std::string>(config, "eval.features.reference");
  if (extractor != kClassifier && !fs::is_regular_file(extractor)) {
    throw ConfigError("eval.features.extractor '" + extractor +
                      "' is neither 'classifier' nor an existing file");
  }
  if (!reference.empty() && !fs::is_regular_file(reference)) {
    throw ConfigError("eval.features.reference '" + reference + "' does not exist");
  }
  if (!reference.empty() && asks_for(metrics, "kid")) {
    throw ConfigError(
        "eval.features.metrics 'kid' needs reference features, not the statistics "
        "file eval.features.reference; leave reference empty");
  }
  if (asks_for(metrics, "outlier_fraction") && extractor != kClassifier &&
      fs::path(extractor).extension() != ".safetensors") {
    throw ConfigError("eval.features.metrics 'outlier_fraction' needs a classifier extractor");
  }
  classifier_options(config, 0);  // types of the classifier keys
}

}  // namespace

void FeatureEvaluator::validate(const Json& config, const Dataset& data) {
  check_settings(config, data);
  if (feature_metrics(config).empty()) {
    return;
  }
  // The files it names are read now, so that a corrupt one fails before the run directory exists.
  const auto extractor = get<std::string>(config, "eval.features.extractor");
  const auto reference = get<std::string>(config, "eval.features.reference");
  if (!reference.empty()) {
    load_reference_stats(reference);
  }
  if (extractor != kClassifier) {
    TorchScriptInput input;
    input.range = get<std::string>(config, "eval.features.input_range");
    input.channels = get<int64_t>(config, "eval.features.input_channels");
    load_feature_extractor(extractor, data.image_shape(), torch::kCPU, input);
  }
}

std::unique_ptr<FeatureEvaluator> FeatureEvaluator::create(
    const Json& config, const Dataset& data, const std::string& run_dir, torch::Device device,
    const std::function<void(const std::string&)>& log) {
  check_settings(config, data);  // the run checked its files with validate() before it began
  auto metrics = feature_metrics(config);
  if (metrics.empty()) {
    return nullptr;
  }
  auto path = get<std::string>(config, "eval.features.extractor");
  if (path == kClassifier) {
    path = train_run_classifier(config, data, run_dir, log);
  }
  TorchScriptInput input;
  input.range = get<std::string>(config, "eval.features.input_range");
  input.channels = get<int64_t>(config, "eval.features.input_channels");
  auto extractor = load_feature_extractor(path, data.image_shape(), device, input);
  if (asks_for(metrics, "outlier_fraction") && extractor->outlier_class() < 0) {
    throw ConfigError("eval.features.metrics 'outlier_fraction': the classifier '" + path +
                      "' has no class named 'outlier' (train it on an image_mix set)");
  }
  log("feature extractor: " + extractor->kind() + " " + path + " sha256 " + extractor->sha256());
  return std::unique_ptr<FeatureEvaluator>(
      new FeatureEvaluator(std::move(extractor), std::move(metrics),
                           get<std::string>(config, "eval.features.reference")));
}

FeatureEvaluator::FeatureEvaluator(std::unique_ptr<FeatureExtractor> extractor,
                                   std::vector<std::string> metrics, std::string reference_path)
    : extractor_(std::move(extractor)),
      metrics_(std::move(metrics)),
      reference_path_(std::move(reference_path)) {
  if (!reference_path_.empty()) {
    auto stats = load_reference_stats(reference_path_);
    if (!stats.extractor_sha256.empty() && stats.extractor_sha256 != extractor_->sha256()) {
      throw ConfigError("eval.features.reference '" + reference_path_ +
                        "' was computed with extractor sha256 " + stats.extractor_sha256 +
                        ", this run's extractor is " + extractor_->sha256());
    }
    reference_stats_ = stats.gaussian;
  }
}

const GaussianFit& FeatureEvaluator::reference_statistics(const torch::Tensor& reference) {
  if (!reference_stats_.mean.defined()) {
    reference_features_ = extractor_->features(reference);
    reference_stats_ = feature_statistics(reference_features_);
  }
  return reference_stats_;
}

torch::Tensor FeatureEvaluator::classify(const torch::Tensor& images) {
  const auto probabilities = extractor_->class_probabilities(images);
  return probabilities.defined() ? probabilities.argmax(1) : torch::Tensor();
}

Json FeatureEvaluator::provenance() const {
  return Json{{"extractor", extractor_->kind()}, {"extractor_sha256", extractor_->sha256()}};
}

std::vector<FeatureRecord> FeatureEvaluator::evaluate(const torch::Tensor& samples,
                                                      const torch::Tensor& reference,
                                                      uint64_t seed) {
  const auto& stats = reference_statistics(reference);
  const bool finite = torch::isfinite(samples).all().item<bool>();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  torch::Tensor features;
  if (finite) {
    features = extractor_->features(samples);
  }
  std::vector<FeatureRecord> out;
  for (const auto& m : metrics_) {
    double value = nan;
    if (finite && m == "fid") {
      value = frechet_inception_distance(feature_statistics(features), stats);
    } else if (finite && m == "kid") {
      value = kernel_inception_distance(features, reference_features_, 1000, 100, seed).mean;
    } else if (finite && m == "outlier_fraction") {
      const auto predicted = extractor_->class_probabilities(samples).argmax(1);
      value = predicted.eq(extractor_->outlier_class()).to(torch::kFloat64).mean().item<double>();
    }
    out.push_back({m == "outlier_fraction" ? m : extractor_->metric_name(m), value});
  }
  return out;
}

}  // namespace uotflow
