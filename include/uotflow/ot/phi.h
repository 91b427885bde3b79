// Convex conjugates Psi* that relax the marginals of unbalanced OT ("phi" registry), normalised so
// that Psi*(0) = 0 and Psi*'(0) = 1.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>

#include "uotflow/core/registry.h"

namespace uotflow {

/// One conjugate pair: Psi* (on tensors, differentiable) and the divergence generator Psi (on
/// doubles, for tests and docs; +inf outside its domain).
struct PhiDefinition {
  std::function<torch::Tensor(const torch::Tensor&)> conjugate;
  std::function<double(double)> primal;
  /// Psi*(s) = s: the marginal is a hard constraint (balanced OT on that side).
  bool linear = false;
  /// Psi is the KL generator: JKO steps of this divergence to a Gibbs target follow the
  /// Fokker-Planck equation, whose Gaussian case has a closed form.
  bool kl = false;
};

using PhiRegistry = Registry<PhiDefinition()>;
/// linear, kl, chi2, softplus.
PhiRegistry& phi_registry();

/// A conjugate with an optional divergence weight alpha: alpha * Psi*(s / alpha), the conjugate of
/// alpha * Psi. Linear ignores alpha (alpha * s/alpha = s).
///
///   Phi phi("kl", /*marginal_weight=*/1.0);
///   torch::Tensor y = phi(s);  // exp(s) - 1, elementwise
class Phi {
 public:
  explicit Phi(const std::string& name, double marginal_weight = 1.0);

  /// s: any shape -> same shape.
  torch::Tensor operator()(const torch::Tensor& s) const;
  /// alpha * Psi(t), +inf outside the domain.
  double primal(double t) const;

  const std::string& name() const {
    return name_;
  }
  double marginal_weight() const {
    return marginal_weight_;
  }
  bool is_linear() const {
    return def_.linear;
  }
  bool is_kl() const {
    return def_.kl;
  }

 private:
  std::string name_;
  double marginal_weight_;
  PhiDefinition def_;
};

}  // namespace uotflow
