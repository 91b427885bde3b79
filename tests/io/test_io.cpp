// Tests of the I/O layer: .npy and safetensors round trips and interop with Debian's NumPy, atomic
// file writes, and PNG plots decoded back to pixels.
#include "uotflow/core/error.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "png_checks.h"

namespace fs = std::filesystem;
using namespace uotflow;
using uotflow::testing::dark_pixels;
using uotflow::testing::decode_png;
using uotflow::testing::Image;
using uotflow::testing::is_colour;
using uotflow::testing::png_size;

namespace {

constexpr const char* kPython = "/usr/bin/python3";

bool python_has_numpy() {
  static const bool ok =
      std::system((std::string(kPython) + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Expects `fn` to throw ConfigError with `path` (and `fragment`, when given) in a one-line message.
template <typename Fn>
void expect_config_error(Fn fn, const std::string& path, const std::string& fragment = "") {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError for '" << path << "'";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("uotflow_io_" + std::to_string(::getpid()) + "_" +
                                             info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }

  std::string file(const std::string& name) const {
    return (dir_ / name).string();
  }

  // Runs a Python script with Debian's python3 and returns its exit status (0 = its checks passed).
  int run_python(const std::string& script) const {
    const std::string script_path = file("check.py");
    write_bytes(script_path, script);
    const std::string log = file("python.log");
    // The test directory is passed as argv[1], so scripts are plain literals.
    const std::string command =
        std::string(kPython) + " " + script_path + " " + dir_.string() + " > " + log + " 2>&1";
    const int status = std::system(command.c_str());
    if (status != 0) {
      std::ifstream in(log);
      std::cerr << "python output:\n" << in.rdbuf() << "\n";
    }
    return status;
  }

  fs::path dir_;
};

using NpyTest = IoTest;
using SafetensorsTest = IoTest;
using IoFilesTest = IoTest;
using PlotTest = IoTest;

TEST_F(NpyTest, RoundTripDtypesAndShapes) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {5}, {3, 4}, {2, 3, 4}};
  for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kInt64}) {
    for (const auto& shape : shapes) {
      const torch::Tensor t = dtype == torch::kInt64
                                  ? torch::randint(-1000, 1000, shape, torch::kInt64)
                                  : torch::randn(shape, dtype);
      const std::string path = file("a.npy");
      save_npy(path, t);
      const torch::Tensor back = load_npy(path);
      EXPECT_EQ(back.scalar_type(), dtype);
      EXPECT_EQ(back.sizes(), t.sizes());
      EXPECT_TRUE(torch::equal(back, t)) << "dtype " << dtype << " shape " << t.sizes();
    }
  }
}

TEST_F(NpyTest, HeaderIsAlignedVersion1) {
  const std::string path = file("h.npy");
  save_npy(path, torch::zeros({7, 2}));
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_end =
      10 + static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]);
  EXPECT_EQ(header_end % 64, 0u);
  EXPECT_EQ(bytes[header_end - 1], '\n');
  EXPECT_EQ(bytes.size(), header_end + 7 * 2 * 4);
  EXPECT_NE(bytes.find("'shape': (7, 2)"), std::string::npos);
}

TEST_F(NpyTest, NonContiguousTensorIsWrittenInLogicalOrder) {
  const torch::Tensor t = torch::arange(12, torch::kFloat32).reshape({3, 4}).t();
  const std::string path = file("t.npy");
  save_npy(path, t);
  EXPECT_TRUE(torch::equal(load_npy(path), t.contiguous()));
}

