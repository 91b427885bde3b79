// Shared by the Google Benchmark programs in bench/: the program's own --name=value flags, the
// timed loop of training steps, and the run of everything registered, on one thread.
#pragma once

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "uotflow/core/blas.h"

namespace uotflow::bench {

/// Times `method.step` as the trainer calls it: `warmup` untimed steps, then one step per benchmark
/// iteration. Sets the it_per_s counter and returns the number of timed steps.
template <typename Method, typename Streams>
double time_training_steps(benchmark::State& state, Method& method, Streams& streams,
                           int64_t warmup) {
  int64_t i = 0;
  for (; i < warmup; ++i) {
    benchmark::DoNotOptimize(method.step(i, streams));
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(method.step(i++, streams));
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["it_per_s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  return n;
}

/// Reads and removes the integer flags `--name=value` listed in `flags` from argv, because Google
/// Benchmark rejects flags it does not know.
inline void take_int_flags(int& argc, char** argv,
                           const std::vector<std::pair<std::string, int64_t*>>& flags) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    bool taken = false;
    for (const auto& [name, value] : flags) {
      const std::string prefix = "--" + name + "=";
      if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
        *value = std::strtoll(argv[i] + prefix.size(), nullptr, 10);
        taken = true;
      }
    }
    if (!taken) {
      argv[out++] = argv[i];
    }
  }
  argc = out;
}

/// Runs the registered benchmarks with one LibTorch thread (--threads=N for N); an unknown flag
/// exits with 2. Each program's main() calls restart_with_better_blas_kernels(argv) first, before
/// any flag is taken from argv, so that it runs on the kernels `uotflow` runs on.
inline int run_benchmarks(int argc, char** argv) {
  int64_t threads = 1;
  take_int_flags(argc, argv, {{"threads", &threads}});
  torch::set_num_threads(static_cast<int>(threads));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 2;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace uotflow::bench
