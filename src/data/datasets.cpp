// The data-set registry, the parametric sets (gmm, gaussian, file) and outlier contamination.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/builtin.h"
#include "uotflow/core/device.h"
#include "uotflow/core/error.h"
#include "uotflow/data/dataset.h"
#include "uotflow/data/tensor_dataset.h"

namespace uotflow {
namespace {

using data_detail::SamplerDataset;
using data_detail::SamplerSpec;

// The value of params[key], or nullptr when absent (params may be null).
const Json* find_param(const Json& params, const char* key) {
  if (!params.is_object()) {
    return nullptr;
  }
  auto it = params.find(key);
  return it == params.end() ? nullptr : &*it;
}

[[noreturn]] void bad_param(const std::string& set, const std::string& key,
                            const std::string& expected, const Json& got) {
  throw ConfigError("data set '" + set + "': parameter '" + key + "' must be " + expected +
                    ", got " + got.dump());
}

// A number, or a list of `count` numbers (count < 0: any non-empty length), as doubles.
std::vector<double> number_or_list(const Json& node, int64_t count, const std::string& set,
                                   const std::string& key, const std::string& expected) {
  if (node.is_number()) {
    return std::vector<double>(std::max<int64_t>(count, 1), node.get<double>());
  }
  const bool length_ok = count < 0 ? !node.empty() : static_cast<int64_t>(node.size()) == count;
  if (!node.is_array() || !length_ok) {
    bad_param(set, key, expected, node);
  }
  std::vector<double> out;
  for (const auto& item : node) {
    if (!item.is_number()) {
      bad_param(set, key, expected, node);
    }
    out.push_back(item.get<double>());
  }
  return out;
}

torch::Tensor to_tensor(const std::vector<double>& values) {
  return torch::tensor(values, torch::kDouble).to(torch::kFloat);
}

// means: [K][D] nested lists, or K numbers meaning K 1-D means. Returns [K, D] float32.
torch::Tensor parse_means(const Json& node) {
  const std::string expected = "a non-empty list of means (numbers, or lists of D numbers each)";
  if (!node.is_array() || node.empty()) {
    bad_param("gmm", "means", expected, node);
  }
  if (node[0].is_number()) {
    return to_tensor(number_or_list(node, -1, "gmm", "means", expected)).unsqueeze(1);
  }
  const int64_t dim = node[0].is_array() ? static_cast<int64_t>(node[0].size()) : 0;
  if (dim == 0) {
    bad_param("gmm", "means", expected, node);
  }
  std::vector<torch::Tensor> rows;
  for (const auto& mean : node) {
    if (!mean.is_array()) {
      bad_param("gmm", "means", expected, node);
    }
    rows.push_back(to_tensor(number_or_list(mean, dim, "gmm", "means",
                                            "lists of the same length " + std::to_string(dim))));
  }
  return torch::stack(rows);
}

std::unique_ptr<Dataset> make_gmm(const Json& params) {
  check_params(params, {"means", "stds", "weights"}, "gmm");
  const Json* means_node = find_param(params, "means");
  if (means_node == nullptr) {
    throw ConfigError(
        "data set 'gmm' needs parameter 'means' (a list of K means: numbers, or lists of D "
        "numbers)");
  }
  const auto means = parse_means(*means_node);  // [K, D]
  const int64_t k = means.size(0);
  const std::string k_text = std::to_string(k);

  std::vector<double> stds(k, 1.0);
  if (const Json* node = find_param(params, "stds")) {
    const std::string expected = "a positive number or a list of " + k_text + " positive numbers";
    stds = number_or_list(*node, k, "gmm", "stds", expected);
    if (std::any_of(stds.begin(), stds.end(), [](double s) { return !(s > 0.0); })) {
      bad_param("gmm", "stds", expected, *node);
    }
  }
  std::vector<double> weights(k, 1.0);
  if (const Json* node = find_param(params, "weights")) {
    const std::string expected = "a list of " + k_text + " numbers >= 0 with a positive sum";
    if (!node->is_array()) {
      bad_param("gmm", "weights", expected, *node);
    }
    weights = number_or_list(*node, k, "gmm", "weights", expected);
    double sum = 0.0;
    for (double w : weights) {
      if (!(w >= 0.0)) {
        bad_param("gmm", "weights", expected, *node);
      }
      sum += w;
    }
    if (!(sum > 0.0)) {
      bad_param("gmm", "weights", expected, *node);
    }
  }

  const auto std_tensor = to_tensor(stds);              // [K]
  auto probs = torch::tensor(weights, torch::kDouble);  // [K]
  probs = probs / probs.sum();
  const double max_std = *std::max_element(stds.begin(), stds.end());
  SamplerSpec spec;
  spec.dim = means.size(1);
  spec.centres = means;
  spec.mode_std = max_std;
  spec.plot_radius = means.abs().max().item<double>() + 4.0 * max_std;
  spec.sample = [means, std_tensor, probs](int64_t n, at::Generator& gen) {
    if (n == 0) {
      return torch::empty({0, means.size(1)});
    }
    const auto component = torch::multinomial(probs, n, /*replacement=*/true, gen);
    return means.index_select(0, component) + std_tensor.index_select(0, component).unsqueeze(1) *
                                                  torch::randn({n, means.size(1)}, gen);
  };
  return std::make_unique<SamplerDataset>(std::move(spec));
}

// A D x D matrix from nested lists, float64.
torch::Tensor parse_matrix(const Json& node, int64_t dim, const std::string& key) {
  const std::string expected = "a list of " + std::to_string(dim) + " lists of " +
                               std::to_string(dim) +
                               " numbers (a symmetric positive definite "
                               "matrix)";
  if (!node.is_array() || static_cast<int64_t>(node.size()) != dim) {
    bad_param("gaussian", key, expected, node);
  }
  std::vector<torch::Tensor> rows;
  for (const auto& row : node) {
    if (!row.is_array()) {
      bad_param("gaussian", key, expected, node);
    }
    rows.push_back(
        torch::tensor(number_or_list(row, dim, "gaussian", key, expected), torch::kDouble));
  }
  auto m = torch::stack(rows);
  if (!torch::allclose(m, m.t(), 1e-10, 1e-12)) {
    bad_param("gaussian", key, expected + "; it is not symmetric", node);
  }
  if (std::get<1>(torch::linalg_cholesky_ex(m)).item<int64_t>() != 0) {
    bad_param("gaussian", key, expected + "; it is not positive definite", node);
  }
  return m;
}

// The random target of the Fokker-Planck checks: b ~ N(0, I) and precision A = Q diag(l) Q^T with
// Q a random rotation and l ~ U[1, 2) (the spectrum sklearn's make_spd_matrix gives).
GaussianParams random_gaussian(int64_t dim, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto mean = torch::randn({dim}, gen, torch::kDouble);
  auto q = std::get<0>(torch::linalg_qr(torch::randn({dim, dim}, gen, torch::kDouble)));
  auto eigenvalues = 1.0 + torch::rand({dim}, gen, torch::kDouble);
  auto covariance = q.matmul(torch::diag(1.0 / eigenvalues)).matmul(q.t());
  return {mean, 0.5 * (covariance + covariance.t())};
}

std::unique_ptr<Dataset> make_gaussian(const Json& params) {
  check_params(params, {"dim", "mean", "std", "covariance", "precision", "seed"}, "gaussian");
  const Json* dim_node = find_param(params, "dim");
  const Json* mean_node = find_param(params, "mean");
  const Json* std_node = find_param(params, "std");
  const Json* cov_node = find_param(params, "covariance");
  const Json* precision_node = find_param(params, "precision");
  const Json* seed_node = find_param(params, "seed");
  if ((std_node != nullptr) + (cov_node != nullptr) + (precision_node != nullptr) +
          (seed_node != nullptr) >
      1) {
    throw ConfigError(
        "data set 'gaussian': give at most one of the parameters std, covariance, precision "
        "and seed");
  }
  if (seed_node != nullptr && mean_node != nullptr) {
    throw ConfigError("data set 'gaussian': parameter 'seed' draws the mean too; leave out 'mean'");
  }

  int64_t dim = 2;
  if (dim_node != nullptr) {
    if (!dim_node->is_number_integer() || dim_node->get<int64_t>() < 1) {
      bad_param("gaussian", "dim", "an integer >= 1", *dim_node);
    }
    dim = dim_node->get<int64_t>();
  } else if (mean_node != nullptr && mean_node->is_array()) {
    dim = static_cast<int64_t>(mean_node->size());  // a list mean already says the dimension
  } else if (const Json* matrix = cov_node != nullptr ? cov_node : precision_node) {
    dim = matrix->is_array() ? static_cast<int64_t>(matrix->size()) : 0;
  }
  // The D x D covariance (and, with a seed, the draws that make it) before any of it is allocated.
  check_fits_in_memory("data set 'gaussian': parameter dim = " + std::to_string(dim) +
                           " (a covariance of dim x dim numbers)",
                       4.0 * static_cast<double>(dim) * static_cast<double>(dim) * sizeof(double));
  auto mean = torch::zeros({dim}, torch::kDouble);
  if (mean_node != nullptr) {
    mean =
        torch::tensor(number_or_list(*mean_node, dim, "gaussian", "mean",
                                     "a number or a list of " + std::to_string(dim) + " numbers"),
                      torch::kDouble);
  }
  double sigma = 1.0;
  torch::Tensor covariance;  // [D, D] float64; undefined for sigma^2 I
  if (std_node != nullptr) {
    if (!std_node->is_number() || !(std_node->get<double>() > 0.0)) {
      bad_param("gaussian", "std", "a positive number", *std_node);
    }
    sigma = std_node->get<double>();
  } else if (cov_node != nullptr) {
    covariance = parse_matrix(*cov_node, dim, "covariance");
  } else if (precision_node != nullptr) {
    covariance = torch::linalg_inv(parse_matrix(*precision_node, dim, "precision"));
    covariance = 0.5 * (covariance + covariance.t());
  } else if (seed_node != nullptr) {
    if (!seed_node->is_number_integer() || seed_node->get<int64_t>() < 0) {
      bad_param("gaussian", "seed", "a non-negative integer", *seed_node);
    }
    auto drawn = random_gaussian(dim, seed_node->get<uint64_t>());
    mean = drawn.mean;
    covariance = drawn.covariance;
  }

  SamplerSpec spec;
  spec.dim = dim;
  spec.gaussian.mean = mean;
  const auto mean_f = mean.to(torch::kFloat);
  if (!covariance.defined()) {
    spec.gaussian.covariance = sigma * sigma * torch::eye(dim, torch::kDouble);
    spec.plot_radius = mean.abs().max().item<double>() + 4.0 * sigma;
    spec.sample = [mean_f, sigma](int64_t n, at::Generator& gen) {
      return mean_f + sigma * torch::randn({n, mean_f.size(0)}, gen);
    };
  } else {
    spec.gaussian.covariance = covariance;
    const double max_std = covariance.diagonal().max().sqrt().item<double>();
    spec.plot_radius = mean.abs().max().item<double>() + 4.0 * max_std;
    const auto factor_t = torch::linalg_cholesky(covariance).t().contiguous();  // L^T [D, D]
    spec.sample = [mean, factor_t](int64_t n, at::Generator& gen) {
      auto z = torch::randn({n, mean.size(0)}, gen, torch::kDouble);
      return (mean + z.matmul(factor_t)).to(torch::kFloat);
    };
  }
  return std::make_unique<SamplerDataset>(std::move(spec));
}

std::unique_ptr<Dataset> make_file(const Json& params) {
  check_params(params, {"path"}, "file");
  const Json* path = find_param(params, "path");
  if (path == nullptr) {
    throw ConfigError("data set 'file' needs parameter 'path' (a .npy or .csv file of points)");
  }
  if (!path->is_string()) {
    bad_param("file", "path", "a string (path of a .npy or .csv file)", *path);
  }
  return std::make_unique<TensorDataset>(load_points(path->get<std::string>()));
}

// Replaces each sample, with probability `fraction`, by a draw from N(loc, std^2 I).
class ContaminatedDataset : public Dataset {
 public:
  // loc: [D] float32
  ContaminatedDataset(std::unique_ptr<Dataset> base, double fraction, torch::Tensor loc,
                      double outlier_std)
      : base_(std::move(base)), fraction_(fraction), loc_(std::move(loc)), std_(outlier_std) {
    const auto centre = plot_centre();
    const auto offset = centre.defined() ? (loc_ - centre) : loc_;
    const double reach = 1.05 * offset.abs().max().item<double>() + 4.0 * std_;
    plot_radius_ = std::max(base_->plot_radius(), reach);
  }
  int64_t dim() const override {
    return base_->dim();
  }
  torch::Tensor sample(int64_t n, at::Generator& gen) const override {
    const auto clean = base_->sample(n, gen);  // [n, D]
    const auto is_outlier = (torch::rand({n}, gen) < fraction_).unsqueeze(1);
    // Drawing all n outlier candidates keeps the stream's use independent of the mask.
    const auto outliers = loc_ + std_ * torch::randn({n, dim()}, gen);
    return torch::where(is_outlier, outliers, clean);
  }
  torch::Tensor centres() const override {
    return base_->centres();
  }
  double mode_std() const override {
    return base_->mode_std();
  }
  double plot_radius() const override {
    return plot_radius_;
  }
  torch::Tensor plot_centre() const override {
    return base_->plot_centre();
  }

