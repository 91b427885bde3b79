// Exact W2 between two 2-D Gaussian samples of n points each (uniform weights), the whole call
// (cost matrix + network simplex) and the solver alone; the C++ side of compare_exact_ot.sh, on
// the same points as exact_ot.py.
//
// Each case runs one call per iteration; compare_exact_ot.sh asks for repetitions and reads the
// medians. BM_ExactW2/N: wasserstein_exact(x, y, 2). BM_ExactOtSolve/N: exact_ot on a prepared
// cost.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>

#include "uotflow/ot/exact.h"

#include "bench_main.h"

namespace {

constexpr int64_t kDim = 2;

struct Samples {
  torch::Tensor x, y;  // [N, 2] float64: x ~ N(0, I), y ~ N(1, I)
};

// Standard normals from a counter-based generator (splitmix64 of seed + k, then Box-Muller) that
// exact_ot.py repeats in NumPy, so that both sides solve the same instance. [count] float64.
torch::Tensor gaussians(int64_t count, uint64_t seed) {
  auto bits = [seed](uint64_t k) {
    uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  auto uniform = [&](uint64_t k) {  // in (0, 1]
    return static_cast<double>((bits(k) >> 11) + 1) * 0x1.0p-53;
  };
  auto out = torch::empty({count}, torch::kFloat64);
  double* p = out.data_ptr<double>();
  for (int64_t i = 0; i < count; ++i) {
    const auto k = static_cast<uint64_t>(i);
    p[i] = std::sqrt(-2.0 * std::log(uniform(2 * k))) * std::cos(2.0 * M_PI * uniform(2 * k + 1));
  }
  return out;
}

Samples samples(int64_t n) {
  return {gaussians(n * kDim, 1).view({n, kDim}), gaussians(n * kDim, 2).view({n, kDim}) + 1.0};
}

void BM_ExactW2(benchmark::State& state) {
  const auto s = samples(state.range(0));
  double w2 = 0.0;
  for (auto _ : state) {
    w2 = uotflow::wasserstein_exact(s.x, s.y, 2.0);
    benchmark::DoNotOptimize(w2);
  }
  state.counters["w2"] = w2;
}

void BM_ExactOtSolve(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto s = samples(n);
  const auto cost = (s.x.unsqueeze(1) - s.y.unsqueeze(0)).square().sum(-1);
  const auto weights = torch::full({n}, 1.0 / static_cast<double>(n), torch::kFloat64);
  double total = 0.0;
  for (auto _ : state) {
    total = uotflow::exact_ot(weights, weights, cost).cost;
    benchmark::DoNotOptimize(total);
  }
  state.counters["w2"] = std::sqrt(total);
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  for (auto* b : {benchmark::RegisterBenchmark("BM_ExactW2", BM_ExactW2),
                  benchmark::RegisterBenchmark("BM_ExactOtSolve", BM_ExactOtSolve)}) {
    b->Arg(500)->Arg(2000)->Arg(5000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return uotflow::bench::run_benchmarks(argc, argv);
}
