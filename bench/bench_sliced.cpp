// Sliced Wasserstein-2 between two sets of n = 10,000 points with L = 1,000 seeded directions,
// d in {2, 100, 1000}, float32, the whole library call (directions, projections, sorts).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "uotflow/ot/sliced.h"

#include "bench_main.h"

namespace {

void BM_SlicedW2(benchmark::State& state) {
  const int64_t dim = state.range(0);
  constexpr int64_t kPoints = 10000;
  constexpr int64_t kProjections = 1000;
  torch::manual_seed(0);
  auto x = torch::randn({kPoints, dim});
  auto y = torch::randn({kPoints, dim}) + 1.0;
  uint64_t seed = 0;
  for (auto _ : state) {
    auto sw = uotflow::sliced_wasserstein(x, y, kProjections, seed++, 2.0);
    benchmark::DoNotOptimize(sw.item<float>());
  }
  state.counters["n"] = kPoints;
  state.counters["L"] = kProjections;
}
BENCHMARK(BM_SlicedW2)->Arg(2)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  return uotflow::bench::run_benchmarks(argc, argv);
}
