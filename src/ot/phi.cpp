// The Psi* registry: closed forms of the conjugates and of the divergences they come from.
#include "uotflow/ot/phi.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "uotflow/core/error.h"

namespace uotflow {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

PhiRegistry& phi_registry() {
  static PhiRegistry registry = [] {
    PhiRegistry r("phi");
    r.add("linear", "Psi*(s) = s: hard marginal constraint (balanced OT)", [] {
      return PhiDefinition{[](const torch::Tensor& s) { return s; },
                           [](double t) { return t == 1.0 ? 0.0 : kInf; }, /*linear=*/true};
    });
    r.add("kl", "Psi*(s) = exp(s) - 1: KL divergence, Psi(t) = t log t - t + 1", [] {
      return PhiDefinition{[](const torch::Tensor& s) { return torch::expm1(s); },
                           [](double t) {
                             if (t < 0) {
                               return kInf;
                             }
                             return t == 0 ? 1.0 : t * std::log(t) - t + 1.0;
                           },
                           /*linear=*/false, /*kl=*/true};
    });
    r.add("chi2", "Psi*(s) = y^2/4 + y, y = max(s, -2): Pearson chi^2, Psi(t) = (t - 1)^2", [] {
      return PhiDefinition{[](const torch::Tensor& s) {
                             auto y = torch::clamp_min(s, -2.0);
                             return 0.25 * y * y + y;
                           },
                           [](double t) { return t < 0 ? kInf : (t - 1.0) * (t - 1.0); }};
    });
    r.add("softplus",
          "Psi*(s) = 2 log(1 + e^s) - 2 log 2: Jensen-Shannon-like, Psi(t) = t log t + (2-t) "
          "log(2-t)",
          [] {
            return PhiDefinition{[](const torch::Tensor& s) {
                                   return 2.0 * torch::nn::functional::softplus(s) -
                                          2.0 * std::log(2.0);
                                 },
                                 [](double t) {
                                   if (t < 0 || t > 2) {
                                     return kInf;
                                   }
                                   const double a = t == 0 ? 0.0 : t * std::log(t);
                                   const double b = t == 2 ? 0.0 : (2 - t) * std::log(2 - t);
                                   return a + b;
                                 }};
          });
    return r;
  }();
  return registry;
}

Phi::Phi(const std::string& name, double marginal_weight)
    : name_(name), marginal_weight_(marginal_weight), def_(phi_registry().create(name)) {
  if (!(marginal_weight > 0) || !std::isfinite(marginal_weight)) {
    throw ConfigError("marginal_weight must be a positive number, got " +
                      std::to_string(marginal_weight));
  }
}

torch::Tensor Phi::operator()(const torch::Tensor& s) const {
  if (is_linear() || marginal_weight_ == 1.0) {
    return def_.conjugate(s);
  }
  return marginal_weight_ * def_.conjugate(s / marginal_weight_);
}

double Phi::primal(double t) const {
  return marginal_weight_ * def_.primal(t);
}

}  // namespace uotflow
