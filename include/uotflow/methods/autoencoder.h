// The autoencoder method (a convolutional encoder and decoder of images trained on reconstruction),
// and its latent space as other runs use it: a run whose config names a finished autoencoder run
// (latent.run) works on the codes of its data and has its samples decoded for metrics and
// pictures.
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "uotflow/methods/method.h"
#include "uotflow/nets/image_nets.h"

namespace uotflow {

/// The "autoencoder" config section.
///
///   auto options = AutoencoderOptions().nz(48).width(32);
struct AutoencoderOptions {
  TORCH_ARG(int64_t, width) = 32;        ///< channels at full resolution, doubling at each halving
  TORCH_ARG(int64_t, nz) = 48;           ///< latent dimension (the paper's)
  TORCH_ARG(int64_t, batch_size) = 128;  ///< images per step
  TORCH_ARG(double, lr) = 1e-3;          ///< Adam

 public:  // TORCH_ARG leaves the struct in private access
  /// Reads and checks the "autoencoder" section (ConfigError naming the key).
  static AutoencoderOptions from_json(const Json& config);
  Json to_json() const;
  /// The nets' options for images of `image_shape`.
  DcganOptions nets(const std::vector<int64_t>& image_shape) const;
};

/// Registers "autoencoder" in the method registry.
void register_autoencoder(MethodRegistry& registry);

/// The latent space of a finished autoencoder run: its encoder and decoder on the CPU.
///
///   auto space = LatentSpace::load("runs/00003-autoencoder-fashion_mnist", "");
///   auto codes = space->encode_dataset(*images);           // [N, nz] codes as a data set
///   torch::Tensor x = space->decode(torch::randn({8, 48}));  // [8, 784] images
class LatentSpace {
 public:
  /// Reads the run's config.json and final/encoder.safetensors, decoder.safetensors. `sha256`: the
  /// checksum of those weights a run recorded when it started to use them ("" = none yet); other
  /// weights are a ConfigError naming the run and both checksums.
  static std::shared_ptr<const LatentSpace> load(const std::string& run_dir,
                                                 const std::string& sha256);

  int64_t dim() const {
    return options_.nz();
  }
  int64_t data_dim() const;
  const std::vector<int64_t>& image_shape() const {
    return image_shape_;
  }
  /// The run directory (absolute) and the weights' checksum: what a run using them records.
  const std::string& run_dir() const {
    return run_dir_;
  }
  const std::string& sha256() const {
    return sha256_;
  }

  /// x: [n, C*H*W] -> codes [n, nz] (CPU float32, no gradient).
  torch::Tensor encode(const torch::Tensor& x) const;
  /// z: [n, nz] on any device -> images [n, C*H*W] (CPU float32, no gradient).
  torch::Tensor decode(const torch::Tensor& z) const;
  /// The codes of every image of a finite image set (a file set or one held in memory) as a
  /// data set of points; another kind of data set is a ConfigError.
  std::shared_ptr<const Dataset> encode_dataset(const Dataset& images) const;

 private:
  LatentSpace(std::string run_dir, std::string sha256, AutoencoderOptions options,
              std::vector<int64_t> image_shape);

  std::string run_dir_, sha256_;
  AutoencoderOptions options_;
  std::vector<int64_t> image_shape_;
  mutable DcganEncoder encoder_{nullptr};
  mutable DcganDecoder decoder_{nullptr};
};

}  // namespace uotflow
