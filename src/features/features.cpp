// FID/KID feature extractors: TorchScript modules loaded from a file, and the built-in classifier
// (trained here, saved as safetensors), plus feature statistics in .npz files.
#include "uotflow/features/features.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <ostream>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/images.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/safetensors.h"
#include "uotflow/io/sha256.h"
#include "uotflow/nets/nets.h"

namespace fs = std::filesystem;

namespace uotflow {
namespace {

constexpr int64_t kBatch = 256;  // images per forward pass when extracting features

// The built-in classifier: two blocks of two 3x3 convs and a 2x2 max pool, adaptive average
// pooling to 4x4 (any input size), a dense layer whose SiLU output is the feature, a linear head.
class ClassifierNetImpl : public torch::nn::Module {
 public:
  ClassifierNetImpl(std::vector<int64_t> shape, int64_t n_classes, int64_t width,
                    int64_t feature_dim)
      : shape_(std::move(shape)) {
    TORCH_CHECK(shape_.size() == 3, "classifier: image shape must be [C, H, W]");
    TORCH_CHECK(n_classes >= 2 && width > 0 && feature_dim > 0,
                "classifier: needs >= 2 classes and positive widths");
    namespace nn = torch::nn;
    auto conv = [](int64_t in, int64_t out) {
      return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1));
    };
    body_ = register_module(
        "body", nn::Sequential(conv(shape_[0], width), nn::SiLU(), conv(width, width), nn::SiLU(),
                               nn::MaxPool2d(2), conv(width, 2 * width), nn::SiLU(),
                               conv(2 * width, 2 * width), nn::SiLU(), nn::MaxPool2d(2),
                               nn::AdaptiveAvgPool2d(4), nn::Flatten()));
    dense_ = register_module("dense", nn::Linear(2 * width * 16, feature_dim));
    head_ = register_module("head", nn::Linear(feature_dim, n_classes));
  }

  // x: [B, C*H*W] -> [B, feature_dim]
  torch::Tensor features(const torch::Tensor& x) {
    return torch::silu(
        dense_(body_->forward(x.view({x.size(0), shape_[0], shape_[1], shape_[2]}))));
  }

  // x: [B, C*H*W] -> logits [B, K]
  torch::Tensor forward(const torch::Tensor& x) {
    return head_(features(x));
  }

 private:
  std::vector<int64_t> shape_;
  torch::nn::Sequential body_{nullptr};
  torch::nn::Linear dense_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ClassifierNet);

// Runs `fn` over `images` in batches on `device` without gradients; concatenates float64 CPU
// results.
template <typename Fn>
torch::Tensor batched(const torch::Tensor& images, torch::Device device, Fn fn) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < images.size(0); start += kBatch) {
    auto batch = images.slice(0, start, start + kBatch).to(device, torch::kFloat32);
    parts.push_back(fn(batch).to(torch::kCPU, torch::kFloat64));
  }
  return torch::cat(parts);
}

void check_images(const torch::Tensor& images, int64_t dim, const std::string& who) {
  if (images.dim() != 2 || images.size(1) != dim) {
    throw ConfigError(who + ": images must be [N, " + std::to_string(dim) + "], got " +
                      c10::str(images.sizes()));
  }
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (const auto s : shape) {
    n *= s;
  }
  return n;
}

class ClassifierExtractor : public FeatureExtractor {
 public:
  ClassifierExtractor(const std::string& path, const std::vector<int64_t>& image_shape,
                      torch::Device device)
      : device_(device), sha256_(sha256_file(path)) {
    auto tensors = load_safetensors(path);
    auto meta = [&](const std::string& key) {
      auto it = tensors.find("meta." + key);
      if (it == tensors.end()) {
        throw ConfigError("classifier '" + path + "' lacks tensor 'meta." + key +
                          "' (not written by uotflow?)");
      }
      auto value = it->second;
      tensors.erase(it);
      return value;
    };
    auto shape_tensor = meta("image_shape");
    shape_ = std::vector<int64_t>(shape_tensor.data_ptr<int64_t>(),
                                  shape_tensor.data_ptr<int64_t>() + shape_tensor.numel());
    if (!image_shape.empty() && shape_ != image_shape) {
      throw ConfigError("classifier '" + path + "' was trained on images " + c10::str(shape_) +
                        ", these are " + c10::str(image_shape));
    }
    outlier_class_ = meta("outlier_class").item<int64_t>();
    net_ = ClassifierNet(shape_, meta("n_classes").item<int64_t>(), meta("width").item<int64_t>(),
                         meta("feature_dim").item<int64_t>());
    meta("accuracy");
    load_named_tensors(*net_, tensors, "classifier '" + path + "'");
    net_->to(device_);
    net_->eval();
  }

