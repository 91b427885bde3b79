// The reference toy UOTM settings that the step benchmarks time (CPU: bench_uotm_step.cpp; CUDA:
// cuda/bench_cuda_graph.cpp): 8 Gaussians, batch 400, ResNet-FC 128 x 3 (nz 2), kl/kl, cost
// 0.1 * sum, R1 0.2, one potential step per generator step, EMA 0.999.
#pragma once

#include <cstdint>

#include "uotflow/core/config.h"
#include "uotflow/run/config.h"

namespace uotflow::bench {

inline constexpr int64_t kBatch = 400;
inline constexpr int64_t kDim = 2;
inline constexpr int64_t kWidth = 128;
inline constexpr int64_t kBlocks = 3;
inline constexpr int64_t kNz = 2;
inline constexpr double kCostScale = 0.1;
inline constexpr double kR1Gamma = 0.2;
inline constexpr double kEmaDecay = 0.999;

/// The generator's (and, ignoring nz, the potential's) network section.
inline Json toy_net_section() {
  return {{"net", "resnet_fc"}, {"width", kWidth}, {"depth", kBlocks}, {"nz", kNz}};
}

/// The resolved config `uotflow train` would run at these settings.
inline Json toy_uotm_reference_config() {
  const Json file = {{"seed", 0},
                     {"data", {{"name", "8gaussians"}}},
                     {"generator", toy_net_section()},
                     {"potential", {{"net", "resnet_fc"}, {"width", kWidth}, {"depth", kBlocks}}},
                     {"loss", {{"r1_gamma", kR1Gamma}, {"cost_scale", kCostScale}}},
                     {"train", {{"batch_size", kBatch}, {"d_steps", 1}, {"ema_decay", kEmaDecay}}}};
  return resolve_config(file, {}, {});
}

}  // namespace uotflow::bench
