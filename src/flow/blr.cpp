// Bayesian logistic regression as a potential: V(theta) = -log p(theta | train set) for
// theta = (w, log alpha), w ~ N(0, I / alpha), alpha ~ Gamma(a0, rate b0) (the SVGD / JKO-ICNN
// set-up), with the posterior predictive on the test split as diagnostics.
#include <torch/torch.h>

#include <cmath>

#include "flow/functional_params.h"
#include "uotflow/core/error.h"
#include "uotflow/data/tabular.h"

namespace uotflow {
namespace {

class LogisticPosterior : public Functional {
 public:
  LogisticPosterior(const Json& params, int64_t dim) {
    check_params(params,
                 {"data", "data_dir", "test_fraction", "split_seed", "prior_shape", "prior_rate",
                  "intercept"},
                 "functional 'blr'");
    const auto name = functional_param<std::string>(params, "blr", "data", "");
    if (name.empty()) {
      throw ConfigError("functional 'blr' needs params.data (known: " + known_sets() + ")");
    }
    const auto dir = functional_param<std::string>(params, "blr", "data_dir", "data/tabular");
    const double test_fraction = functional_param<double>(params, "blr", "test_fraction", 0.2);
    if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
      throw ConfigError("functional 'blr': test_fraction must be in (0, 1)");
    }
    const auto seed = functional_param<uint64_t>(params, "blr", "split_seed", 0);
    prior_shape_ = functional_param<double>(params, "blr", "prior_shape", 1.0);
    prior_rate_ = functional_param<double>(params, "blr", "prior_rate", 0.01);
    if (!(prior_shape_ > 0) || !(prior_rate_ > 0)) {
      throw ConfigError("functional 'blr': prior_shape and prior_rate must be > 0");
    }
    const bool intercept = functional_param<bool>(params, "blr", "intercept", true);
    auto split = split_and_standardise(load_classification(name, dir), test_fraction, seed);
    x_train_ = with_intercept(split.x_train, intercept).to(torch::kFloat32);
    x_test_ = with_intercept(split.x_test, intercept).to(torch::kFloat32);
    // Labels as signs: log sigma(s * x.w) is the log-likelihood of one row.
    sign_train_ = (2 * split.y_train - 1).to(torch::kFloat32);
    y_test_ = split.y_test;
    const int64_t own = x_train_.size(1) + 1;
    if (dim != 0 && dim != own) {
      throw ConfigError("functional 'blr' on '" + name + "' is " + std::to_string(own) +
                        "-dimensional (weights + log alpha) but the flow has dim " +
                        std::to_string(dim));
    }
    dim_ = own;
  }

  torch::Tensor value(const FlowBatch& batch) override {
    const int64_t p = dim_ - 1;
    auto w = batch.x.slice(1, 0, p);        // [N, P]
    auto log_alpha = batch.x.select(1, p);  // [N]
    auto margins = w.matmul(x_train_.to(batch.x.device()).t()) * sign_train_.to(batch.x.device());
    auto log_lik = -torch::nn::functional::softplus(-margins).sum(1);
    auto log_prior_w = 0.5 * p * log_alpha - 0.5 * torch::exp(log_alpha) * w.pow(2).sum(1);
    // Gamma(shape, rate) on alpha, plus log alpha for the change of variables to log alpha.
    auto log_prior_alpha = prior_shape_ * log_alpha - prior_rate_ * torch::exp(log_alpha);
    return weighted_mean(-(log_lik + log_prior_w + log_prior_alpha), batch.weights);
  }

  int64_t dim() const override {
    return dim_;
  }

  // Posterior predictive p(y = 1 | x) = E_theta sigma(x.w) on the test split.
  std::map<std::string, double> diagnostics(const torch::Tensor& theta,
                                            const torch::Tensor& weights) override {
    auto w = theta.slice(1, 0, dim_ - 1).to(torch::kFloat32);
    auto prob = torch::sigmoid(x_test_.matmul(w.t()));  // [M, N]
    prob = weights.defined() ? (prob * weights.to(torch::kFloat32)).sum(1) : prob.mean(1);
    auto y = y_test_.to(torch::kFloat32);
    auto correct = ((prob > 0.5).to(torch::kFloat32) == y).to(torch::kFloat32).mean();
    auto p = prob.to(torch::kDouble).clamp(1e-12, 1.0 - 1e-12);
    auto yd = y.to(torch::kDouble);
    auto log_lik = (yd * torch::log(p) + (1 - yd) * torch::log1p(-p)).mean();
    return {{"test_accuracy", correct.item<double>()}, {"test_loglik", log_lik.item<double>()}};
  }

 private:
  static torch::Tensor with_intercept(const torch::Tensor& x, bool intercept) {
    return intercept ? torch::cat({x, torch::ones({x.size(0), 1}, x.options())}, 1) : x;
  }
  static std::string known_sets() {
    std::string out;
    for (const auto& n : classification_names()) {
      out += (out.empty() ? "" : ", ") + n;
    }
    return out;
  }

  torch::Tensor x_train_, sign_train_, x_test_, y_test_;
  double prior_shape_ = 1.0, prior_rate_ = 0.01;
  int64_t dim_ = 0;
};

}  // namespace

void register_blr(FunctionalRegistry& registry) {
  registry.add("blr",
               "Bayesian logistic regression: -log posterior of (w, log alpha) on a tabular set "
               "(data, data_dir, test_fraction, split_seed)",
               [](const Json& p, const FunctionalInputs& in) {
                 return std::make_unique<LogisticPosterior>(p, in.dim);
               });
}

}  // namespace uotflow
