// safetensors files: named tensors that Python reads without our code (json header + raw
// little-endian data).
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace uotflow {

/// Writes named CPU tensors (float32/float64/int64) as a .safetensors file, atomically.
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors);

/// Reads a .safetensors file. Raises ConfigError on a missing, truncated or malformed file.
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

}  // namespace uotflow
