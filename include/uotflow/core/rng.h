// Seeded random streams: one master seed, separate derived streams so that, e.g., changing the
// evaluation interval does not change training.
#pragma once

#include <ATen/core/Generator.h>
#include <cstdint>
#include <string>

namespace uotflow {

/// A CPU generator seeded from (master_seed, stream name). Different names give independent
/// streams.
at::Generator make_stream(uint64_t master_seed, const std::string& stream);

/// Mixes a seed with a stream name (and an optional index) into a new 64-bit seed (splitmix64
/// based).
uint64_t derive_seed(uint64_t master_seed, const std::string& stream, uint64_t index = 0);

/// Seeds LibTorch's global CPU generator for the lifetime of this object and puts its earlier
/// state back at the end, so that a library call can build modules (which draw their initial
/// weights from the global generator) from a seed of its own without changing the caller's
/// random numbers. Not for concurrent use of the global generator from other threads.
///
///   { GlobalSeedScope scope(derive_seed(seed, "init")); net = Net(options); }
class GlobalSeedScope {
 public:
  explicit GlobalSeedScope(uint64_t seed);
  ~GlobalSeedScope();
  GlobalSeedScope(const GlobalSeedScope&) = delete;
  GlobalSeedScope& operator=(const GlobalSeedScope&) = delete;

 private:
  at::Generator saved_;
};

/// A fresh random seed (when the user gave none); always recorded in the run's config.
uint64_t random_seed();

}  // namespace uotflow
