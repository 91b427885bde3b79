// One inner iteration of the SW-JKO step at the reference settings (RealNVP 5 couplings of width
// 100, batch 1024, L = 1000, d = 10, KL to N(b, A^-1)): the side-by-side partner of swgf_step.py.
// Prints one JSON line: {"impl": "uotflow", "mode", "median_s", ...}.
// Usage: bench_swgf_step [--dim 10] [--batch 1024] [--projections 1000] [--couplings 5]
//                        [--width 100] [--warmup 3] [--iters 10]
//                        [--mode sorted|sorted-autograd|weighted]
// sorted: the equal-size path with its dedicated backward (what `swjko` runs); sorted-autograd: the
// same loss written with torch::sort and autograd through it (the path before the dedicated
// backward).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "uotflow/core/blas.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/ot/sliced.h"

using namespace uotflow;

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  int64_t dim = 10, batch = 1024, projections = 1000, couplings = 5, width = 100, warmup = 3,
          iters = 10;
  std::string mode = "sorted";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--mode") {
      mode = value;
      continue;
    }
    int64_t* target = flag == "--dim"           ? &dim
                      : flag == "--batch"       ? &batch
                      : flag == "--projections" ? &projections
                      : flag == "--couplings"   ? &couplings
                      : flag == "--width"       ? &width
                      : flag == "--warmup"      ? &warmup
                      : flag == "--iters"       ? &iters
                                                : nullptr;
    if (target == nullptr) {
      std::cerr << "bench_swgf_step: unknown flag " << flag << "\n";
      return 2;
    }
    *target = std::stoll(value);
  }
  torch::set_num_threads(1);
  torch::manual_seed(0);
  Json section = default_parametrization_section();
  section["realnvp"]["couplings"] = couplings;
  section["realnvp"]["width"] = width;
  auto start = make_dataset("gaussian", Json{{"dim", dim}});
  auto rho = make_parametrization(section, *start, torch::kCPU);
  auto kl = make_functional(
      Json{{"name", "kl"},
           {"params",
            {{"target", {{"name", "quadratic"}, {"params", {{"dim", dim}, {"seed", 0}}}}}}}},
      dim);
  rho->freeze();
  torch::optim::Adam optimizer(rho->parameters(), torch::optim::AdamOptions(1e-3));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const double tau = 0.05;
  // The weighted mode passes explicit uniform weights, which takes the quantile-function path.
  const auto uniform = mode == "weighted" ? torch::full({batch}, 1.0f / batch) : torch::Tensor();
  std::vector<double> seconds;
  for (int64_t it = 0; it < warmup + iters; ++it) {
    const auto start = std::chrono::steady_clock::now();
    FlowBatch now = rho->draw(batch, gen, true);
    FlowBatch before = rho->draw_previous(batch, gen);
    auto theta = random_directions(dim, projections, gen);
    torch::Tensor sw;
    if (mode == "sorted-autograd") {
      auto px = now.x.matmul(theta).transpose(0, 1).contiguous();
      auto py = before.x.matmul(theta).transpose(0, 1).contiguous();
      sw = (std::get<0>(px.sort(-1)) - std::get<0>(py.sort(-1))).square().mean();
    } else {
      sw = sliced_wasserstein_pp(now.x, before.x, theta, 2.0, uniform, uniform);
    }
    auto loss = sw / (2 * tau) + kl->value(now);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (it >= warmup) {
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  std::sort(seconds.begin(), seconds.end());
  std::cout << Json{{"impl", "uotflow"},
                    {"mode", mode},
                    {"dim", dim},
                    {"batch", batch},
                    {"projections", projections},
                    {"median_s", seconds[seconds.size() / 2]},
                    {"iters", iters},
                    {"threads", 1}}
                   .dump()
            << std::endl;
  return 0;
}
