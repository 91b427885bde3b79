// One inner iteration of SW-JKO as an image generator at the paper's image settings: a batch of
// 1000 images of rho (28 x 28) from the ambient convolutional generator (parametrization
// conv_generator), the proximal term SW2^2(rho, rho_k) / (2 tau) and F = SW2^2(rho, data) / 2
// with L = 1000 directions each, Adam. The side-by-side partner of swgf_image_step.py; the data
// are fixed random images (the step's cost does not depend on their values).
// Prints one JSON line: {"impl": "uotflow", "median_s", ...}.
// Usage: bench_swgf_image_step [--batch 1000] [--projections 1000] [--width 32] [--nz 32]
//                              [--warmup 2] [--iters 5]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "uotflow/core/blas.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/flow/functional.h"
#include "uotflow/flow/parametrization.h"
#include "uotflow/ot/sliced.h"

using namespace uotflow;

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);  // before any flag is taken from argv
  int64_t batch = 1000, projections = 1000, width = 32, nz = 32, warmup = 2, iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    int64_t* target = flag == "--batch"         ? &batch
                      : flag == "--projections" ? &projections
                      : flag == "--width"       ? &width
                      : flag == "--nz"          ? &nz
                      : flag == "--warmup"      ? &warmup
                      : flag == "--iters"       ? &iters
                                                : nullptr;
    if (target == nullptr) {
      std::cerr << "bench_swgf_image_step: unknown flag " << flag << "\n";
      return 2;
    }
    *target = std::stoll(argv[i + 1]);
  }
  torch::set_num_threads(1);
  torch::manual_seed(0);
  const int64_t dim = 784;
  auto data = std::make_shared<TensorDataset>(torch::rand({10000, 1, 28, 28}) * 2 - 1);
  auto f = make_functional(Json{{"name", "sw_data"}, {"params", {{"n_projections", projections}}}},
                           dim, data);
  Json section = default_parametrization_section();
  section["conv_generator"]["width"] = width;
  section["conv_generator"]["nz"] = nz;
  auto start = make_dataset("gaussian", Json{{"dim", dim}});
  section["name"] = "conv_generator";
  auto rho = make_parametrization(section, *start, torch::kCPU, {1, 28, 28});
  rho->freeze();
  torch::optim::Adam optimizer(rho->parameters(), torch::optim::AdamOptions(1e-3));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const double tau = 5.0;
  std::vector<double> seconds;
  for (int64_t it = 0; it < warmup + iters; ++it) {
    const auto begin = std::chrono::steady_clock::now();
    FlowBatch now = rho->draw(batch, gen, false);
    now.gen = &gen;
    FlowBatch before = rho->draw_previous(batch, gen);
    auto theta = random_directions(dim, projections, gen);
    auto loss = sliced_wasserstein_pp(now.x, before.x, theta, 2.0) / (2 * tau) + f->value(now);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (it >= warmup) {
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    }
  }
  std::sort(seconds.begin(), seconds.end());
  std::cout
      << Json{{"impl", "uotflow"}, {"batch", batch}, {"projections", projections},
              {"width", width},    {"nz", nz},       {"median_s", seconds[seconds.size() / 2]},
              {"iters", iters},    {"threads", 1}}
             .dump()
      << std::endl;
  return 0;
}
