// .npy files (NumPy format 1.0): float32/float64/int64, C order; what users open from Python.
#pragma once

#include <torch/types.h>

#include <string>

namespace uotflow {

/// Writes a CPU tensor (float32, float64 or int64; any shape) as .npy, atomically (temp file +
/// rename).
void save_npy(const std::string& path, const torch::Tensor& tensor);

/// Reads a .npy file (little-endian float32/float64/int32/int64, C order). Raises ConfigError on a
/// missing, truncated or unsupported file, naming the path and the problem.
torch::Tensor load_npy(const std::string& path);

}  // namespace uotflow
