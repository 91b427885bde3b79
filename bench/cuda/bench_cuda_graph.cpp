// The UOTM toy training step on CUDA, eager and replayed from a CUDA graph (at::cuda::CUDAGraph),
// at the reference settings of bench/bench_uotm_step.cpp (batch 400, ResNet-FC 128 x 3, kl/kl, cost
// 0.1 * sum, R1 0.2, Adam 1e-4 (0.5, 0.9), EMA 0.999). bench/uotm_step.py --device cuda times the
// same step in PyTorch; bench/compare_cuda_graph.sh runs both side by side.
//
// Three versions of the step:
//   method  the method as `uotflow train --device cuda` steps it: batches drawn on the CPU and
//   copied
//           over, LibTorch's Adam (a loop over parameters), three host syncs for the logged losses;
//   eager   a static step: batches drawn on the GPU into fixed buffers, the library's nets, losses
//   and
//           R1, fused Adam with the step counts on the device (at::_fused_adam_), foreach EMA, no
//           sync;
//   graph   the static step captured once into a CUDA graph and replayed (the batches are drawn
//           outside the graph into its fixed buffers).
// Before timing, eager and graph are run side by side from the same weights on the same batches and
// must agree (largest relative weight difference printed; exit 1 above 1e-4).
//
// Usage: bench_cuda_graph [--steps=N (300)] [--warmup=W (20)] [--rounds=R (5)]
// Prints a table, then one JSON line {"method": it/s, "eager": ..., "graph": ..., ...} (medians).
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if TORCH_VERSION_MAJOR >= 2
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "uotflow/core/config.h"
#include "uotflow/core/rng.h"
#include "uotflow/methods/method.h"
#include "uotflow/nets/nets.h"
#include "uotflow/optim/schedule.h"
#include "uotflow/ot/cost.h"
#include "uotflow/ot/semidual.h"
#include "uotflow/run/run.h"

#include "../toy_uotm_reference.h"

namespace {

using namespace uotflow::bench;

constexpr double kLr = 1e-4;
constexpr double kBeta1 = 0.5;
constexpr double kBeta2 = 0.9;
constexpr double kEps = 1e-8;

void set_requires_grad(const std::vector<torch::Tensor>& params, bool on) {
  for (const auto& p : params) {
    p.requires_grad_(on);
  }
}

// Adam as PyTorch's Adam(fused=True, capturable=True): moments and step counts live on the device,
// so a captured step reads the current count at every replay (LibTorch's torch::optim::Adam keeps
// the count on the host, which a graph would freeze).
class DeviceAdam {
 public:
  explicit DeviceAdam(std::vector<torch::Tensor> params) : params_(std::move(params)) {
    for (const auto& p : params_) {
      exp_avg_.push_back(torch::zeros_like(p));
      exp_avg_sq_.push_back(torch::zeros_like(p));
      steps_.push_back(torch::zeros({}, p.options().dtype(torch::kFloat32)));
    }
  }
  void zero_grad() {
    for (auto& p : params_) {
      p.mutable_grad() = torch::Tensor();
    }
  }
  void step() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    for (const auto& p : params_) {
      grads.push_back(p.grad());
    }
    torch::_foreach_add_(steps_, 1.0);
    at::_fused_adam_(params_, grads, exp_avg_, exp_avg_sq_, {}, steps_, kLr, kBeta1, kBeta2,
                     /*weight_decay=*/0.0, kEps, /*amsgrad=*/false, /*maximize=*/false);
  }

 private:
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
};

// One UOTM step whose inputs are fixed buffers and which never syncs with the host: capturable.
class StaticStep {
 public:
  explicit StaticStep(torch::Device device)
      : generator_(uotflow::make_generator(kDim, toy_net_section())),
        generator_ema_(uotflow::make_generator(kDim, toy_net_section())),
        potential_(uotflow::make_potential(kDim, toy_net_section())),
        loss_{uotflow::Phi("kl"), uotflow::Phi("kl")},
        cost_(uotflow::cost_registry().create("quadratic", kCostScale,
                                              uotflow::CostReduction::kSum)) {
    generator_->to(device);
    generator_ema_->to(device);
    potential_->to(device);
    uotflow::copy_weights(*generator_ema_, *generator_);
    g_params_ = generator_->parameters();
    v_params_ = potential_->parameters();
    ema_params_ = generator_ema_->parameters();
    set_requires_grad(ema_params_, false);
    opt_g_ = std::make_unique<DeviceAdam>(g_params_);
    opt_v_ = std::make_unique<DeviceAdam>(v_params_);
    const auto opts = torch::TensorOptions().device(device);
    real_ = torch::empty({kBatch, kDim}, opts);
    x_v_ = torch::empty({kBatch, kDim}, opts);
    z_v_ = torch::empty({kBatch, kNz}, opts);
    x_g_ = torch::empty({kBatch, kDim}, opts);
    z_g_ = torch::empty({kBatch, kNz}, opts);
    const auto angle = torch::arange(8, opts) * (M_PI / 4);
    centres_ = 2.0 * std::sqrt(2.0) * torch::stack({torch::cos(angle), torch::sin(angle)}, 1);
  }

