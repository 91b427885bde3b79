// The functional registry and the closed-form functionals: potentials, negative entropy, KL,
// interaction energies, half SW2^2 to data, weighted sums.
#include "uotflow/flow/functional.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "flow/functional_params.h"
#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/ot/sliced.h"

namespace uotflow {
namespace {

// The dimension a functional fixes must agree with the flow's (0 = not fixed).
int64_t agree_dim(int64_t flow_dim, int64_t own_dim, const std::string& what) {
  if (flow_dim != 0 && own_dim != 0 && flow_dim != own_dim) {
    throw ConfigError("functional '" + what + "' is " + std::to_string(own_dim) +
                      "-dimensional but the flow has dim " + std::to_string(flow_dim));
  }
  return own_dim != 0 ? own_dim : flow_dim;
}

// V(x) = (x - b)^T A (x - b) / 2: the Gibbs measure is N(b, A^-1). Params: those of the gaussian
// data set (dim, mean, std | covariance | precision | seed) describing N(b, A^-1).
class Quadratic : public Functional {
 public:
  Quadratic(const Json& params, int64_t dim) {
    Json p = params.is_null() ? Json::object() : params;
    if (dim != 0 && !p.contains("dim")) {
      p["dim"] = dim;
    }
    target_ = make_dataset(Json{{"name", "gaussian"}, {"params", p}})->gaussian();
    dim_ = agree_dim(dim, target_.mean.size(0), "quadratic");
    mean_ = target_.mean.to(torch::kFloat32);
    precision_ = torch::linalg_inv(target_.covariance).to(torch::kFloat32);
  }
  torch::Tensor value(const FlowBatch& batch) override {
    auto d = batch.x - mean_.to(batch.x.device());
    auto v = 0.5 * (d.matmul(precision_.to(batch.x.device())) * d).sum(1);
    return weighted_mean(v, batch.weights);
  }
  int64_t dim() const override {
    return dim_;
  }
  GaussianParams gibbs_gaussian() const override {
    return target_;
  }

 private:
  GaussianParams target_;
  torch::Tensor mean_, precision_;
  int64_t dim_ = 0;
};

// V(x) = -log sum_k w_k N(x; m_k, s_k^2 I). Params: means [[...]], std (number or list), weights.
class MixturePotential : public Functional {
 public:
  MixturePotential(const Json& params, int64_t dim) {
    check_params(params, {"means", "std", "weights"}, "functional 'gmm'");
    const auto means =
        functional_param<std::vector<std::vector<double>>>(params, "gmm", "means", {});
    if (means.empty() || means[0].empty()) {
      throw ConfigError("functional 'gmm': parameter 'means' must be a non-empty list of points");
    }
    const int64_t k = means.size();
    const int64_t d = means[0].size();
    means_ = torch::empty({k, d}, torch::kDouble);
    for (int64_t i = 0; i < k; ++i) {
      if (static_cast<int64_t>(means[i].size()) != d) {
        throw ConfigError("functional 'gmm': every mean needs " + std::to_string(d) +
                          " coordinates");
      }
      means_[i] = torch::tensor(means[i], torch::kDouble);
    }
    std::vector<double> stds(k, 1.0);
    if (params.contains("std") && params["std"].is_number()) {
      stds.assign(k, params["std"].get<double>());
    } else {
      stds = functional_param<std::vector<double>>(params, "gmm", "std", stds);
    }
    auto w = functional_param<std::vector<double>>(params, "gmm", "weights",
                                                   std::vector<double>(k, 1.0 / k));
    if (static_cast<int64_t>(stds.size()) != k || static_cast<int64_t>(w.size()) != k) {
      throw ConfigError("functional 'gmm': 'std' and 'weights' need one entry per mean (" +
                        std::to_string(k) + ")");
    }
    for (int64_t i = 0; i < k; ++i) {
      if (!(stds[i] > 0) || !(w[i] > 0)) {
        throw ConfigError("functional 'gmm': every std and weight must be > 0");
      }
    }
    stds_ = torch::tensor(stds, torch::kDouble);
    log_weights_ =
        torch::log(torch::tensor(w, torch::kDouble) / std::accumulate(w.begin(), w.end(), 0.0));
    dim_ = agree_dim(dim, d, "gmm");
  }
  torch::Tensor value(const FlowBatch& batch) override {
    const auto opts = batch.x.options();
    auto m = means_.to(opts), s = stds_.to(opts), lw = log_weights_.to(opts);
    auto sq = (batch.x.unsqueeze(1) - m.unsqueeze(0)).pow(2).sum(2);  // [N, K]
    const double d = static_cast<double>(dim_);
    auto log_comp = lw - 0.5 * sq / s.pow(2) - d * torch::log(s) - 0.5 * d * kLog2Pi;
    return weighted_mean(-torch::logsumexp(log_comp, 1), batch.weights);
  }
  int64_t dim() const override {
    return dim_;
  }
  std::map<std::string, double> diagnostics(const torch::Tensor& x,
                                            const torch::Tensor& weights) override {
    // SW2 to a fixed draw of the mixture the flow should reach (KL flows towards it).
    auto gen = make_stream(0, "gmm-diagnostics");
    const int64_t n = 5000;
    auto comp = torch::multinomial(log_weights_.exp(), n, true, gen);
    auto y = means_.index_select(0, comp) + stds_.index_select(0, comp).unsqueeze(1) *
                                                torch::randn({n, dim_}, gen, torch::kDouble);
    return {{"sw2_gibbs",
             sliced_wasserstein(x.to(torch::kDouble), y, 500, 0, 2.0, weights).item<double>()}};
  }

