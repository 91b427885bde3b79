// Private helpers for the functional factories: typed parameter reads with errors that name the
// functional and the key.
#pragma once

#include <string>

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/flow/functional.h"

namespace uotflow {

/// params[key] as T, or `fallback` when absent; a wrong type is a ConfigError naming both.
template <typename T>
T functional_param(const Json& params, const std::string& functional, const std::string& key,
                   const T& fallback) {
  if (!params.is_object() || !params.contains(key)) {
    return fallback;
  }
  try {
    return params.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError("functional '" + functional + "': parameter '" + key +
                      "' has the wrong type (" + params.at(key).dump() + ")");
  }
}

/// Registers the Bayesian logistic-regression potential ("blr").
void register_blr(FunctionalRegistry& registry);

}  // namespace uotflow