 private:
  std::unique_ptr<Dataset> base_;
  double fraction_;
  torch::Tensor loc_;
  double std_;
  double plot_radius_ = 1.0;
};

}  // namespace

void check_params(const Json& params, std::initializer_list<const char*> allowed,
                  const std::string& context) {
  if (params.is_null()) {
    return;
  }
  if (!params.is_object()) {
    throw ConfigError("params of data set '" + context + "' must be a JSON object, got " +
                      params.dump());
  }
  for (const auto& [key, value] : params.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string accepted;
      for (const char* a : allowed) {
        accepted += (accepted.empty() ? "" : ", ") + std::string(a);
      }
      throw ConfigError("unknown parameter '" + key + "' for data set '" + context +
                        "' (accepted: " + (accepted.empty() ? "none" : accepted) + ")");
    }
  }
}

DatasetRegistry& dataset_registry() {
  static DatasetRegistry registry = [] {
    DatasetRegistry r("data set");
    data_detail::add_toy2d_datasets(r);
    r.add("gmm", "Gaussian mixture in any dimension (params: means, stds, weights)", make_gmm);
    r.add("gaussian",
          "N(mean, std^2 I) or N(mean, covariance); N(mean, precision^-1); or random b, A from "
          "a seed (params: dim, mean, std | covariance | precision | seed)",
          make_gaussian);
    r.add("file", "finite point set from a .npy or .csv file, resampled (params: path)", make_file);
    data_detail::add_image_datasets(r);
    return r;
  }();
  return registry;
}

