// Sliced Wasserstein-2 between two sets of n = 10,000 points with L = 1,000 seeded directions,
// d in {2, 100, 1000}, float32, the whole library call (directions, projections, sorts).
// BM_SortRows: the sort under it, 1,000 float32 rows of n values sorted with their permutation, by
// torch::sort, Boost's pdqsort_branchless and spreadsort (float_sort) of (value, index) pairs, and
// the library's radix sort (src/ot/radix_sort.h).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstring>
#include <utility>
#include <vector>

#include <boost/sort/pdqsort/pdqsort.hpp>
#include <boost/sort/spreadsort/float_sort.hpp>

#include "ot/radix_sort.h"
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

enum SortMethod : int64_t { kTorchSort, kPdqsort, kSpreadsort, kRadix };

void BM_SortRows(benchmark::State& state) {
  const auto method = static_cast<SortMethod>(state.range(0));
  const int64_t n = state.range(1);
  constexpr int64_t kRows = 1000;
  torch::manual_seed(0);
  const auto data = torch::randn({kRows, n});
  auto values = torch::empty_like(data);
  auto index = torch::empty({kRows, n}, torch::kInt);
  const float* src = data.data_ptr<float>();
  float* dst = values.data_ptr<float>();
  int32_t* idx = index.data_ptr<int32_t>();
  std::vector<std::pair<float, int32_t>> pairs(n);
  uotflow::detail::RadixSorter<float> radix;
  auto by_value = [](const auto& a, const auto& b) { return a.first < b.first; };
  // spreadsort's key: the float's bits as an integer that orders like the float.
  auto shift = [](const std::pair<float, int32_t>& p, unsigned offset) {
    int32_t bits;
    std::memcpy(&bits, &p.first, sizeof bits);
    return bits >> offset;
  };
  for (auto _ : state) {
    if (method == kTorchSort) {
      auto [v, i] = data.sort(-1);
      benchmark::DoNotOptimize(v.data_ptr<float>());
      continue;
    }
    for (int64_t r = 0; r < kRows; ++r) {
      const float* row = src + r * n;
      if (method == kRadix) {
        radix.sort(row, n, dst + r * n, idx + r * n);
        continue;
      }
      for (int64_t k = 0; k < n; ++k) {
        pairs[k] = {row[k], static_cast<int32_t>(k)};
      }
      if (method == kPdqsort) {
        boost::sort::pdqsort_branchless(pairs.begin(), pairs.end(), by_value);
      } else {
        boost::sort::spreadsort::float_sort(pairs.begin(), pairs.end(), shift, by_value);
      }
      for (int64_t k = 0; k < n; ++k) {
        dst[r * n + k] = pairs[k].first;
        idx[r * n + k] = pairs[k].second;
      }
    }
    benchmark::DoNotOptimize(dst);
  }
  static const char* const kNames[] = {"torch::sort", "pdqsort", "spreadsort", "radix"};
  state.SetLabel(kNames[method]);
}
BENCHMARK(BM_SortRows)
    ->ArgsProduct({{kTorchSort, kPdqsort, kSpreadsort, kRadix}, {1024, 10000}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  return uotflow::bench::run_benchmarks(argc, argv);
}
