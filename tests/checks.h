// Small assertions shared by the numerical tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <string>

#include "uotflow/core/error.h"

namespace uotflow::testing {

/// |value - reference| / |reference| (reference 0 compares absolutely against 1e-300).
inline double relative_error(double value, double reference) {
  return std::abs(value - reference) / std::max(std::abs(reference), 1e-300);
}

/// Expects `call` to throw a ConfigError with a non-empty one-line message; `what` names the case
/// and, when `mentions` is not empty, the message must contain it.
inline void expect_config_error(const std::function<void()>& call, const std::string& what,
                                const std::string& mentions = "") {
  try {
    call();
    ADD_FAILURE() << what << ": no ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << what << ": " << message;
    EXPECT_FALSE(message.empty()) << what;
    EXPECT_NE(message.find(mentions), std::string::npos) << what << ": " << message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": expected ConfigError, got " << e.what();
  }
}

/// Central finite differences of f with respect to every entry of `param` (float64). `param` is a
/// detached view of the weights (no NoGradGuard: f may itself need autograd, e.g. for R1).
inline torch::Tensor finite_difference(const std::function<double()>& f, torch::Tensor param,
                                       double eps = 1e-6) {
  auto grad = torch::zeros_like(param);
  auto flat = param.view(-1);
  auto gflat = grad.view(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double old = flat[i].item<double>();
    flat[i] = old + eps;
    const double up = f();
    flat[i] = old - eps;
    const double down = f();
    flat[i] = old;
    gflat[i] = (up - down) / (2 * eps);
  }
  return grad;
}

}  // namespace uotflow::testing
