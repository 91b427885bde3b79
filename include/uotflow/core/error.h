// Exception types of the library. The CLI maps ConfigError to exit code 2 and everything else to 1.
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
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

/// Sizes as messages print them: shape_text(t.sizes()) == "[2, 3]" (a std::vector<int64_t> too).
inline std::string shape_text(c10::IntArrayRef sizes) {
  std::string text;
  for (const int64_t size : sizes) {
    text += (text.empty() ? "" : ", ") + std::to_string(size);
  }
  return "[" + text + "]";
}

}  // namespace uotflow
