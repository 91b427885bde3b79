// Feature extractors for FID/KID on images: a user's TorchScript module (e.g. the usual
// Inception-v3 conversion) or uotflow's own small CNN classifier trained on a labelled image set.
// Every record of a feature metric names the extractor by kind and SHA-256 of its file.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/metrics/gaussian.h"

namespace uotflow {

class ImageSet;

/// Maps flattened images to feature vectors.
class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  /// images: [N, C*H*W] in [-1, 1] (any float dtype, CPU or the extractor's device) -> features
  /// [N, F] float64 (CPU), computed in batches.
  virtual torch::Tensor features(const torch::Tensor& images) = 0;
  /// Class probabilities [N, K] (float64, CPU) when the extractor is a classifier; else undefined.
  virtual torch::Tensor class_probabilities(const torch::Tensor& images) {
    (void)images;
    return {};
  }
  /// Index of the class named "outlier" (image_mix sets), -1 when there is none.
  virtual int64_t outlier_class() const {
    return -1;
  }
  /// "torchscript" or "classifier".
  virtual std::string kind() const = 0;
  /// Hex SHA-256 of the extractor's file.
  virtual std::string sha256() const = 0;
  /// The name under which a feature metric is recorded: "fid" stays "fid" for a TorchScript
  /// extractor (normally Inception) and becomes "classifier_fid" for the built-in classifier, so
  /// nobody mistakes one for the other.
  std::string metric_name(const std::string& metric) const {
    return kind() == "classifier" ? "classifier_" + metric : metric;
  }
};

/// How images are handed to a TorchScript module: [N, C, H, W] float32 scaled from [-1, 1] to
/// "signed" [-1, 1], "unit" [0, 1] or "byte" [0, 255]; grey images are repeated to
/// `channels` = 3 when asked (0 = as they are).
struct TorchScriptInput {
  std::string range = "signed";
  int64_t channels = 0;
};

/// Loads an extractor file: a TorchScript module (.pt / .pth / .ts; its output [N, F] or
/// [N, F, 1, 1] is the feature) or a classifier written by save_classifier (.safetensors).
/// `image_shape` is [C, H, W] of the images it will see. A missing or unreadable file raises a
/// ConfigError naming it.
std::unique_ptr<FeatureExtractor> load_feature_extractor(const std::string& path,
                                                         const std::vector<int64_t>& image_shape,
                                                         torch::Device device,
                                                         const TorchScriptInput& input = {});

/// Options of the built-in classifier's training.
struct ClassifierOptions {
  int64_t steps = 2000;       ///< Adam steps
  int64_t batch_size = 128;   ///< images per step
  double lr = 1e-3;           ///< Adam learning rate
  int64_t width = 16;         ///< channels of the first conv block (the second has 2x)
  int64_t feature_dim = 128;  ///< width of the penultimate layer: the FID features
  double holdout = 0.1;       ///< fraction of the set kept out of training to measure accuracy
  uint64_t seed = 0;          ///< split, initialisation and minibatches
};

/// What train_classifier reports.
struct ClassifierReport {
  double accuracy = 0.0;  ///< on the held-out images
  int64_t n_train = 0;
  int64_t n_holdout = 0;
};

/// Trains the built-in classifier (two conv blocks, adaptive pooling to 4x4, a dense feature layer,
/// a linear classifier) on a labelled image set and writes it to `path` (.safetensors, with its
/// shape, classes and outlier class as int64 "meta.*" tensors). Deterministic on the CPU for a
/// given seed and thread count. An unlabelled set is a ConfigError.
ClassifierReport train_classifier(const ImageSet& data, const ClassifierOptions& options,
                                  const std::string& path, std::ostream* progress = nullptr);

/// Mean and covariance (unbiased, float64) of features [N, F]: the Gaussian FID compares.
GaussianFit feature_statistics(const torch::Tensor& features);

/// FID between two feature Gaussians: |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2).
double frechet_inception_distance(const GaussianFit& a, const GaussianFit& b);

/// Feature statistics saved for later FIDs (`uotflow fid-ref`): an .npz with "mu" [F], "sigma"
/// [F, F] (the keys pytorch-fid uses), "n" and "extractor_sha256" (uint8 ASCII hex).
struct ReferenceStats {
  GaussianFit gaussian;
  int64_t n = 0;
  std::string extractor_sha256;
};
void save_reference_stats(const std::string& path, const ReferenceStats& stats);
/// Reads stats written by save_reference_stats (or any .npz with mu and sigma: the SHA-256 is
/// then empty). Bad files raise a ConfigError naming the path.
ReferenceStats load_reference_stats(const std::string& path);

}  // namespace uotflow