  // Draws the next batches into the fixed buffers: 8 Gaussians (centres on the circle of radius
  // 2 sqrt(2), std 0.5 / sqrt(2)) and standard normal source and latent points.
  void draw(const at::Generator& gen) {
    torch::NoGradGuard no_grad;
    const auto k = torch::randint(8, {kBatch}, gen, real_.options().dtype(torch::kLong));
    real_.copy_(centres_.index_select(0, k) +
                (0.5 / std::sqrt(2.0)) * torch::randn({kBatch, kDim}, gen, real_.options()));
    for (auto* t : {&x_v_, &z_v_, &x_g_, &z_g_}) {
      t->copy_(torch::randn(t->sizes(), gen, t->options()));
    }
  }
  // Copies another step's batches (to run two steps on the same data).
  void copy_batches_from(const StaticStep& o) {
    real_.copy_(o.real_);
    x_v_.copy_(o.x_v_);
    z_v_.copy_(o.z_v_);
    x_g_.copy_(o.x_g_);
    z_g_.copy_(o.z_g_);
  }

  void run() {
    // Potential step: semi-dual loss + R1 on the data batch.
    set_requires_grad(v_params_, true);
    torch::Tensor fake;
    {
      torch::NoGradGuard no_grad;
      fake = generator_->forward(x_v_, z_v_);
    }
    auto real = real_.detach().requires_grad_(true);
    auto v_real = potential_->forward(real);
    auto v_fake = potential_->forward(fake);
    loss_v_ = loss_.potential(v_fake, (*cost_)(x_v_, fake), v_real);
    r1_ = uotflow::gradient_penalty(v_real, real);
    opt_v_->zero_grad();
    (loss_v_ + 0.5 * kR1Gamma * r1_).backward();
    opt_v_->step();

    // Generator step against the fixed potential, then EMA.
    set_requires_grad(v_params_, false);
    auto fake_g = generator_->forward(x_g_, z_g_);
    loss_g_ = loss_.generator(potential_->forward(fake_g), (*cost_)(x_g_, fake_g));
    opt_g_->zero_grad();
    loss_g_.backward();
    opt_g_->step();
    torch::NoGradGuard no_grad;
    torch::_foreach_mul_(ema_params_, kEmaDecay);
    torch::_foreach_add_(ema_params_, g_params_, 1.0 - kEmaDecay);
  }

  // Largest |a - b| / max|b| over the generator, EMA and potential weights.
  double max_relative_difference(const StaticStep& o) const {
    double worst = 0.0;
    const auto compare = [&](const std::vector<torch::Tensor>& a,
                             const std::vector<torch::Tensor>& b) {
      for (size_t i = 0; i < a.size(); ++i) {
        const double scale = std::max(b[i].abs().max().item<double>(), 1e-12);
        worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
      }
    };
    compare(g_params_, o.g_params_);
    compare(ema_params_, o.ema_params_);
    compare(v_params_, o.v_params_);
    return worst;
  }
  std::map<std::string, double> losses() const {
    return {{"loss_v", loss_v_.item<double>()},
            {"loss_g", loss_g_.item<double>()},
            {"r1", r1_.item<double>()}};
  }

 private:
  std::shared_ptr<uotflow::GeneratorNet> generator_, generator_ema_;
  std::shared_ptr<uotflow::PotentialNet> potential_;
  uotflow::SemiDualLoss loss_;
  std::unique_ptr<uotflow::Cost> cost_;
  std::vector<torch::Tensor> g_params_, v_params_, ema_params_;
  std::unique_ptr<DeviceAdam> opt_g_, opt_v_;
  torch::Tensor real_, x_v_, z_v_, x_g_, z_g_, centres_;
  torch::Tensor loss_v_, loss_g_, r1_;
};

// The static step captured into a graph: warm-up on a side stream, capture, then replay.
class GraphStep {
 public:
  explicit GraphStep(StaticStep& step) : step_(step) {
    auto stream = c10::cuda::getStreamFromPool();
    stream.synchronize();
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      for (int i = 0; i < 3; ++i) {  // cuBLAS handles, autograd streams, allocator blocks
        step_.run();
      }
      graph_.capture_begin();
      step_.run();
      graph_.capture_end();
    }
    torch::cuda::synchronize();
  }
  void replay() {
    graph_.replay();
  }

 private:
  StaticStep& step_;
  at::cuda::CUDAGraph graph_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// it/s of `steps` calls of `one_step` after `warmup` untimed ones (synchronized before and after).
