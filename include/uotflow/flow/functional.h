// Functionals F(rho) of probability measures, the objectives of Wasserstein-type gradient flows:
// potential energies, negative entropy, KL to a Gibbs target, interaction energies, half SW2^2 to
// a data set, and weighted sums. Picked by name from the config's "functional" section.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "uotflow/core/config.h"
#include "uotflow/core/registry.h"
#include "uotflow/data/dataset.h"

namespace uotflow {

/// log(2 pi), of Gaussian log-densities.
constexpr double kLog2Pi = 1.8378770664093453;

/// What a functional sees of the current measure rho: a weighted sample and, where the
/// parametrization can estimate it, E_rho log rho.
struct FlowBatch {
  torch::Tensor x;               ///< [N, D] support points (carry the parametrization's gradient)
  torch::Tensor weights;         ///< [N] summing to 1 (grid), undefined = uniform
  torch::Tensor neg_entropy;     ///< [] estimate of E log rho(x), undefined when not available
  at::Generator* gen = nullptr;  ///< for functionals that draw (e.g. data batches)
};

/// A functional F(rho), estimated on a FlowBatch.
///
///   auto f = make_functional(Json{{"name", "interaction"}, {"params", {{"kernel", "ring"}}}}, 2);
///   FlowBatch batch{x};                 // x: [N, 2]
///   torch::Tensor value = f->value(batch);  // [] with grad
class Functional {
 public:
  virtual ~Functional() = default;
  /// F(rho) on the batch: [] (differentiable in batch.x, batch.weights and batch.neg_entropy).
  virtual torch::Tensor value(const FlowBatch& batch) = 0;
  /// The named terms of the value (one entry for a single functional), for logs.
  virtual std::map<std::string, double> terms(const FlowBatch& batch);
  /// Whether value() needs batch.neg_entropy.
  virtual bool needs_entropy() const {
    return false;
  }
  /// The dimension the functional fixes (a potential's target, the data), or 0 when any.
  virtual int64_t dim() const {
    return 0;
  }
  /// Checks of a sample for eval.jsonl that apply to this functional (aggregation radius, test
  /// accuracy, ...). x: [N, D] (CPU, float32), weights: [N] or undefined (uniform).
  virtual std::map<std::string, double> diagnostics(const torch::Tensor& /*x*/,
                                                    const torch::Tensor& /*weights*/) {
    return {};
  }
  /// For a potential V: the Gibbs measure exp(-V) / Z when it is a Gaussian, else undefined.
  virtual GaussianParams gibbs_gaussian() const {
    return {};
  }
  /// The minimiser of the functional when it is KL to a Gaussian (then the flow has the
  /// Fokker-Planck closed form), else undefined.
  virtual GaussianParams gaussian_target() const {
    return {};
  }
  /// The data set the functional compares with (sw_data; a sum: its data term's), or null. A run
  /// evaluates, snapshots and plots a flow towards it as it does a generative model's samples.
  virtual std::shared_ptr<const Dataset> data() const {
    return nullptr;
  }
};

/// What a functional's factory gets besides its "params".
struct FunctionalInputs {
  int64_t dim = 0;  ///< the flow's dimension (0 = not fixed yet)
  /// The data set of a data term (sw_data) when it is given in memory (an encoded data set, a
  /// caller's tensor): it is used in place of params.data. Null: built from params.data.
  std::shared_ptr<const Dataset> data;
  /// Applied to a data term's data set (given or built from params.data) before it is used: the
  /// encoder of a latent space, so that the term compares with the codes. Empty: used as it is.
  std::function<std::shared_ptr<const Dataset>(std::shared_ptr<const Dataset>)> map_data;
};

using FunctionalRegistry =
    Registry<std::unique_ptr<Functional>(const Json& params, const FunctionalInputs& inputs)>;
FunctionalRegistry& functional_registry();

/// Builds {"name": ..., "params": {...}}; "sum" takes {"terms": [{"name", "weight", "params"}]}.
/// `data`: the data set of its data terms, given in memory (see FunctionalInputs).
std::unique_ptr<Functional> make_functional(const Json& section, int64_t dim,
                                            std::shared_ptr<const Dataset> data = nullptr);
/// The same with every input (a data map besides the dimension and the data).
std::unique_ptr<Functional> make_functional(const Json& section, const FunctionalInputs& inputs);

/// (1/2) E W(x - x') over distinct pairs, with W(x) = |x|^a / a - |x|^b / b (b = 0: log |x|).
/// x: [N, D], weights: [N] or undefined -> [].
torch::Tensor interaction_energy(const torch::Tensor& x, const torch::Tensor& weights, double a,
                                 double b);

/// E_w f over the rows: weights [N] (summing to 1) or undefined (mean). values: [N] -> [].
torch::Tensor weighted_mean(const torch::Tensor& values, const torch::Tensor& weights);

}  // namespace uotflow
