// Exception types of the library. The CLI maps ConfigError to exit code 2 and everything else to 1.
#pragma once

#include <stdexcept>
#include <string>

namespace uotflow {

/// A problem with what the user asked for: an unknown or mistyped config key, an unknown registry
/// name, a missing or malformed input file, a corrupt checkpoint. The message is one line naming
/// the bad value.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A problem that arose while running (a non-finite loss, a failed write).
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace uotflow
