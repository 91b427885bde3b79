// .npy and .npz files (NumPy format 1.0): float32/float64/int64, C order; what users open from
// Python.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace uotflow {

/// Writes a CPU tensor (float32, float64 or int64; any shape) as .npy, atomically (temp file +
/// rename).
void save_npy(const std::string& path, const torch::Tensor& tensor);

/// Reads a .npy file (little-endian float32/float64/int32/int64, C order). Raises ConfigError on a
/// missing, truncated or unsupported file, naming the path and the problem.
torch::Tensor load_npy(const std::string& path);

/// The bytes of a .npy file holding `tensor` (what save_npy writes); `path` names it in errors.
std::string npy_bytes(const torch::Tensor& tensor, const std::string& path);

/// Parses the bytes of a .npy file; `path` names it in errors (as load_npy).
torch::Tensor parse_npy(const std::string& bytes, const std::string& path);

/// Writes named CPU tensors as an uncompressed .npz (what np.savez writes; np.load reads it),
/// atomically. Names must be non-empty and free of '/'.
///
///   save_npz("stats.npz", {{"mu", mu}, {"sigma", sigma}});
void save_npz(const std::string& path, const std::map<std::string, torch::Tensor>& arrays);

/// Reads an .npz written by np.savez or save_npz (stored entries; np.savez_compressed files are
/// rejected with a ConfigError saying so). Missing, truncated or malformed files raise a
/// ConfigError naming the path.
std::map<std::string, torch::Tensor> load_npz(const std::string& path);

}  // namespace uotflow