  torch::Tensor features(const torch::Tensor& images) override {
    check_images(images, product(shape_), "classifier features");
    return batched(images, device_, [&](const torch::Tensor& x) { return net_->features(x); });
  }
  torch::Tensor class_probabilities(const torch::Tensor& images) override {
    check_images(images, product(shape_), "classifier");
    return batched(images, device_,
                   [&](const torch::Tensor& x) { return torch::softmax(net_->forward(x), 1); });
  }
  int64_t outlier_class() const override {
    return outlier_class_;
  }
  std::string kind() const override {
    return "classifier";
  }
  std::string sha256() const override {
    return sha256_;
  }

 private:
  torch::Device device_;
  std::string sha256_;
  std::vector<int64_t> shape_;
  int64_t outlier_class_ = -1;
  ClassifierNet net_{nullptr};
};

class TorchScriptExtractor : public FeatureExtractor {
 public:
  TorchScriptExtractor(const std::string& path, std::vector<int64_t> image_shape,
                       torch::Device device, TorchScriptInput input)
      : device_(device),
        shape_(std::move(image_shape)),
        input_(std::move(input)),
        sha256_(sha256_file(path)) {
    if (input_.range != "signed" && input_.range != "unit" && input_.range != "byte") {
      throw ConfigError("extractor input range '" + input_.range +
                        "' is unknown (known: signed, unit, byte)");
    }
    if (input_.channels != 0 && input_.channels != 3) {
      throw ConfigError("extractor input channels must be 0 (as is) or 3, got " +
                        std::to_string(input_.channels));
    }
    if (shape_.size() != 3) {
      throw ConfigError("a TorchScript extractor needs image data ([C, H, W] samples)");
    }
    try {
      module_ = torch::jit::load(path, device_);
    } catch (const c10::Error& e) {
      std::string what = e.what_without_backtrace();
      throw ConfigError("cannot load TorchScript extractor '" + path +
                        "': " + what.substr(0, what.find('\n')));
    }
    module_.eval();
  }

  torch::Tensor features(const torch::Tensor& images) override {
    check_images(images, product(shape_), "TorchScript features");
    return batched(images, device_, [&](const torch::Tensor& flat) {
      auto x = flat.view({flat.size(0), shape_[0], shape_[1], shape_[2]});
      if (input_.channels == 3 && shape_[0] == 1) {
        x = x.expand({-1, 3, -1, -1});
      }
      if (input_.range == "unit") {
        x = (x + 1.0) / 2.0;
      } else if (input_.range == "byte") {
        x = (x + 1.0) * 127.5;
      }
      auto out = module_.forward({x.contiguous()});
      TORCH_CHECK(out.isTensor(), "the TorchScript extractor must return a tensor");
      auto f = out.toTensor();
      return f.reshape({f.size(0), -1});
    });
  }
  std::string kind() const override {
    return "torchscript";
  }
  std::string sha256() const override {
    return sha256_;
  }

 private:
  torch::Device device_;
  std::vector<int64_t> shape_;
  TorchScriptInput input_;
  std::string sha256_;
  torch::jit::script::Module module_;
};

}  // namespace

std::unique_ptr<FeatureExtractor> load_feature_extractor(const std::string& path,
                                                         const std::vector<int64_t>& image_shape,
                                                         torch::Device device,
                                                         const TorchScriptInput& input) {
  if (!fs::is_regular_file(path)) {
    throw ConfigError("feature extractor '" + path + "' does not exist");
  }
  if (fs::path(path).extension() == ".safetensors") {
    return std::make_unique<ClassifierExtractor>(path, image_shape, device);
  }
  return std::make_unique<TorchScriptExtractor>(path, image_shape, device, input);
}