TEST_F(NpyTest, ReadsFilesWrittenByNumpy) {
  // scripts/setup.sh installs python3-numpy: its absence is a broken set-up, not a reason to skip.
  ASSERT_TRUE(python_has_numpy()) << kPython << " with numpy is not available";
  const std::string d = dir_.string() + "/";
  ASSERT_EQ(
      run_python("import sys, numpy as np\n"
                 "d = sys.argv[1] + '/'\n"
                 "np.save(d + 'f4.npy', (np.arange(12, dtype='<f4') * 0.5 - 1).reshape(3, 4))\n"
                 "np.save(d + 'f8.npy', np.array(3.25, dtype='<f8'))\n"
                 "np.save(d + 'i8.npy', np.arange(24, dtype='<i8').reshape(2, 3, 4) - 7)\n"
                 "np.save(d + 'i4.npy', np.array([-2, 0, 2**31 - 1], dtype='<i4'))\n"
                 "np.save(d + 'u1.npy', np.array([0, 7, 255], dtype='u1'))\n"
                 "np.save(d + 'empty.npy', np.zeros((0, 2), dtype='<f4'))\n"),
      0);
  EXPECT_TRUE(torch::equal(load_npy(d + "f4.npy"),
                           (torch::arange(12, torch::kFloat32) * 0.5 - 1).reshape({3, 4})));
  const torch::Tensor f8 = load_npy(d + "f8.npy");
  EXPECT_EQ(f8.dim(), 0);
  EXPECT_EQ(f8.scalar_type(), torch::kFloat64);
  EXPECT_EQ(f8.item<double>(), 3.25);
  EXPECT_TRUE(torch::equal(load_npy(d + "i8.npy"),
                           torch::arange(24, torch::kInt64).reshape({2, 3, 4}) - 7));
  EXPECT_TRUE(
      torch::equal(load_npy(d + "i4.npy"), torch::tensor({-2, 0, 2147483647}, torch::kInt32)));
  EXPECT_TRUE(torch::equal(load_npy(d + "u1.npy"), torch::tensor({0, 7, 255}, torch::kUInt8)));
  EXPECT_EQ(load_npy(d + "empty.npy").sizes(), torch::IntArrayRef({0, 2}));
}

TEST_F(NpyTest, NumpyReadsOurFiles) {
  // scripts/setup.sh installs python3-numpy: its absence is a broken set-up, not a reason to skip.
  ASSERT_TRUE(python_has_numpy()) << kPython << " with numpy is not available";
  const std::string d = dir_.string() + "/";
  save_npy(d + "f4.npy", (torch::arange(12, torch::kFloat32) * 0.25 - 1).reshape({3, 4}));
  save_npy(d + "f8.npy", torch::tensor(-1.5, torch::kFloat64));
  save_npy(d + "i8.npy", torch::arange(24, torch::kInt64).reshape({2, 3, 4}) - 5);
  EXPECT_EQ(
      run_python(
          "import numpy as np, sys\n"
          "d = sys.argv[1] + '/'\n"
          "a = np.load(d + 'f4.npy')\n"
          "assert a.dtype == np.float32 and a.shape == (3, 4), (a.dtype, a.shape)\n"
          "assert (a == (np.arange(12, dtype='f4') * 0.25 - 1).reshape(3, 4)).all(), a\n"
          "b = np.load(d + 'f8.npy')\n"
          "assert b.dtype == np.float64 and b.shape == () and b == -1.5, b\n"
          "c = np.load(d + 'i8.npy')\n"
          "assert c.dtype == np.int64 and (c == np.arange(24).reshape(2, 3, 4) - 5).all(), c\n"),
      0);
}

TEST_F(NpyTest, TruncatedFileIsConfigError) {
  const std::string path = file("trunc.npy");
  save_npy(path, torch::ones({10}));
  const std::string bytes = read_file(path);
  write_bytes(path, bytes.substr(0, bytes.size() - 3));
  expect_config_error([&] { load_npy(path); }, path, "expected 40 bytes of data, found 37");
}

TEST_F(NpyTest, BadMagicIsConfigError) {
  const std::string path = file("magic.npy");
  write_bytes(path, std::string("PK\x03\x04 this is not a numpy file at all", 36));
  expect_config_error([&] { load_npy(path); }, path, "magic");
}

TEST_F(NpyTest, MissingFileIsConfigError) {
  const std::string path = file("does_not_exist.npy");
  expect_config_error([&] { load_npy(path); }, path);
}

