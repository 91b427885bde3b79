// Devices as users name them: "cpu", "cuda", "cuda:N".
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace uotflow {

/// Parses "cpu", "cuda", "cuda:N"; a malformed name or CUDA that is not available is a
/// ConfigError.
///
///   torch::Device device = parse_device("cuda:0");
torch::Device parse_device(const std::string& name);

/// `threads` as an intra-op thread count: between 1 and the cores of this machine (more only
/// oversubscribes them and stalls), else a ConfigError.
int checked_threads(int64_t threads);

/// Bytes of physical memory of this machine (0 when unknown).
int64_t physical_memory_bytes();

/// What this process may hold: the least of the machine's memory, the address-space limit
/// (ulimit -v) and the cgroup's memory.max, with the limit's name ("" when unknown).
struct MemoryLimit {
  double bytes = 0;
  std::string source;  ///< "memory of this machine", "address-space limit (ulimit -v)", ...
};
MemoryLimit available_memory();

/// A ConfigError naming `key` when a buffer of `bytes` cannot fit in available_memory().
void check_fits_in_memory(const std::string& key, double bytes);

}  // namespace uotflow
