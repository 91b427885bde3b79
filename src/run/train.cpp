// train(): a run trained to its end in one call, as a use of Trainer.
#include "uotflow/io/run_dir.h"
#include "uotflow/run/run.h"

namespace uotflow {

TrainResult train(const Json& config, const TrainOptions& options) {
  return train(config, nullptr, options);
}

TrainResult train(const Json& config, std::shared_ptr<const Dataset> data,
                  const TrainOptions& options) {
  Trainer trainer(config, std::move(data), options);
  return trainer.run();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto found = list_checkpoints(run_dir);
  return found.empty() ? "" : found.back().string();
}

}  // namespace uotflow
