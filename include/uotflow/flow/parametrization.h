// Parametrizations of the measures a sliced-Wasserstein JKO flow moves: particles, weights on a
// 2-D grid, a generator MLP, a RealNVP normalizing flow, a convolutional generator of images. Each
// gives batches of the current measure (with gradients), batches of the frozen previous one, and an
// entropy estimate where it can make one.
#pragma once

#include <ATen/core/Generator.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/registry.h"
#include "uotflow/flow/functional.h"

namespace uotflow {

/// The measure rho_k of a flow and how to move it.
///
///   auto source = make_dataset(Json{{"name", "gaussian"}, {"params", {{"dim", 2}}}});
///   auto rho = make_parametrization(config["parametrization"], *source, torch::kCPU);
///   rho->freeze();                                   // rho_k
///   FlowBatch now = rho->draw(1024, gen, true);      // x [1024, 2] with grad, neg_entropy []
///   FlowBatch before = rho->draw_previous(1024, gen);
class Parametrization {
 public:
  virtual ~Parametrization() = default;
  virtual int64_t dim() const = 0;
  /// A batch of the current measure for the inner objective, differentiable in parameters();
  /// with_entropy adds neg_entropy. Particles and grids return their whole support (n ignored).
  virtual FlowBatch draw(int64_t n, at::Generator& gen, bool with_entropy) = 0;
  /// A batch of the frozen previous measure (no gradient).
  virtual FlowBatch draw_previous(int64_t n, at::Generator& gen) = 0;
  /// Freezes the current measure as the previous one (the start of a JKO step).
  virtual void freeze() = 0;
  /// The tensors the optimiser moves.
  virtual std::vector<torch::Tensor> parameters() = 0;
  /// Factor applied to the gradients before a step (particles: N, so that the learning rate is a
  /// step size on each particle's own gradient).
  virtual double gradient_scale() const {
    return 1.0;
  }
  /// Restores constraints after an optimiser step (grid: projection onto the simplex).
  virtual void project() {}
  /// Entropy by noise, after an optimiser step of size `step`: particles with particles.noise =
  /// lambda > 0 move by sqrt(2 lambda step) N(0, I) (the Euler-Maruyama step of the sliced
  /// Wasserstein flow of Liutkus et al. 2019, SWF); others do nothing and draw nothing.
  virtual void diffuse(double /*step*/, at::Generator& /*gen*/) {}
  /// Whether draw(..., true) can estimate E log rho.
  virtual bool has_entropy() const = 0;
  /// Whether log_density() is available at arbitrary points.
  virtual bool has_density() const {
    return false;
  }
  /// log rho(x) for x: [M, D] -> [M] (no gradient).
  virtual torch::Tensor log_density(const torch::Tensor& x);
  /// n draws (particles: all of them) for outputs and checks: x [n, D] and weights (grid), CPU,
  /// float32, no gradient.
  virtual FlowBatch sample(int64_t n, at::Generator& gen) = 0;
  /// Full state (for checkpoints) and the weights for final/ (CPU tensors by name).
  virtual void save(torch::serialize::OutputArchive& archive) = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;
  virtual std::map<std::string, torch::Tensor> export_weights() = 0;
  /// Loads what export_weights() wrote (a ConfigError names a missing or misshapen tensor).
  virtual void import_weights(const std::map<std::string, torch::Tensor>& weights) = 0;
  /// The default optimiser: "adam" for nets, "sgd" for particles and grids.
  virtual std::string default_optimizer() const = 0;
};

/// The space a flow's measure lives in: its dimension and, when a point is an image, its shape.
struct FlowSpace {
  int64_t dim = 0;
  std::vector<int64_t> image_shape;  ///< [C, H, W], or empty
};

/// Registry: factories take the parametrization section, the source rho_0 (its dim is the flow's),
/// the flow's space and the device.
using ParametrizationRegistry = Registry<std::unique_ptr<Parametrization>(
    const Json& section, const Dataset& source, const FlowSpace& space, torch::Device)>;
ParametrizationRegistry& parametrization_registry();

/// The default "parametrization" section: {"name", and one sub-section per kind: "particles",
/// "grid", "generator", "realnvp", "conv_generator"}.
Json default_parametrization_section();

/// Builds the parametrization the section names, starting at rho_0 = `source` (particles: n draws
/// of it; grid, generator and realnvp: it must be an isotropic Gaussian N(mean, std^2 I);
/// conv_generator: the untrained decoder's image of N(0, I), for image spaces). `image_shape`:
/// the shape of a point when the flow's points are images.
std::unique_ptr<Parametrization> make_parametrization(const Json& section, const Dataset& source,
                                                      torch::Device device,
                                                      const std::vector<int64_t>& image_shape = {});

/// Euclidean projection of each row of v: [..., N] onto the probability simplex.
torch::Tensor project_to_simplex(const torch::Tensor& v);

/// Plug-in Gaussian KDE estimate of E log rho, mean_i log((1/N) sum_j K_h(x_i - x_j)), from
/// samples x: [N, D] with bandwidth h.
torch::Tensor kde_neg_entropy(const torch::Tensor& x, double bandwidth);

/// Scott's rule bandwidth: mean coordinate std * N^(-1/(D+4)), for x: [N, D].
double scott_bandwidth(const torch::Tensor& x);

}  // namespace uotflow