double time_steps(const std::function<void()>& one_step, int64_t steps, int64_t warmup) {
  for (int64_t i = 0; i < warmup; ++i) {
    one_step();
  }
  torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    one_step();
  }
  torch::cuda::synchronize();
  return static_cast<double>(steps) / seconds_since(t0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t int_flag(int argc, char** argv, const std::string& name, int64_t fallback) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::strtoll(argv[i] + prefix.size(), nullptr, 10);
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "bench_cuda_graph: no CUDA device\n");
    return 2;
  }
  const int64_t steps = int_flag(argc, argv, "steps", 300);
  const int64_t warmup = int_flag(argc, argv, "warmup", 20);
  const int64_t rounds = int_flag(argc, argv, "rounds", 5);
  const torch::Device cuda(torch::kCUDA);
  auto gen = at::cuda::detail::getDefaultCUDAGenerator();

  // Agreement: the same weights and batches through eager steps and graph replays.
  torch::manual_seed(0);
  StaticStep eager_step(cuda);
  torch::manual_seed(0);
  StaticStep graph_step(cuda);
  graph_step.draw(gen);
  // Its warm-up ran 3 steps on the initial batches; the captured step was recorded, not run.
  GraphStep graph(graph_step);
  eager_step.copy_batches_from(graph_step);
  for (int i = 0; i < 3; ++i) {
    eager_step.run();
  }
  for (int i = 0; i < 10; ++i) {
    eager_step.draw(gen);
    graph_step.copy_batches_from(eager_step);
    eager_step.run();
    graph.replay();
  }
  torch::cuda::synchronize();
  const double difference = graph_step.max_relative_difference(eager_step);
  const auto le = eager_step.losses();
  const auto lg = graph_step.losses();
  std::printf(
      "agreement after 13 steps: max relative weight difference %.3g; loss_v %.6f / %.6f,"
      " loss_g %.6f / %.6f, r1 %.6f / %.6f (eager / graph)\n",
      difference, le.at("loss_v"), lg.at("loss_v"), le.at("loss_g"), lg.at("loss_g"), le.at("r1"),
      lg.at("r1"));
  if (!(difference <= 1e-4)) {
    std::fprintf(stderr, "bench_cuda_graph: the graph replay disagrees with the eager step\n");
    return 1;
  }

  // The method as `uotflow train --device cuda` runs it.
  const uotflow::Json cfg = toy_uotm_reference_config();
  const auto problem = uotflow::make_problem(cfg);
  auto method =
      uotflow::method_registry().create("uotm").create(uotflow::MethodContext{cfg, problem, cuda});
  uotflow::RandomStreams streams(0);
  int64_t method_step = 0;

  std::vector<double> method_its, eager_its, graph_its;
  for (int64_t r = 0; r < rounds; ++r) {
    method_its.push_back(time_steps([&] { method->step(method_step++, streams); }, steps, warmup));
    eager_its.push_back(time_steps(
        [&] {
          eager_step.draw(gen);
          eager_step.run();
        },
        steps, warmup));
    graph_its.push_back(time_steps(
        [&] {
          graph_step.draw(gen);
          graph.replay();
        },
        steps, warmup));
  }
  const auto print_row = [](const char* name, const std::vector<double>& its) {
    std::printf("%-8s %10.1f it/s  %8.3f ms/step   rounds:", name, median(its), 1e3 / median(its));
    for (double x : its) {
      std::printf(" %.1f", x);
    }
    std::printf("\n");
  };
  std::printf("UOTM toy step on %s, LibTorch %s, %lld rounds of %lld steps (+%lld warm-up)\n",
              "cuda", TORCH_VERSION, static_cast<long long>(rounds), static_cast<long long>(steps),
              static_cast<long long>(warmup));
  print_row("method", method_its);
  print_row("eager", eager_its);
  print_row("graph", graph_its);
  std::printf(
      "{\"method\": %.3f, \"eager\": %.3f, \"graph\": %.3f, \"agreement\": %.3g, "
      "\"libtorch\": \"%s\"}\n",
      median(method_its), median(eager_its), median(graph_its), difference, TORCH_VERSION);
  return 0;
}

#else  // LibTorch 1.x: no fused Adam

int main() {
  std::fprintf(stderr, "bench_cuda_graph: needs LibTorch 2.x with CUDA\n");
  return 2;
}

#endif
