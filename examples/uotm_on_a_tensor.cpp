// UOTM on a tensor the program makes: a ring of points with 2% far outliers, trained through the
// library alone, then sampled. Usage: example_uotm_on_a_tensor [OUT_DIR] [STEPS]
#include <torch/torch.h>

#include <iostream>

#include "uotflow/core/blas.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/run/run.h"

int main(int argc, char** argv) {
  using namespace uotflow;
  restart_with_better_blas_kernels(argv);  // OpenBLAS's fast kernels where it did not know the CPU
  torch::manual_seed(0);
  auto angle = torch::rand({4000}) * 2 * M_PI;
  auto ring = torch::stack({angle.cos(), angle.sin()}, 1) * 2 + 0.05 * torch::randn({4000, 2});
  auto outliers = torch::randn({80, 2}) * 0.1 + 6.0;
  auto data = std::make_shared<TensorDataset>(torch::cat({ring, outliers}));

  const std::string steps = argc > 2 ? argv[2] : "1500";
  Json config = resolve_config(Json{{"method", "uotm"}, {"seed", 0}},
                               {"train.steps=" + steps, "loss.cost_scale=0.1", "train.lr_g=1e-3",
                                "train.lr_d=1e-3", "eval.metrics=[\"sw2\"]"},
                               {});
  TrainOptions options;
  options.out_root = argc > 1 ? argv[1] : "runs";
  const auto run = train(config, data, options);

  auto x = sample_run(run.run_dir, 2000, /*seed=*/1, /*ema=*/true);  // [2000, 2]
  auto radius = x.norm(2, 1);
  std::cout << run.run_dir << "\nmean radius " << radius.mean().item<double>()
            << ", mass near the outliers " << (radius > 4).to(torch::kFloat).mean().item<double>()
            << std::endl;
  return 0;
}
