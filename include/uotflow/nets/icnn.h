// Input-convex neural networks (Amos et al. 2017): a scalar potential psi(x) convex in x, whose
// gradient map grad psi is the Brenier map of a W2 JKO step (JKO-ICNN).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/arg.h>

#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/nets/nets.h"

namespace uotflow {

/// The settings of an input-convex net (the "icnn" section of jko_icnn; the "potential" section
/// with net = icnn reads width and depth from there and the rest where given).
///
///   auto options = IcnnOptions().width(64).depth(2).activation("softplus");
struct IcnnOptions {
  TORCH_ARG(int64_t, width) = 64;               ///< units of each hidden layer
  TORCH_ARG(int64_t, depth) = 2;                ///< hidden layers (>= 1)
  TORCH_ARG(std::string, activation) = "celu";  ///< celu | softplus: convex and non-decreasing
  /// true: a learnt convex quadratic |L x|^2 / 2 (L starts at sqrt(1 - s) I); false: the fixed
  /// |x|^2 (1 - s) / 2, so that grad psi can only add to the identity.
  TORCH_ARG(bool, quadratic) = true;
  TORCH_ARG(double, strong_convexity) = 1e-3;  ///< s: psi holds s |x|^2 / 2, Hess psi >= s I

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads a section; keys it lacks keep the defaults (ConfigError naming a bad value).
  static IcnnOptions from_json(const Json& section);
  Json to_json() const;
};

/// psi(x) = sum_j c_j z_L,j + a^T x + q(x) + s |x|^2 / 2, with z_1 = act(W_0 x + b_0) and
/// z_{l+1} = act(U_l z_l + W_l x + b_l) (skip connections from the input), q(x) = |L x|^2 / 2
/// (or (1 - s) |x|^2 / 2). psi is convex because U_l >= 0 and c >= 0 (kept so by project()) and
/// act is convex and non-decreasing; strongly convex through s. It starts with c = 0, a = 0 and q
/// + s |x|^2 / 2 = |x|^2 / 2, so grad psi is the identity.
///
///   Icnn psi(2, IcnnOptions());
///   auto x = torch::randn({8, 2}).requires_grad_(true);
///   auto y = psi.gradient(x, /*create_graph=*/true);   // [8, 2], = x at the start
///   optimizer.step(); psi.project();
class Icnn : public PotentialNet {
 public:
  Icnn(int64_t dim, IcnnOptions options);

  /// psi(x): [B, D] -> [B].
  torch::Tensor forward(const torch::Tensor& x) override;
  /// grad psi(x): [B, D] -> [B, D], also under a NoGradGuard. With create_graph the result keeps
  /// its graph (to x when x requires grad, and to the weights) for Hessians and training.
  torch::Tensor gradient(const torch::Tensor& x, bool create_graph);
  /// Puts the weights that must be >= 0 (U_l, c) back onto that set: after each optimiser step.
  void project();
  /// The start: c = 0, a = 0, q = (1 - s)|x|^2 / 2 (grad psi = identity); the other weights drawn
  /// from gen (U_l >= 0).
  void reset_to_identity(at::Generator& gen);

 private:
  torch::Tensor activate(const torch::Tensor& h) const;

  int64_t dim_;
  IcnnOptions options_;
  std::vector<torch::Tensor> input_weights_;   // W_l: [width, D], l = 0..depth-1
  std::vector<torch::Tensor> biases_;          // b_l: [width]
  std::vector<torch::Tensor> hidden_weights_;  // U_l: [width, width] >= 0, l = 1..depth-1
  torch::Tensor output_weights_;               // c: [width] >= 0
  torch::Tensor linear_;                       // a: [D]
  torch::Tensor quadratic_;                    // L: [D, D] (quadratic = true)
};

}  // namespace uotflow