TEST_F(NpyTest, FortranOrderAndBigEndianAreRejected) {
  auto npy_with = [](const std::string& dict) {
    std::string header = dict;
    header.append(128 - 10 - header.size() - 1, ' ');
    header.push_back('\n');
    return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header +
           std::string(16, '\0');
  };
  const std::string fortran = file("fortran.npy");
  write_bytes(fortran, npy_with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"));
  expect_config_error([&] { load_npy(fortran); }, fortran, "fortran_order");
  const std::string big = file("big.npy");
  write_bytes(big, npy_with("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }"));
  expect_config_error([&] { load_npy(big); }, big, "big-endian");
  // The same hand-written layout with a supported dtype loads, so the two failures above are not
  // accidents.
  const std::string good = file("good.npy");
  write_bytes(good, npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"));
  EXPECT_TRUE(torch::equal(load_npy(good), torch::zeros({2, 2})));
}

std::map<std::string, torch::Tensor> example_tensors() {
  return {{"net.weight", torch::randn({3, 4})},
          {"net.bias", torch::randn({3}, torch::kFloat64)},
          {"step", torch::tensor(int64_t{1234567890123}, torch::kInt64)},
          {"empty", torch::zeros({0, 5})},
          {"odd", torch::arange(3, torch::kInt32)}};
}

TEST_F(SafetensorsTest, RoundTrip) {
  const auto tensors = example_tensors();
  const std::string path = file("w.safetensors");
  save_safetensors(path, tensors);
  const auto back = load_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
  // Header length is a multiple of 8 so the data start is aligned.
  const std::string bytes = read_file(path);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) {
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  EXPECT_EQ(header_len % 8, 0u);
}

TEST_F(SafetensorsTest, PythonReadsOurFile) {
  // scripts/setup.sh installs python3-numpy: its absence is a broken set-up, not a reason to skip.
  ASSERT_TRUE(python_has_numpy()) << kPython << " with numpy is not available";
  const std::string path = file("w.safetensors");
  save_safetensors(path,
                   {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3}) / 4},
                    {"b", torch::tensor({-1.0, 2.5}, torch::kFloat64)},
                    {"c", torch::tensor(std::vector<int64_t>{-7, 9000000000}, torch::kInt64)}});
  // A minimal independent parser of the format (the safetensors package is not installed).
  EXPECT_EQ(
      run_python("import json, struct, sys, numpy as np\n"
                 "raw = open(sys.argv[1] + '/w.safetensors', 'rb').read()\n"
                 "(n,) = struct.unpack('<Q', raw[:8])\n"
                 "header = json.loads(raw[8:8 + n])\n"
                 "data = raw[8 + n:]\n"
                 "types = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8'}\n"
                 "out = {}\n"
                 "for name, e in header.items():\n"
                 "    if name == '__metadata__':\n"
                 "        continue\n"
                 "    b, end = e['data_offsets']\n"
                 "    out[name] = np.frombuffer(data[b:end], "
                 "dtype=types[e['dtype']]).reshape(e['shape'])\n"
                 "assert sorted(out) == ['a', 'b', 'c'], sorted(out)\n"
                 "assert out['a'].dtype == np.float32 and (out['a'] == np.arange(6).reshape(2, 3) "
                 "/ 4).all()\n"
                 "assert (out['b'] == [-1.0, 2.5]).all() and out['b'].dtype == np.float64\n"
                 "assert (out['c'] == [-7, 9000000000]).all() and out['c'].dtype == np.int64\n"),
      0);
}

TEST_F(SafetensorsTest, CorruptFilesAreConfigErrors) {
  const std::string path = file("w.safetensors");
  save_safetensors(path, {{"x", torch::ones({4})}});
  const std::string good = read_file(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(good[i])) << (8 * i);
  }
  const std::string header = good.substr(8, n);
  auto with_header = [&](std::string h) {
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string out;
    for (int i = 0; i < 8; ++i) {
      out.push_back(static_cast<char>((h.size() >> (8 * i)) & 0xff));
    }
    return out + h + good.substr(8 + n);
  };

  const std::string bad = file("bad.safetensors");
  write_bytes(bad, good.substr(0, 5));
  expect_config_error([&] { load_safetensors(bad); }, bad);
  write_bytes(bad, std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + good.substr(8));
  expect_config_error([&] { load_safetensors(bad); }, bad, "header length");
  write_bytes(
      bad, with_header("{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]"));
  expect_config_error([&] { load_safetensors(bad); }, bad, "JSON");
  write_bytes(
      bad, with_header("{\"x\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 32]}}"));
  expect_config_error([&] { load_safetensors(bad); }, bad, "outside");
  write_bytes(
      bad, with_header("{\"x\": {\"dtype\": \"F32\", \"shape\": [5], \"data_offsets\": [0, 16]}}"));
  expect_config_error([&] { load_safetensors(bad); }, bad, "need");
  write_bytes(
      bad, with_header("{\"x\": {\"dtype\": \"Q7\", \"shape\": [4], \"data_offsets\": [0, 16]}}"));
  expect_config_error([&] { load_safetensors(bad); }, bad, "dtype");
  write_bytes(bad, good.substr(0, good.size() - 4));  // data cut short
  expect_config_error([&] { load_safetensors(bad); }, bad, "outside");
  expect_config_error([&] { load_safetensors(file("missing.safetensors")); },
                      file("missing.safetensors"));
  // The rebuilt original header still loads, so the failures above come from the corruption.
  write_bytes(bad, with_header(header));
  EXPECT_TRUE(torch::equal(load_safetensors(bad).at("x"), torch::ones({4})));
}

