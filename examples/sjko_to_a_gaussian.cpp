// S-JKO towards a Gaussian: the JKO steps follow the Fokker-Planck flow, whose closed form the run
// checks at every phase (ou_kl among its evaluations). Usage: example_sjko_to_a_gaussian
// [OUT_DIR] [ITERS] (OUT_DIR "-": in memory only).
#include <iostream>

#include "uotflow/core/blas.h"
#include "uotflow/run/trainer.h"

int main(int argc, char** argv) {
  using namespace uotflow;
  restart_with_better_blas_kernels(argv);  // OpenBLAS's fast kernels where it did not know the CPU
  const int64_t iterations = argc > 2 ? std::stoll(argv[2]) : 500;
  // Only the keys that differ from S-JKO's defaults (its loss.phi1 is linear, for one).
  Json sections = {
      {"loss", {{"phi2", "kl"}}},
      {"train", {{"ema_decay", 0}, {"batch_size", 512}, {"lr_g", 1e-3}, {"lr_d", 1e-3}}}};
  sections["data"] = {{"name", "gaussian"}, {"params", {{"dim", 2}, {"seed", 0}}}};
  sections["sjko"] = {{"n_phases", 4},
                      {"jko_step_size", 0.1},
                      {"init_jko_step_size", 0.1},
                      {"iterations", iterations},
                      {"init_iterations", iterations}};
  Trainer trainer(
      RunOptions().method("sjko").seed(0).eval(EvalOptions().metrics({})).sections(sections),
      nullptr,
      argc > 1 && std::string(argv[1]) != "-" ? TrainOptions{argv[1]} : TrainOptions::in_memory());
  trainer.run();
  std::cout << (trainer.run_dir().empty() ? "(in memory)" : trainer.run_dir()) << "\n";
  for (const auto& row : trainer.evaluations()) {
    if (row["metric"] == "ou_kl") {
      std::cout << "phase " << row["phase"] << ": KL to the Fokker-Planck solution " << row["value"]
                << "\n";
    }
  }
  return 0;
}
