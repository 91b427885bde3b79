// S-JKO towards a Gaussian: the JKO steps follow the Fokker-Planck flow, whose closed form the run
// checks at every phase (ou_kl in eval.jsonl). Usage: example_sjko_to_a_gaussian [OUT_DIR] [ITERS]
#include <fstream>
#include <iostream>

#include "uotflow/core/blas.h"
#include "uotflow/run/run.h"

int main(int argc, char** argv) {
  using namespace uotflow;
  restart_with_better_blas_kernels(argv);  // OpenBLAS's fast kernels where it did not know the CPU
  const std::string iterations = argc > 2 ? argv[2] : "500";
  Json config = resolve_config(
      Json{{"method", "sjko"}, {"seed", 0}},
      {"data.name=gaussian", "data.params={\"dim\": 2, \"seed\": 0}", "sjko.n_phases=4",
       "sjko.jko_step_size=0.1", "sjko.init_jko_step_size=0.1", "sjko.iterations=" + iterations,
       "sjko.init_iterations=" + iterations, "loss.phi2=kl", "train.ema_decay=0",
       "train.batch_size=512", "train.lr_g=1e-3", "train.lr_d=1e-3", "eval.metrics=[]"},
      {});
  TrainOptions options;
  options.out_root = argc > 1 ? argv[1] : "runs";
  const auto run = train(config, options);
  std::cout << run.run_dir << "\n";
  std::ifstream rows(run.run_dir + "/eval.jsonl");
  for (std::string line; std::getline(rows, line);) {
    const auto row = Json::parse(line);
    if (row["metric"] == "ou_kl") {
      std::cout << "phase " << row["phase"] << ": KL to the Fokker-Planck solution " << row["value"]
                << "\n";
    }
  }
  return 0;
}
