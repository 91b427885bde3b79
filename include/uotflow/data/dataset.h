// Data sets: anything we can draw i.i.d. samples from (toy 2-D sets, 1-D mixtures, Gaussians,
// finite files).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/registry.h"

namespace uotflow {

/// Mean [D] and covariance [D, D] (float64, CPU) of a Gaussian data set; undefined otherwise.
struct GaussianParams {
  torch::Tensor mean;
  torch::Tensor covariance;
};

/// A distribution we can sample from. Samples are float32 on the CPU, drawn only from the given
/// generator so that runs are reproducible.
///
///   auto data = make_dataset(Json{{"name", "8gaussians"}});
///   auto gen = make_stream(0, "data");
///   torch::Tensor x = data->sample(256, gen);  // [256, 2]
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Dimension D of a sample.
  virtual int64_t dim() const = 0;
  /// Draws n samples. Returns [n, D] float32 (CPU).
  virtual torch::Tensor sample(int64_t n, at::Generator& gen) const = 0;
  /// The same draw as sample(n, gen) (the same points from the same generator state) with the
  /// class of each point, [n] int64 in [0, n_classes()), or undefined when the set has no classes.
  virtual std::pair<torch::Tensor, torch::Tensor> sample_labelled(int64_t n,
                                                                  at::Generator& gen) const {
    return {sample(n, gen), torch::Tensor()};
  }
  /// Number of classes of a labelled set (0: unlabelled).
  virtual int64_t n_classes() const {
    return 0;
  }
  /// Mode centres [K, D] when the set is a mixture with known centres, else an undefined tensor.
  virtual torch::Tensor centres() const {
    return {};
  }
  /// Standard deviation of each mixture component (0 when unknown). Used by mode-coverage metrics.
  virtual double mode_std() const {
    return 0.0;
  }
  /// The exact parameters when the set is a Gaussian (flows towards it have closed forms).
  virtual GaussianParams gaussian() const {
    return {};
  }
  /// [C, H, W] when a sample is a flattened image (D = C * H * W), else empty.
  virtual std::vector<int64_t> image_shape() const {
    return {};
  }
  /// Half-width of the square (or interval) that plots of this set use, centred at plot_centre().
  virtual double plot_radius() const = 0;
  /// Centre of the plotting window; [D] float32, undefined means the origin.
  virtual torch::Tensor plot_centre() const {
    return {};
  }
};

/// The data-set registry. Each factory takes the data config section:
///   {"name": "8gaussians", "params": {...}, "outlier_fraction": 0.0, "outlier_loc": [...],
///   "outlier_std": 0.1}
/// and checks the keys of "params" it understands (unknown ones are a ConfigError).
using DatasetRegistry = Registry<std::unique_ptr<Dataset>(const Json& params)>;
DatasetRegistry& dataset_registry();

/// Builds the data set a config section describes, wrapping it with outlier contamination when
/// outlier_fraction > 0: each sample is replaced, with that probability, by a draw from
/// N(outlier_loc, outlier_std^2 I). `key` is the section's place in the run's config ("data",
/// "source", "functional.params.data"): errors name it; "" names none.
std::unique_ptr<Dataset> make_dataset(const Json& section, const std::string& key = "data");
/// The same for a name and its params (no outliers).
std::unique_ptr<Dataset> make_dataset(const std::string& name, const Json& params);

/// The default data config section (all keys make_dataset accepts, with their defaults).
Json default_data_section();

/// Reads a finite data set from .npy (float32/float64, 1-D or 2-D) or .csv (numbers, optional
/// header line). Returns [N, D] float32. Missing or malformed files raise a ConfigError naming the
/// path.
torch::Tensor load_points(const std::string& path);

/// Raises a ConfigError if `params` holds a key not in `allowed` (context names the data set).
void check_params(const Json& params, std::initializer_list<const char*> allowed,
                  const std::string& context);

}  // namespace uotflow
