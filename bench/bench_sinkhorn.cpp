// Entropic OT between n = m = 2,000 points in d = 2 (the case bench/sinkhorn.py runs with POT):
// cost |x - y|^2 / max, epsilon = 0.05 x mean cost, uniform weights, cost construction included.
//
// Cases: a fixed number of iterations without early stopping (per-work comparison), and to
// tolerance (marginal error 1e-9) without and with epsilon annealing; float64 and float32; the
// fused CPU pass and the generic torch path. Extra flags (read before Google Benchmark's own):
// --sinkhorn_n=N points per side (default 2000), --sinkhorn_iters=K fixed iterations (default 100).
//
// --online_n=N (default 0: off) adds BM_SinkhornOnline: sinkhorn_points_online on N points per
// side, --online_iters=K fixed iterations (default 3), float32 and float64, the same points and
// epsilon rule (on the cost divided by its bound, the squared bounding-box diagonal), no cost
// matrix: run it under `/usr/bin/time -v` for the peak memory.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "uotflow/ot/sinkhorn.h"

#include "bench_main.h"

namespace {

int64_t g_points = 2000;
int64_t g_iters = 100;
int64_t g_online_points = 0;
int64_t g_online_iters = 3;
constexpr double kTolerance = 1e-9;
constexpr double kRelativeEpsilon = 0.05;

struct Case {
  bool fixed;   // g_iters iterations, no early stopping; else to kTolerance
  bool anneal;  // epsilon scaling 0.5 from max(C) (only to tolerance)
  bool fused;   // fused CPU pass
  torch::Dtype dtype;
};

// x ~ N(0, I), y ~ N(0, I) + 1 from torch's CPU generator seeded 0: sinkhorn.py draws the same.
void BM_Sinkhorn(benchmark::State& state, Case c) {
  torch::manual_seed(0);
  const auto x = torch::randn({g_points, 2}, torch::kFloat64).to(c.dtype);
  const auto y = (torch::randn({g_points, 2}, torch::kFloat64) + 1.0).to(c.dtype);
  uotflow::SinkhornOptions options;
  options.max_iter = c.fixed ? g_iters : 100000;
  options.tolerance = c.fixed ? 0.0 : kTolerance;
  options.epsilon_scaling = c.anneal ? 0.5 : 0.0;
  options.fused_cpu_pass = c.fused;
  double cost = 0.0;
  int64_t iterations = 0;
  for (auto _ : state) {
    auto cmat = uotflow::squared_euclidean_cost(x, y);
    cmat.div_(cmat.max());
    options.epsilon = kRelativeEpsilon * cmat.mean().item<double>();
    const auto result = uotflow::sinkhorn(cmat, {}, {}, options);
    cost = result.transport_cost.item<double>();
    iterations = result.iterations;
  }
  state.counters["n"] = static_cast<double>(g_points);
  state.counters["solver_iterations"] = static_cast<double>(iterations);
  state.counters["transport_cost"] = cost;
}

// Kernel on the fly: the same clouds, scaled so that the squared bounding-box diagonal is 1, and
// epsilon 0.05 x the mean cost estimated on the first 2,000 points of each side.
void BM_SinkhornOnline(benchmark::State& state, torch::Dtype dtype) {
  torch::manual_seed(0);
  auto x = torch::randn({g_online_points, 2}, torch::kFloat64);
  auto y = torch::randn({g_online_points, 2}, torch::kFloat64) + 1.0;
  const auto both = torch::cat({x, y});
  const double scale = std::sqrt((both.amax(0) - both.amin(0)).pow(2).sum().item<double>());
  x = (x / scale).to(dtype);
  y = (y / scale).to(dtype);
  const int64_t k = std::min<int64_t>(g_online_points, 2000);
  uotflow::SinkhornOptions options;
  options.epsilon =
      kRelativeEpsilon *
      uotflow::squared_euclidean_cost(x.narrow(0, 0, k), y.narrow(0, 0, k)).mean().item<double>();
  options.max_iter = g_online_iters;
  options.tolerance = 0.0;
  options.epsilon_scaling = 0.0;
  double cost = 0.0;
  for (auto _ : state) {
    cost = uotflow::sinkhorn_points_online(x, y, options).transport_cost.item<double>();
  }
  state.counters["n"] = static_cast<double>(g_online_points);
  state.counters["solver_iterations"] = static_cast<double>(g_online_iters);
  state.counters["transport_cost"] = cost;
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  uotflow::bench::take_int_flags(argc, argv,
                                 {{"sinkhorn_n", &g_points},
                                  {"sinkhorn_iters", &g_iters},
                                  {"online_n", &g_online_points},
                                  {"online_iters", &g_online_iters}});
  struct Named {
    const char* name;
    Case c;
  };
  const Named cases[] = {
      {"BM_Sinkhorn/fixed/f64/fused", {true, false, true, torch::kFloat64}},
      {"BM_Sinkhorn/fixed/f64/generic", {true, false, false, torch::kFloat64}},
      {"BM_Sinkhorn/fixed/f32/fused", {true, false, true, torch::kFloat32}},
      {"BM_Sinkhorn/tol/f64/fused", {false, false, true, torch::kFloat64}},
      {"BM_Sinkhorn/tol_anneal/f64/fused", {false, true, true, torch::kFloat64}},
      {"BM_Sinkhorn/tol/f64/generic", {false, false, false, torch::kFloat64}},
  };
  for (const auto& [name, c] : cases) {
    benchmark::RegisterBenchmark(name, BM_Sinkhorn, c)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(1.0);
  }
  if (g_online_points > 0) {
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      benchmark::RegisterBenchmark(
          dtype == torch::kFloat32 ? "BM_SinkhornOnline/f32" : "BM_SinkhornOnline/f64",
          BM_SinkhornOnline, dtype)
          ->Unit(benchmark::kSecond)
          ->UseRealTime()
          ->Iterations(1);
    }
  }
  return uotflow::bench::run_benchmarks(argc, argv);
}
