// Training a run to its end in one call (a use of Trainer), and sampling finished runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/data/dataset.h"
#include "uotflow/run/config.h"
#include "uotflow/run/trainer.h"

namespace uotflow {

/// Trains `config` (resolved, e.g. by resolve_config). A new run gets a fresh auto-numbered
/// directory under out_root (an existing directory is never reused); with resume_dir the newest
/// checkpoint is verified (manifest, SHA-256, the run's config) and loaded, and training continues
/// up to the run's length. The run directory is locked while training (a second writer gets a
/// ConfigError naming the holder). Config problems raise a ConfigError before anything is written;
/// a non-finite loss raises a RuntimeError and leaves the verified checkpoints in place; any
/// failure after the run directory exists is also written to its log.txt.
///
///   auto config = resolve_config(read_json_file("configs/toy/uotm_8gaussians.json"), {}, {});
///   TrainResult result = train(config, TrainOptions());
TrainResult train(const Json& config, const TrainOptions& options);

/// The same with a target data set the program holds (e.g. a TensorDataset) in place of the
/// config's "data" section; a resume must pass the same data again.
///
///   auto data = std::make_shared<TensorDataset>(x);  // x: [N, D]
///   train(resolve_config({}, {"train.steps=2000"}, {}), data, TrainOptions());
TrainResult train(const Json& config, std::shared_ptr<const Dataset> data,
                  const TrainOptions& options);

/// Draws n samples [n, D] (CPU) from a finished run's final/ weights, with seed and EMA choice;
/// with phase >= 0, from the weights at the end of that phase (phases/phase-KKKK/). The run's data
/// set is not rebuilt.
torch::Tensor sample_run(const std::string& run_dir, int64_t n, uint64_t seed, bool ema,
                         int64_t phase = -1);

/// The images of given source points x [n, D] (or [n, C, H, W] for images) under a finished run's
/// map (final/ weights, or phase's), row i the image of row i, with the map's noise drawn from
/// `seed` (Trainer::map on a trained run). Neither the run's data set nor its source is rebuilt.
/// A wrong shape, non-finite inputs or a method without a map of inputs is a ConfigError.
torch::Tensor map_run(const std::string& run_dir, const torch::Tensor& x, uint64_t seed, bool ema,
                      int64_t phase = -1);
/// One sample per seed from a finished run (as sample_run), each independent of the others: the
/// sample of seed s is sample_run(run_dir, 1, s, ...).
struct SeedSamples {
  torch::Tensor samples;             ///< [S, D] (CPU)
  std::vector<int64_t> image_shape;  ///< [C, H, W] for image data, else empty
};
SeedSamples sample_run_seeds(const std::string& run_dir, const std::vector<uint64_t>& seeds,
                             bool ema, int64_t phase = -1);

/// Path of the newest checkpoint file of a run ("" when there is none); not verified.
std::string latest_checkpoint(const std::string& run_dir);

}  // namespace uotflow
