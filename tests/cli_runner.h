// Runs the built `uotflow` command line from tests: exit code and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "uotflow_build_info.h"

namespace uotflow::testing {

struct CommandResult {
  int code = -1;
  std::string output;  // stdout and stderr together
};

inline CommandResult run_shell(const std::string& cmd) {
  CommandResult result;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    result.output += buffer.data();
  }
  const int status = pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

/// `uotflow ARGS` from the build folder, stderr merged into the output.
inline CommandResult run_cli(const std::string& args) {
  return run_shell(std::string(UOTFLOW_BINARY_DIR) + "/uotflow " + args + " 2>&1");
}

inline std::string last_line(const std::string& text) {
  auto end = text.find_last_not_of('\n');
  auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start + 1) + 1);
}

}  // namespace uotflow::testing
