// Small assertions shared by the numerical tests.
#pragma once

#include <gtest/gtest.h>

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

}  // namespace uotflow::testing
