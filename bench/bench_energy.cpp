// The energy distance between two sets of n points in d = 2, float64, 1 thread: exact (all n^2
// pairs, the `energy` metric) against the sorted sliced form (the `energy_sliced` metric, L = 1,000
// seeded directions). Counters: the value and, where the exact one is known, the relative error.
//
//   bench_energy --benchmark_filter='/10000'
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "uotflow/metrics/metrics.h"

#include "bench_main.h"

namespace {

constexpr int64_t kDim = 2;
constexpr int64_t kProjections = 1000;

std::pair<torch::Tensor, torch::Tensor> point_sets(int64_t n) {
  torch::manual_seed(0);
  return {torch::randn({n, kDim}, torch::kFloat64),
          1.2 * torch::randn({n, kDim}, torch::kFloat64) + 0.3};
}

std::map<int64_t, double>& exact_values() {
  static std::map<int64_t, double> values;
  return values;
}

void BM_EnergyExact(benchmark::State& state) {
  const auto [x, y] = point_sets(state.range(0));
  double value = 0.0;
  for (auto _ : state) {
    value = uotflow::compute_metric("energy", x, y);
  }
  exact_values()[state.range(0)] = value;
  state.counters["value"] = value;
}

void BM_EnergySliced(benchmark::State& state) {
  const auto [x, y] = point_sets(state.range(0));
  uotflow::MetricContext context;
  context.n_projections = kProjections;
  double value = 0.0;
  for (auto _ : state) {
    value = uotflow::compute_metric("energy_sliced", x, y, context);
    ++context.seed;
  }
  state.counters["value"] = value;
  state.counters["L"] = kProjections;
  const auto exact = exact_values().find(state.range(0));
  if (exact != exact_values().end()) {
    state.counters["relative_error"] = std::abs(value - exact->second) / exact->second;
  }
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  // The exact form once per size (at n = 10^5, 10^10 pairs, about half an hour: extrapolate from
  // 10^4 and 3 x 10^4, it is O(n^2)).
  benchmark::RegisterBenchmark("BM_EnergyExact", BM_EnergyExact)
      ->Arg(10000)
      ->Arg(30000)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_EnergySliced", BM_EnergySliced)
      ->Arg(10000)
      ->Arg(30000)
      ->Arg(100000)
      ->Iterations(3)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  return uotflow::bench::run_benchmarks(argc, argv);
}