 private:
  torch::Tensor means_, stds_, log_weights_;
  int64_t dim_ = 0;
};

// E log rho, from the parametrization's estimate.
class NegativeEntropy : public Functional {
 public:
  torch::Tensor value(const FlowBatch& batch) override {
    TORCH_CHECK(batch.neg_entropy.defined(), "the parametrization gave no entropy estimate");
    return batch.neg_entropy;
  }
  bool needs_entropy() const override {
    return true;
  }
};

// KL(rho | exp(-V)/Z) = E V + E log rho (+ log Z, a constant left out).
class KullbackLeibler : public Functional {
 public:
  KullbackLeibler(const Json& params, int64_t dim) {
    check_params(params, {"target"}, "functional 'kl'");
    if (!params.contains("target")) {
      throw ConfigError("functional 'kl' needs params.target, e.g. {\"name\": \"quadratic\", ...}");
    }
    potential_ = make_functional(params["target"], dim);
    if (potential_->needs_entropy()) {
      throw ConfigError("functional 'kl': the target must be a potential, not an entropy term");
    }
  }
  torch::Tensor value(const FlowBatch& batch) override {
    return potential_->value(batch) + entropy_.value(batch);
  }
  std::map<std::string, double> terms(const FlowBatch& batch) override {
    auto out = std::map<std::string, double>{{"potential", potential_->value(batch).item<double>()},
                                             {"neg_entropy", entropy_.value(batch).item<double>()}};
    out["kl"] = out["potential"] + out["neg_entropy"];
    return out;
  }
  bool needs_entropy() const override {
    return true;
  }
  int64_t dim() const override {
    return potential_->dim();
  }
  std::map<std::string, double> diagnostics(const torch::Tensor& x,
                                            const torch::Tensor& weights) override {
    return potential_->diagnostics(x, weights);
  }
  GaussianParams gaussian_target() const override {
    return potential_->gibbs_gaussian();
  }

 private:
  std::unique_ptr<Functional> potential_;
  NegativeEntropy entropy_;
};

// (1/2) E W(x - x'), W(x) = |x|^a/a - |x|^b/b. Kernels: ring (a 4, b 2: from N(0, 0.25^2 I) the
// steady state is a ring of radius 0.5), disk (a 2, b 0 = log: uniform on the unit disk in 2-D),
// power (a and b given).
class Interaction : public Functional {
 public:
  Interaction(const Json& params, int64_t dim) : dim_(dim) {
    check_params(params, {"kernel", "a", "b"}, "functional 'interaction'");
    kernel_ = functional_param<std::string>(params, "interaction", "kernel", "ring");
    if (kernel_ == "ring") {
      a_ = 4.0, b_ = 2.0;
    } else if (kernel_ == "disk") {
      a_ = 2.0, b_ = 0.0;
    } else if (kernel_ == "power") {
      a_ = functional_param<double>(params, "interaction", "a", 4.0);
      b_ = functional_param<double>(params, "interaction", "b", 2.0);
      if (!(a_ > 0) || b_ < 0) {
        throw ConfigError("functional 'interaction': kernel 'power' needs a > 0 and b >= 0");
      }
    } else {
      throw ConfigError("functional 'interaction': unknown kernel '" + kernel_ +
                        "' (known: ring, disk, power)");
    }
    if (kernel_ != "power" && (params.contains("a") || params.contains("b"))) {
      throw ConfigError("functional 'interaction': a and b are only for kernel 'power'");
    }
  }
  torch::Tensor value(const FlowBatch& batch) override {
    return interaction_energy(batch.x, batch.weights, a_, b_);
  }
  std::map<std::string, double> diagnostics(const torch::Tensor& x,
                                            const torch::Tensor& weights) override {
    auto w = weights.defined() ? weights.to(torch::kDouble)
                               : torch::full({x.size(0)}, 1.0 / x.size(0), torch::kDouble);
    auto xd = x.to(torch::kDouble);
    auto centre = (w.unsqueeze(1) * xd).sum(0);
    auto r = (xd - centre).norm(2, 1);
    const double mean = (w * r).sum().item<double>();
    const double std = std::sqrt((w * (r - mean).pow(2)).sum().item<double>());
    std::map<std::string, double> out{{"radius_mean", mean}, {"radius_std", std}};
    if (kernel_ == "disk" && x.size(1) == 2) {
      // Kolmogorov-Smirnov distance of the radial CDF to the uniform disk's F(r) = r^2.
      auto order = r.argsort();
      auto rs = r.index_select(0, order).clamp_max(1.0);
      auto cdf = w.index_select(0, order).cumsum(0);
      auto before = cdf - w.index_select(0, order);
      auto exact = rs.pow(2);
      auto gap = torch::maximum((cdf - exact).abs(), (before - exact).abs());
      // Mass beyond radius 1 counts fully (F = 1 there).
      auto beyond = (w * (r > 1.0).to(torch::kDouble)).sum();
      out["disk_ks"] = torch::maximum(gap.max(), beyond).item<double>();
    }
    return out;
  }