Json default_data_section() {
  return Json{{"name", "8gaussians"},
              {"params", Json::object()},
              {"outlier_fraction", 0.0},
              {"outlier_loc", nullptr},
              {"outlier_std", 0.1}};
}

std::unique_ptr<Dataset> make_dataset(const Json& section, const std::string& key) {
  const std::string dot = key.empty() ? "" : key + ".";
  Json overrides = section;
  if (overrides.is_object() && overrides.contains("params") && overrides["params"].is_null()) {
    overrides.erase("params");  // null params mean "none", as check_params agrees
  }
  Json config = default_data_section();
  merge_checked(config, overrides, key);

  std::unique_ptr<Dataset> base;
  try {
    base = dataset_registry().create(config["name"].get<std::string>(), config["params"]);
  } catch (const ConfigError& e) {
    if (key.empty()) {
      throw;
    }
    throw ConfigError(key + ": " + e.what());  // which section: data, source, a functional's data
  }
  const double fraction = config["outlier_fraction"].get<double>();
  if (!(fraction >= 0.0 && fraction < 1.0)) {
    throw ConfigError(dot + "outlier_fraction must be in [0, 1), got " +
                      config["outlier_fraction"].dump());
  }
  if (fraction == 0.0) {
    return base;
  }
  const int64_t dim = base->dim();
  const std::string expected_loc = "a number or a list of " + std::to_string(dim) + " numbers";
  const Json& loc = config["outlier_loc"];
  if (loc.is_null()) {
    throw ConfigError(dot + "outlier_loc is required when " + dot + "outlier_fraction > 0 (" +
                      expected_loc + ")");
  }
  const bool loc_ok =
      loc.is_number() ||
      (loc.is_array() && static_cast<int64_t>(loc.size()) == dim &&
       std::all_of(loc.begin(), loc.end(), [](const Json& v) { return v.is_number(); }));
  if (!loc_ok) {
    throw ConfigError(dot + "outlier_loc must be " + expected_loc + ", got " + loc.dump());
  }
  const double outlier_std = config["outlier_std"].get<double>();
  if (!(outlier_std >= 0.0)) {
    throw ConfigError(dot + "outlier_std must be >= 0, got " + config["outlier_std"].dump());
  }
  auto loc_tensor = loc.is_number() ? torch::full({dim}, loc.get<double>())
                                    : to_tensor(loc.get<std::vector<double>>());
  return std::make_unique<ContaminatedDataset>(std::move(base), fraction, std::move(loc_tensor),
                                               outlier_std);
}

std::unique_ptr<Dataset> make_dataset(const std::string& name, const Json& params) {
  Json section = default_data_section();
  section["name"] = name;
  section["params"] = params;
  return make_dataset(section, "");
}

}  // namespace uotflow
