// A program of another project: a metric and a short in-memory UOTM run through the installed
// library. Prints "package: ok" when both give what they should.
#include <uotflow/data/tensor_dataset.h>
#include <uotflow/methods/semidual_method.h>
#include <uotflow/ot/sliced.h>
#include <uotflow/run/trainer.h>

#include <iostream>

int main() {
  using namespace uotflow;
  auto x = torch::randn({256, 2});
  const double self = sliced_wasserstein(x, x, 50, /*seed=*/0).item<double>();
  Trainer trainer(RunOptions()
                      .method("uotm")
                      .seed(0)
                      .schedule(ScheduleOptions().steps(20).eval_every(0))
                      .eval(EvalOptions().metrics({"sw2"}).n(200))
                      .sections(SemiDualOptions().batch_size(64).to_json()),
                  std::make_shared<TensorDataset>(x + 3.0));
  trainer.run();
  const auto y = trainer.sample(100, /*seed=*/1);
  const bool ok = self == 0.0 && y.size(0) == 100 && y.size(1) == 2 && trainer.finished() &&
                  !trainer.evaluations().empty() && trainer.run_dir().empty();
  std::cout << (ok ? "package: ok" : "package: FAILED") << std::endl;
  return ok ? 0 : 1;
}
