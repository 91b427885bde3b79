// Derived seed streams (splitmix64 over the master seed and an FNV-1a hash of the stream name).
#include "uotflow/core/rng.h"

#include <ATen/CPUGeneratorImpl.h>
#include <mutex>
#include <random>

namespace uotflow {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h = (h ^ c) * 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

uint64_t derive_seed(uint64_t master_seed, const std::string& stream, uint64_t index) {
  return splitmix64(splitmix64(master_seed ^ fnv1a(stream)) + index) >> 1;  // keep it below 2^63
}

at::Generator make_stream(uint64_t master_seed, const std::string& stream) {
  return at::make_generator<at::CPUGeneratorImpl>(derive_seed(master_seed, stream));
}

GlobalSeedScope::GlobalSeedScope(uint64_t seed) {
  auto global = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(global.mutex());
  saved_ = global.clone();
  global.set_current_seed(seed);
}

GlobalSeedScope::~GlobalSeedScope() {
  auto global = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(global.mutex());
  global.set_state(saved_.get_state());
}

uint64_t random_seed() {
  std::random_device rd;
  return ((static_cast<uint64_t>(rd()) << 32) ^ rd()) % 1000000000ULL;
}

}  // namespace uotflow