 private:
  std::string kernel_;
  double a_ = 4.0, b_ = 2.0;
  int64_t dim_ = 0;
};

// (1/2) SW2^2(rho, data): a fresh data batch of the sample's size and fresh directions per call.
// The data set comes from params.data, or is given in memory.
class SlicedToData : public Functional {
 public:
  SlicedToData(const Json& params, const FunctionalInputs& in) {
    check_params(params, {"data", "n_projections"}, "functional 'sw_data'");
    if (in.data) {
      data_ = in.data;
    } else if (!params.contains("data")) {
      throw ConfigError("functional 'sw_data' needs params.data (a data section)");
    } else {
      Json section = default_data_section();
      merge_checked(section, params["data"], "functional.params.data");
      data_ = make_dataset(section, "functional.params.data");
    }
    if (in.map_data) {
      data_ = in.map_data(data_);
    }
    n_projections_ = functional_param<int64_t>(params, "sw_data", "n_projections", 200);
    if (n_projections_ < 1) {
      throw ConfigError("functional 'sw_data': n_projections must be >= 1");
    }
    dim_ = agree_dim(in.dim, data_->dim(), "sw_data");
  }
  torch::Tensor value(const FlowBatch& batch) override {
    TORCH_CHECK(batch.gen != nullptr, "sw_data needs a random generator");
    auto y = data_->sample(batch.x.size(0), *batch.gen).to(batch.x.options());
    auto theta = random_directions(dim_, n_projections_, *batch.gen, batch.x.options());
    return 0.5 * sliced_wasserstein_pp(batch.x, y, theta, 2.0, batch.weights);
  }
  int64_t dim() const override {
    return dim_;
  }
  std::shared_ptr<const Dataset> data() const override {
    return data_;
  }
  std::map<std::string, double> diagnostics(const torch::Tensor& x,
                                            const torch::Tensor& weights) override {
    auto gen = make_stream(0, "sw-data-diagnostics");
    auto y = data_->sample(std::max<int64_t>(x.size(0), 2000), gen);
    return {{"sw2_data", sliced_wasserstein(x, y, 500, 0, 2.0, weights).item<double>()}};
  }

 private:
  std::shared_ptr<const Dataset> data_;
  int64_t n_projections_ = 200;
  int64_t dim_ = 0;
};

// sum_i weight_i F_i.
class WeightedSum : public Functional {
 public:
  WeightedSum(const Json& params, const FunctionalInputs& in) {
    int64_t dim = in.dim;
    check_params(params, {"terms"}, "functional 'sum'");
    if (!params.contains("terms") || !params["terms"].is_array() || params["terms"].empty()) {
      throw ConfigError(
          "functional 'sum' needs params.terms: a non-empty list of "
          "{\"name\", \"weight\", \"params\"}");
    }
    for (const auto& term : params["terms"]) {
      check_params(term, {"name", "weight", "params"}, "a term of functional 'sum'");
      const auto weight = functional_param<double>(term, "sum", "weight", 1.0);
      Json section{{"name", term.value("name", "")},
                   {"params", term.value("params", Json::object())}};
      auto f = make_functional(section, FunctionalInputs{dim, in.data, in.map_data});
      if (!data_) {
        data_ = f->data();
      }
      dim = agree_dim(dim, f->dim(), section["name"].get<std::string>());
      names_.push_back(section["name"].get<std::string>());
      terms_.emplace_back(weight, std::move(f));
    }
    dim_ = dim;
  }
  torch::Tensor value(const FlowBatch& batch) override {
    torch::Tensor total;
    for (auto& [weight, f] : terms_) {
      auto v = weight * f->value(batch);
      total = total.defined() ? total + v : v;
    }
    return total;
  }
  std::map<std::string, double> terms(const FlowBatch& batch) override {
    std::map<std::string, double> out;
    double total = 0.0;
    for (size_t i = 0; i < terms_.size(); ++i) {
      const double v = terms_[i].second->value(batch).item<double>();
      out[names_[i] + (out.count(names_[i]) ? "_" + std::to_string(i) : "")] = v;
      total += terms_[i].first * v;
    }
    out["total"] = total;
    return out;
  }
  bool needs_entropy() const override {
    for (const auto& t : terms_) {
      if (t.second->needs_entropy()) {
        return true;
      }
    }
    return false;
  }
  int64_t dim() const override {
    return dim_;
  }
  std::shared_ptr<const Dataset> data() const override {
    return data_;
  }
  std::map<std::string, double> diagnostics(const torch::Tensor& x,
                                            const torch::Tensor& weights) override {
    std::map<std::string, double> out;
    for (auto& t : terms_) {
      out.merge(t.second->diagnostics(x, weights));
    }
    return out;
  }