ClassifierReport train_classifier(const ImageSet& data, const ClassifierOptions& options,
                                  const std::string& path, std::ostream* progress) {
  const auto& labels = data.labels();
  if (!labels.defined() || data.n_classes() < 2) {
    throw ConfigError("the built-in classifier needs a labelled image set with >= 2 classes");
  }
  if (options.steps <= 0 || options.batch_size <= 0 || !(options.lr > 0) ||
      !(options.holdout > 0 && options.holdout < 1)) {
    throw ConfigError("classifier: steps, batch_size and lr must be > 0 and holdout in (0, 1)");
  }
  const int64_t n = data.images().size(0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto order = torch::randperm(n, gen);
  const int64_t n_holdout = std::max<int64_t>(1, static_cast<int64_t>(options.holdout * n));
  const auto train_idx = order.slice(0, n_holdout);
  const auto holdout_idx = order.slice(0, 0, n_holdout);
  TORCH_CHECK(train_idx.numel() > 0, "classifier: too few images to train on");

  ClassifierNet net(nullptr);
  {
    GlobalSeedScope init(options.seed);  // the initial weights, without touching the caller's RNG
    net = ClassifierNet(data.image_shape(), data.n_classes(), options.width, options.feature_dim);
  }
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(options.lr));
  for (int64_t step = 0; step < options.steps; ++step) {
    const auto pick =
        train_idx.index_select(0, torch::randint(train_idx.numel(), {options.batch_size}, gen));
    auto x = data.images().index_select(0, pick);
    auto loss = torch::cross_entropy_loss(net->forward(x), labels.index_select(0, pick));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (progress != nullptr && ((step + 1) % 500 == 0 || step + 1 == options.steps)) {
      *progress << "classifier step " << step + 1 << "/" << options.steps
                << " loss=" << loss.item<double>() << "\n";
    }
  }
  net->eval();
  const auto predicted =
      batched(data.images().index_select(0, holdout_idx), torch::kCPU, [&](const torch::Tensor& x) {
        return net->forward(x);
      }).argmax(1);
  ClassifierReport report;
  report.accuracy =
      predicted.eq(labels.index_select(0, holdout_idx)).to(torch::kFloat64).mean().item<double>();
  report.n_train = train_idx.numel();
  report.n_holdout = n_holdout;

  auto tensors = named_tensors(*net);
  int64_t outlier = -1;
  const auto& names = data.class_names();
  for (size_t k = 0; k < names.size(); ++k) {
    if (names[k] == "outlier") {
      outlier = static_cast<int64_t>(k);
    }
  }
  tensors["meta.image_shape"] = torch::tensor(data.image_shape(), torch::kInt64);
  tensors["meta.n_classes"] = torch::tensor(data.n_classes(), torch::kInt64);
  tensors["meta.width"] = torch::tensor(options.width, torch::kInt64);
  tensors["meta.feature_dim"] = torch::tensor(options.feature_dim, torch::kInt64);
  tensors["meta.outlier_class"] = torch::tensor(outlier, torch::kInt64);
  tensors["meta.accuracy"] = torch::tensor(report.accuracy, torch::kFloat64);
  save_safetensors(path, tensors);
  return report;
}

GaussianFit feature_statistics(const torch::Tensor& features) {
  if (features.dim() != 2 || features.size(0) < 2) {
    throw ConfigError("feature statistics need [N, F] features with N >= 2, got " +
                      c10::str(features.sizes()));
  }
  return fit_gaussian(features.to(torch::kFloat64));
}

double frechet_inception_distance(const GaussianFit& a, const GaussianFit& b) {
  return gaussian_w2_squared(a, b);
}

void save_reference_stats(const std::string& path, const ReferenceStats& stats) {
  const auto& hex = stats.extractor_sha256;
  auto sha = torch::empty({static_cast<int64_t>(hex.size())}, torch::kUInt8);
  std::copy(hex.begin(), hex.end(), sha.data_ptr<uint8_t>());
  save_npz(path, {{"mu", stats.gaussian.mean.to(torch::kFloat64)},
                  {"sigma", stats.gaussian.cov.to(torch::kFloat64)},
                  {"n", torch::tensor(stats.n, torch::kInt64)},
                  {"extractor_sha256", sha}});
}

ReferenceStats load_reference_stats(const std::string& path) {
  auto arrays = load_npz(path);
  for (const char* key : {"mu", "sigma"}) {
    if (arrays.count(key) == 0) {
      throw ConfigError("reference statistics '" + path + "' lack array '" + key + "'");
    }
  }
  ReferenceStats stats;
  stats.gaussian.mean = arrays["mu"].to(torch::kFloat64).flatten();
  stats.gaussian.cov = arrays["sigma"].to(torch::kFloat64);
  const int64_t f = stats.gaussian.mean.numel();
  if (stats.gaussian.cov.dim() != 2 || stats.gaussian.cov.size(0) != f ||
      stats.gaussian.cov.size(1) != f) {
    throw ConfigError("reference statistics '" + path + "': sigma is " +
                      c10::str(stats.gaussian.cov.sizes()) + ", mu has " + std::to_string(f) +
                      " entries");
  }
  if (arrays.count("n")) {
    stats.n = arrays["n"].item<int64_t>();
  }
  if (arrays.count("extractor_sha256")) {
    const auto& sha = arrays["extractor_sha256"];
    stats.extractor_sha256.assign(sha.data_ptr<uint8_t>(), sha.data_ptr<uint8_t>() + sha.numel());
  }
  return stats;
}

}  // namespace uotflow
