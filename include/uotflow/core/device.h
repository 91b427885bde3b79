// Devices as users name them: "cpu", "cuda", "cuda:N".
#pragma once

#include <torch/types.h>

#include <string>

namespace uotflow {

/// Parses "cpu", "cuda", "cuda:N"; a malformed name or CUDA that is not available is a
/// ConfigError.
///
///   torch::Device device = parse_device("cuda:0");
torch::Device parse_device(const std::string& name);

}  // namespace uotflow