 private:
  std::vector<std::pair<double, std::unique_ptr<Functional>>> terms_;
  std::vector<std::string> names_;
  std::shared_ptr<const Dataset> data_;  // the first data term's
  int64_t dim_ = 0;
};

}  // namespace

std::map<std::string, double> Functional::terms(const FlowBatch& batch) {
  return {{"value", value(batch).item<double>()}};
}

torch::Tensor weighted_mean(const torch::Tensor& values, const torch::Tensor& weights) {
  return weights.defined() ? (values * weights).sum() : values.mean();
}

torch::Tensor interaction_energy(const torch::Tensor& x, const torch::Tensor& weights, double a,
                                 double b) {
  const int64_t n = x.size(0);
  TORCH_CHECK(n >= 2, "interaction energy needs at least 2 points");
  auto eye = torch::eye(n, x.options().dtype(torch::kBool));
  // Squared distances with 1 on the diagonal, so neither the value nor its gradient sees r = 0.
  auto r2 = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(2).masked_fill(eye, 1.0);
  auto w = torch::pow(r2, a / 2.0) / a;
  w = b == 0.0 ? w - 0.5 * torch::log(r2) : w - torch::pow(r2, b / 2.0) / b;
  w = w.masked_fill(eye, 0.0);
  if (weights.defined()) {
    // E over independent pairs of the weighted measure, the diagonal left out.
    return 0.5 * (weights.unsqueeze(1) * weights.unsqueeze(0) * w).sum();
  }
  return 0.5 * w.sum() / static_cast<double>(n * (n - 1));
}

FunctionalRegistry& functional_registry() {
  static FunctionalRegistry registry = [] {
    FunctionalRegistry r("functional");
    r.add("quadratic", "V(x) = (x-b)^T A (x-b)/2 for the Gaussian N(b, A^-1) the params describe",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<Quadratic>(p, in.dim);
          });
    r.add("gmm", "negative log density of a Gaussian mixture (means, std, weights)",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<MixturePotential>(p, in.dim);
          });
    r.add("entropy", "negative entropy E log rho (needs a parametrization with an estimate)",
          [](const Json& p, const FunctionalInputs&) {
            check_params(p, {}, "functional 'entropy'");
            return std::make_unique<NegativeEntropy>();
          });
    r.add("kl", "KL to exp(-V)/Z: potential params.target + negative entropy",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<KullbackLeibler>(p, in.dim);
          });
    r.add("interaction", "(1/2) E W(x - x'), kernel ring | disk | power (a, b)",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<Interaction>(p, in.dim);
          });
    r.add("sw_data", "(1/2) SW2^2 to a data set (params.data, n_projections)",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<SlicedToData>(p, in);
          });
    r.add("sum", "weighted sum of functionals (params.terms)",
          [](const Json& p, const FunctionalInputs& in) {
            return std::make_unique<WeightedSum>(p, in);
          });
    register_blr(r);
    return r;
  }();
  return registry;
}

std::unique_ptr<Functional> make_functional(const Json& section, int64_t dim,
                                            std::shared_ptr<const Dataset> data) {
  return make_functional(section, FunctionalInputs{dim, std::move(data)});
}

std::unique_ptr<Functional> make_functional(const Json& section, const FunctionalInputs& inputs) {
  if (!section.is_object() || !section.contains("name") || !section["name"].is_string()) {
    throw ConfigError(
        "a functional section needs a \"name\" (known: " + functional_registry().known() + ")");
  }
  check_params(section, {"name", "params"}, "the functional section");
  const Json params = section.value("params", Json::object());
  if (!params.is_object()) {
    throw ConfigError("functional '" + section["name"].get<std::string>() +
                      "': params must be an object");
  }
  return functional_registry().create(section["name"].get<std::string>(), params, inputs);
}

}  // namespace uotflow
