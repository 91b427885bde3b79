// Throughput of one UOTM toy training step (potential step with R1 + generator step + EMA) at the
// reference settings, and the single-thread float32 matmul peak it is measured against.
//
// Extra flags (read before Google Benchmark's own): --uotm_steps=N fixes the timed steps per run
// (default: let the library pick), --uotm_warmup=W untimed steps before timing (default 20).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow/methods/method.h"
#include "uotflow/run/run.h"

#include "bench_main.h"
#include "toy_uotm_reference.h"

namespace {

using namespace uotflow::bench;

int64_t g_steps = 0;  // 0: Google Benchmark decides
int64_t g_warmup = 20;

// Multiply-accumulates per sample of one forward pass (each Linear(in, out) costs in * out MACs).
constexpr int64_t trunk_macs() {
  return kDim * kWidth + kBlocks * 3 * kWidth * kWidth;
}
constexpr int64_t potential_macs() {  // trunk, Linear(W, W), Linear(W, 1)
  return trunk_macs() + kWidth * kWidth + kWidth;
}
constexpr int64_t generator_macs() {  // trunk + z-MLP (Linear(nz, W), Linear(W, W)) + head
  return trunk_macs() + (kNz * kWidth + kWidth * kWidth) + (kWidth * kWidth + kWidth * kDim);
}

// FLOPs of one step, counting matmuls only (2 FLOPs per MAC; elementwise ops, Adam and EMA are
// O(params) or O(B * W) and below 2% of it). With F_v, F_g = forward FLOPs of v and T on a batch:
//   potential step: T forward (no grad)                          1 F_g
//                   v(fake), v(real) forwards                    2 F_v
//                   R1: grad_y v(real), input grads only         1 F_v
//                   backward of v(fake) and v(real): 2x fwd each 4 F_v
//                   backward through the R1 grad graph: 2x       2 F_v
//   generator step: T forward, v(fake) forward                   1 F_g + 1 F_v
//                   backward through v (input grads only)        1 F_v
//                   backward through T (input + weight grads)    2 F_g
//   total: 4 F_g + 11 F_v.
// At the reference settings F_v = 2 * 164,224 * 400 and F_g = 2 * 180,992 * 400: 2.024 GFLOP/step.
constexpr double step_flops() {
  const double f_v = 2.0 * static_cast<double>(potential_macs()) * kBatch;
  const double f_g = 2.0 * static_cast<double>(generator_macs()) * kBatch;
  return 4.0 * f_g + 11.0 * f_v;
}

// The method exactly as `uotflow train` builds it, stepped as the trainer steps it. Argument 1:
// the toy nets' explicit passes (train.fused, the default); 0: autograd's generic graph.
void BM_UotmStep(benchmark::State& state) {
  torch::manual_seed(0);
  uotflow::Json cfg = toy_uotm_reference_config();
  cfg["train"]["fused"] = state.range(0) != 0;
  const auto problem = uotflow::make_problem(cfg);
  auto method = uotflow::method_registry().create("uotm").create(
      uotflow::MethodContext{cfg, problem, torch::Device(torch::kCPU)});
  uotflow::RandomStreams streams(0);
  const double n = uotflow::bench::time_training_steps(state, *method, streams, g_warmup);
  state.counters["GFLOP/s"] =
      benchmark::Counter(n * step_flops() * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOP_per_step"] = step_flops() * 1e-9;
}

// Single-thread float32 GEMM peak: [n, n] x [n, n].
void BM_Matmul(benchmark::State& state) {
  const int64_t n = state.range(0);
  torch::manual_seed(0);
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::empty({n, n});
  for (int k = 0; k < 3; ++k) {
    torch::mm_out(c, a, b);
  }
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 * n * n * n * 1e-9,
                         benchmark::Counter::kIsRate);
}

// The GEMM the step is made of: a Linear(128, 128) forward on a batch of 400, [400, 128] x [128,
// 128]^T.
void BM_MatmulStepShape(benchmark::State& state) {
  torch::manual_seed(0);
  auto x = torch::randn({kBatch, kWidth});
  auto w = torch::randn({kWidth, kWidth});
  auto bias = torch::randn({kWidth});
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    benchmark::DoNotOptimize(torch::linear(x, w, bias));
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * kBatch * kWidth * kWidth * 1e-9,
      benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  uotflow::bench::take_int_flags(argc, argv,
                                 {{"uotm_steps", &g_steps}, {"uotm_warmup", &g_warmup}});

  auto* step = benchmark::RegisterBenchmark("BM_UotmStep", BM_UotmStep);
  step->ArgName("fused")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
  if (g_steps > 0) {
    step->Iterations(g_steps);
  }
  benchmark::RegisterBenchmark("BM_Matmul", BM_Matmul)
      ->Arg(512)
      ->Arg(1024)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_MatmulStepShape", BM_MatmulStepShape)
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();

  return uotflow::bench::run_benchmarks(argc, argv);
}
