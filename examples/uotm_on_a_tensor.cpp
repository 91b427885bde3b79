// UOTM on a tensor the program makes: a ring of points with 2% far outliers, trained and sampled in
// memory through the typed run handle. Usage: example_uotm_on_a_tensor [OUT_DIR] [STEPS]
// (OUT_DIR: keep the run there too; "-" keeps it in memory only).
#include <torch/torch.h>

#include <iostream>

#include "uotflow/core/blas.h"
#include "uotflow/data/tensor_dataset.h"
#include "uotflow/methods/semidual_method.h"
#include "uotflow/run/trainer.h"

int main(int argc, char** argv) {
  using namespace uotflow;
  restart_with_better_blas_kernels(argv);  // OpenBLAS's fast kernels where it did not know the CPU
  torch::manual_seed(0);
  auto angle = torch::rand({4000}) * 2 * M_PI;
  auto ring = torch::stack({angle.cos(), angle.sin()}, 1) * 2 + 0.05 * torch::randn({4000, 2});
  auto outliers = torch::randn({80, 2}) * 0.1 + 6.0;
  auto data = std::make_shared<TensorDataset>(torch::cat({ring, outliers}));

  Trainer trainer(
      RunOptions()
          .method("uotm")
          .seed(0)
          .schedule(ScheduleOptions().steps(argc > 2 ? std::stoll(argv[2]) : 1500))
          .eval(EvalOptions().metrics({"sw2"}))
          .sections(SemiDualOptions().cost_scale(0.1).lr_g(1e-3).lr_d(1e-3).to_json()),
      data,
      argc > 1 && std::string(argv[1]) != "-" ? TrainOptions{argv[1]} : TrainOptions::in_memory());
  trainer.run();
  auto radius = trainer.sample(2000, /*seed=*/1).norm(2, 1);  // samples: [2000, 2]
  std::cout << (trainer.run_dir().empty() ? "(in memory)" : trainer.run_dir()) << "\nmean radius "
            << radius.mean().item<double>() << ", mass near the outliers "
            << (radius > 4).to(torch::kFloat).mean().item<double>() << std::endl;
  return 0;
}