TEST_F(IoFilesTest, WriteFileAtomicReplacesContentAndLeavesNoTemp) {
  const std::string path = file("state.json");
  write_file_atomic(path, "first version, rather long");
  EXPECT_EQ(read_file(path), "first version, rather long");
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  write_file_atomic(path, "");
  EXPECT_EQ(read_file(path), "");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"state.json"});
}

TEST_F(IoFilesTest, WriteFileAtomicFailureIsRuntimeErrorNamingPath) {
  const std::string path = file("no_such_dir/out.txt");
  try {
    write_file_atomic(path, "x");
    ADD_FAILURE() << "no RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST_F(IoFilesTest, AppendLineAppends) {
  const std::string path = file("log.txt");
  append_line(path, "one");
  append_line(path, "two");
  append_line(path, "");
  EXPECT_EQ(read_file(path), "one\ntwo\n\n");
}

TEST_F(IoFilesTest, ReadFileMissingIsConfigError) {
  const std::string path = file("nothing.txt");
  expect_config_error([&] { read_file(path); }, path, "cannot read file");
}

TEST_F(PlotTest, ScatterShowsCentrePointInBlueOverWhite) {
  const std::string path = file("scatter.png");
  const PlotWindow window{2.0, -1.0, 3.0};
  // One sample at the window centre, data far away in a corner region, and points outside the
  // window.
  const torch::Tensor samples = torch::tensor({{2.0, -1.0}, {100.0, 100.0}}, torch::kFloat64);
  const torch::Tensor data = torch::tensor({{4.5f, 1.5f}, {-50.f, 0.f}});
  save_scatter_png(path, data, samples, window, 257);
  const std::string bytes = read_file(path);
  EXPECT_EQ(png_size(bytes), std::make_pair(257, 257));
  const Image image = decode_png(bytes);
  ASSERT_EQ(image.width, 257);
  ASSERT_EQ(image.height, 257);
  const unsigned char* centre = image.at(128, 128);
  EXPECT_GT(centre[2], centre[0] + 40)
      << int(centre[0]) << "," << int(centre[1]) << "," << int(centre[2]);
  EXPECT_LT(centre[0], 200);
  for (const auto& [x, y] : {std::pair{250, 250}, std::pair{5, 5}, std::pair{200, 250}}) {
    const unsigned char* px = image.at(x, y);
    EXPECT_EQ(px[0] + px[1] + px[2], 3 * 255) << "pixel " << x << "," << y;
  }
  // The window's range is written bottom left, nowhere else.
  EXPECT_GT(dark_pixels(image, 2, 238, 120, 254), 30);
  EXPECT_EQ(dark_pixels(image, 2, 2, 120, 20), 0);
  // The data point at (4.5, 1.5) lands upper right (y is up) as a grey, not blue, dot.
  const unsigned char* grey = image.at(128 + 107, 128 - 107);
  EXPECT_LT(grey[0], 255);
  EXPECT_EQ(grey[0], grey[2]);
}

TEST_F(PlotTest, ScatterAcceptsEmptyAndUndefinedTensors) {
  const std::string path = file("empty.png");
  save_scatter_png(path, torch::Tensor(), torch::zeros({0, 2}), PlotWindow{}, 64);
  const Image image = decode_png(read_file(path));
  ASSERT_EQ(image.width, 64);
  const unsigned char* px = image.at(10, 20);
  EXPECT_EQ(px[0] + px[1] + px[2], 3 * 255);
  EXPECT_THROW(save_scatter_png(path, torch::zeros({3, 3}), torch::Tensor(), PlotWindow{}, 64),
               c10::Error);
}

TEST_F(PlotTest, StripPanelsCarryTheirLabels) {
  const auto path = file("strip.png");
  const auto points = torch::zeros({1, 2});
  save_scatter_strip_png(path, torch::Tensor(), {points, points, points}, PlotWindow{}, 128,
                         {"phase 0", "", "phase 9"});
  const Image image = decode_png(read_file(path));
  ASSERT_EQ(image.width, 3 * 128 + 2 * 4);
  EXPECT_GT(dark_pixels(image, 2, 2, 80, 18), 10);              // "phase 0"
  EXPECT_EQ(dark_pixels(image, 132 + 2, 2, 132 + 80, 18), 0);   // no label
  EXPECT_GT(dark_pixels(image, 264 + 2, 2, 264 + 80, 18), 10);  // "phase 9"
  EXPECT_THROW(
      save_scatter_strip_png(path, torch::Tensor(), {points}, PlotWindow{}, 128, {"a", "b"}),
      c10::Error);
}

// Image rows (e.g. the phases of an image flow): each row labelled in a white margin on its
// left, the images unchanged to its right.
TEST_F(PlotTest, ImageRowsCarryTheirLabels) {
  const std::string path = file("rows.png");
  const auto white = torch::ones({4, 1, 10, 10});  // 4 images of 10 x 10 px per row
  const auto black = -torch::ones({4, 1, 10, 10});
  save_labelled_image_rows_png(path, {white, black}, {"phase 0", "phase 12"}, 2);
  const Image image = decode_png(read_file(path));
  // Each row is one grid row: 20 px images (scale 2) with 2 px padding, 24 px high, 4 * 22 + 2
  // wide.
  ASSERT_EQ(image.height, 2 * 24);
  const int left = image.width - (4 * 22 + 2);
  ASSERT_GT(left, 40);                                     // room for "phase 12"
  EXPECT_GT(dark_pixels(image, 0, 2, left - 4, 22), 10);   // "phase 0" beside the first row
  EXPECT_GT(dark_pixels(image, 0, 26, left - 4, 46), 10);  // "phase 12" beside the second
  EXPECT_TRUE(is_colour(image.at(left + 2 + 10, 2 + 10), 255, 255, 255));  // a white image
  EXPECT_TRUE(is_colour(image.at(left + 2 + 10, 24 + 2 + 10), 0, 0, 0));   // a black image
  EXPECT_THROW(save_labelled_image_rows_png(path, {white}, {}, 1), c10::Error);
}

// An image grid's title goes in a white band above it; without a title the grid is alone.
TEST_F(PlotTest, ImageGridTitleSitsAboveTheGrid) {
  const auto images = -torch::ones({16, 1, 8, 8});  // black images: 4 x 4 grid of 8 px + padding
  save_image_grid_png(file("plain.png"), images, 4, 1);
  save_image_grid_png(file("titled.png"), images, 4, 1, "run: step 1000");
  const Image plain = decode_png(read_file(file("plain.png")));
  const Image titled = decode_png(read_file(file("titled.png")));
  EXPECT_EQ(plain.width, 4 * 10 + 2);
  EXPECT_EQ(plain.height, 4 * 10 + 2);
  ASSERT_EQ(titled.width, plain.width);
  const int band = titled.height - plain.height;
  ASSERT_GT(band, 10);
  EXPECT_GT(dark_pixels(titled, 0, 0, titled.width - 1, band - 1), 10);   // the title
  EXPECT_TRUE(is_colour(titled.at(titled.width - 1, 1), 255, 255, 255));  // white band
  EXPECT_TRUE(is_colour(titled.at(2 + 4, band + 2 + 4), 0, 0, 0));        // the first image
}

TEST_F(PlotTest, HistogramHasRequestedSizeAndBars) {
  const std::string path = file("hist.png");
  const torch::Tensor data = torch::randn({2000});
  const torch::Tensor samples = torch::randn({2000, 1}, torch::kFloat64) * 0.5 + 1.0;
  save_histogram_png(path, data, samples, PlotWindow{0.0, 0.0, 4.0}, 50, 300, 120);
  const std::string bytes = read_file(path);
  EXPECT_EQ(png_size(bytes), std::make_pair(300, 120));
  const Image image = decode_png(bytes);
  ASSERT_EQ(image.height, 120);
  // Near the bottom under the sample peak (x = 1) there is blue; far left (x = -3.9) stays white.
  const int x_peak = static_cast<int>(6 + (1.0 + 4.0) / 8.0 * (300 - 13));
  const unsigned char* peak = image.at(x_peak, 110);
  EXPECT_GT(peak[2], peak[0] + 20);
  const unsigned char* left = image.at(8, 60);
  EXPECT_EQ(left[0] + left[1] + left[2], 3 * 255);
}

TEST_F(PlotTest, LinePlotValuesLandOnTheirPixels) {
  LinePlot plot;
  plot.title = "run: sw2";
  plot.y_label = "sw2";
  // y = x / 100 on [0, 100]: the axes are exactly [0, 100] x [0, 1] (both are tick values).
  LineSeries line{"line", {}, {}};
  for (int i = 0; i <= 100; ++i) {
    line.x.push_back(i);
    line.y.push_back(i / 100.0);
  }
  plot.series = {line};
  const auto path = file("line.png");
  save_line_plot_png(path, plot, 640, 400);
  const std::string bytes = read_file(path);
  EXPECT_EQ(png_size(bytes), std::make_pair(640, 400));
  const Image image = decode_png(bytes);
  const auto f = line_plot_frame(plot, 640, 400);
  EXPECT_EQ(f.x_min, 0.0);
  EXPECT_EQ(f.x_max, 100.0);
  EXPECT_EQ(f.y_min, 0.0);
  EXPECT_EQ(f.y_max, 1.0);
  EXPECT_FALSE(f.log_y);
  EXPECT_GT(f.left, 30);  // room for the tick values and the axis label
  EXPECT_LT(f.bottom, 370);
  // The points of the series on the diagonal of the frame, in the first palette colour (blue).
  for (double t : {0.1, 0.25, 0.5, 0.9}) {
    const int x = static_cast<int>(std::lround(f.left + t * (f.right - f.left)));
    const int y = static_cast<int>(std::lround(f.bottom - t * (f.bottom - f.top)));
    EXPECT_TRUE(is_colour(image.at(x, y), 31, 119, 180)) << "t = " << t;
    EXPECT_FALSE(is_colour(image.at(x, y - 12), 31, 119, 180)) << "t = " << t;
  }
  // Text: tick values under the x axis and left of the y axis, the title above, the y label at
  // the left edge; none inside the empty upper-left part of the data area.
  EXPECT_GT(dark_pixels(image, f.left - 10, f.bottom + 5, f.right + 10, f.bottom + 20), 40);
  EXPECT_GT(dark_pixels(image, 0, f.top, f.left - 5, f.bottom), 40);
  EXPECT_GT(dark_pixels(image, f.left, 0, f.right, f.top - 4), 20);
  EXPECT_GT(dark_pixels(image, 0, f.top, 22, f.bottom), 10);
  EXPECT_EQ(dark_pixels(image, f.left + 20, f.top + 10, f.left + 200, f.top + 100), 0);
  // One series: no legend box in the top right.
  EXPECT_EQ(dark_pixels(image, f.right - 120, f.top + 6, f.right - 8, f.top + 40), 0);
}

TEST_F(PlotTest, LinePlotLegendLogScaleAndNonFinite) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  LinePlot plot;
  plot.y_label = "kl";
  plot.series = {{"uotm", {0, 1, 2, 3, 4}, {100, 10, nan, 0.1, 0.01}},
                 {"otm", {0, 1, 2, 3, 4}, {50, 50, 50, 50, 50}}};
  const auto f = line_plot_frame(plot, 640, 400);
  EXPECT_TRUE(f.log_y);  // positive values over four decades
  EXPECT_DOUBLE_EQ(f.y_min, 0.01);
  EXPECT_DOUBLE_EQ(f.y_max, 100.0);
  EXPECT_NEAR(f.py(1.0), (f.top + f.bottom) / 2.0, 1e-9);  // 1 is half way on [0.01, 100]
  save_line_plot_png(file("log.png"), plot, 640, 400);
  const Image image = decode_png(read_file(file("log.png")));
  // The constant series (orange) at 50; the legend (a box with names) in the top right.
  const int x = static_cast<int>(std::lround(f.px(1.5)));
  EXPECT_TRUE(is_colour(image.at(x, static_cast<int>(std::lround(f.py(50.0)))), 255, 127, 14));
  EXPECT_GT(dark_pixels(image, f.right - 120, f.top + 6, f.right - 8, f.top + 40), 20);
  // The NaN breaks the first series: nothing blue between x = 1.8 and 2.2 at any height.
  int blue = 0;
  for (int y = f.top; y <= f.bottom; ++y) {
    blue += is_colour(image.at(static_cast<int>(std::lround(f.px(2.0))), y), 31, 119, 180);
  }
  EXPECT_EQ(blue, 0);
  // Empty plots and non-positive values on a forced log axis are drawn, not thrown.
  EXPECT_NO_THROW(save_line_plot_png(file("empty.png"), LinePlot{}));
  LinePlot forced;
  forced.y_scale = LinePlot::Scale::log;
  forced.series = {{"", {0, 1, 2}, {-1, 0, 5}}};
  EXPECT_NO_THROW(save_line_plot_png(file("forced.png"), forced));
  EXPECT_THROW(save_line_plot_png(file("tiny.png"), plot, 100, 50), c10::Error);
}

}  // namespace
