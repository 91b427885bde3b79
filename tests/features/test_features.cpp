// FID machinery: SHA-256, .npz files, image grids, TorchScript extractors against Python, the
// built-in classifier and reference statistics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "checks.h"
#include "python_oracle.h"
#include "run_checks.h"
#include "uotflow/core/error.h"
#include "uotflow/data/images.h"
#include "uotflow/features/features.h"
#include "uotflow/io/files.h"
#include "uotflow/io/npy.h"
#include "uotflow/io/plot.h"
#include "uotflow/io/sha256.h"

namespace uotflow {
namespace {

using testing::expect_config_error;
using testing::fresh_test_dir;
using testing::PythonOracle;
using testing::relative_error;
namespace fs = std::filesystem;

TEST(Sha256, MatchesTheStandardTestVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding spills into a second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileHashEqualsPythonHashlibForEveryTailLength) {
  const auto dir = fresh_test_dir();
  std::string bytes;
  for (int i = 0; i < 130; ++i) {
    bytes.push_back(static_cast<char>((i * 37 + 11) % 256));
  }
  PythonOracle py;
  for (const size_t n : {0, 55, 56, 63, 64, 65, 119, 120, 130}) {
    const auto path = (dir / ("f" + std::to_string(n))).string();
    write_file_atomic(path, bytes.substr(0, n));
    py.run("import hashlib\nopen(D + '/hash', 'w').write(hashlib.sha256(open('" + path +
           "', 'rb').read()).hexdigest())");
    EXPECT_EQ(sha256_file(path), read_file(py.path_of("hash"))) << n << " bytes";
  }
  expect_config_error([&] { sha256_file((dir / "missing").string()); }, "missing file", "missing");
}

TEST(Npz, RoundTripsAndNumpyReadsAndWritesTheSameFiles) {
  const auto dir = fresh_test_dir();
  const auto path = (dir / "a.npz").string();
  auto mu = torch::randn({5}, torch::kFloat64);
  auto sigma = torch::randn({5, 5}, torch::kFloat64);
  auto bytes = torch::arange(10, torch::kInt64).to(torch::kUInt8);
  save_npz(path, {{"mu", mu}, {"sigma", sigma}, {"b", bytes}});
  auto back = load_npz(path);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_TRUE(torch::equal(back["mu"], mu));
  EXPECT_TRUE(torch::equal(back["sigma"], sigma));
  EXPECT_TRUE(torch::equal(back["b"], bytes));

  // NumPy reads ours, and we read what np.savez writes (zip64 extras included).
  PythonOracle py;
  py.run("z = np.load('" + path +
         "')\nsave('sum', [z['mu'].sum(), z['sigma'].sum(), z['b'].sum()])\n"
         "np.savez(D + '/py.npz', x=np.arange(6.0).reshape(2, 3), y=np.int64(7))\n"
         "np.savez_compressed(D + '/pyc.npz', x=np.arange(6.0))");
  auto sums = py.get("sum");
  EXPECT_NEAR(sums[0].item<double>(), mu.sum().item<double>(), 1e-12);
  EXPECT_NEAR(sums[1].item<double>(), sigma.sum().item<double>(), 1e-12);
  EXPECT_EQ(sums[2].item<double>(), 45.0);
  auto theirs = load_npz(py.path_of("py.npz"));
  EXPECT_TRUE(torch::equal(theirs["x"], torch::arange(6, torch::kFloat64).view({2, 3})));
  EXPECT_EQ(theirs["y"].item<int64_t>(), 7);
  expect_config_error([&] { load_npz(py.path_of("pyc.npz")); }, "compressed npz",
                      "savez_compressed");
}

TEST(Npz, CorruptFilesGiveOneLineErrors) {
  const auto dir = fresh_test_dir();
  const auto path = (dir / "a.npz").string();
  save_npz(path, {{"mu", torch::ones({100}, torch::kFloat64)}});
  const auto good = read_file(path);
  write_file_atomic(path, good.substr(0, good.size() / 2));
  expect_config_error([&] { load_npz(path); }, "truncated npz", path);
  auto flipped = good;
  flipped[200] = static_cast<char>(flipped[200] ^ 0x55);  // inside the array's data
  write_file_atomic(path, flipped);
  expect_config_error([&] { load_npz(path); }, "bad CRC", "CRC");
  write_file_atomic(path, "not a zip at all");
  expect_config_error([&] { load_npz(path); }, "not a zip", path);
}

TEST(ImageGrid, TilesImagesRowMajorWithPaddingAndScale) {
  // Three 1x2x2 images with constant values -1, 0, 1 -> 0, 128 (127.5 rounded), 255.
  auto images = torch::stack(
      {torch::full({1, 2, 2}, -1.0), torch::full({1, 2, 2}, 0.0), torch::full({1, 2, 2}, 1.0)});
  auto grid = image_grid(images, 2, 1, 2);  // 2 columns, 1 px padding, 2x scale
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{1, 2 * 5 + 1, 2 * 5 + 1}));
  EXPECT_EQ(grid[0][1][1].item<int>(), 0);    // image 0, top-left
  EXPECT_EQ(grid[0][1][6].item<int>(), 128);  // image 1, second column
  EXPECT_EQ(grid[0][6][1].item<int>(), 255);  // image 2, second row
  EXPECT_EQ(grid[0][6][6].item<int>(), 0);    // empty slot
  EXPECT_EQ(grid[0][0][0].item<int>(), 0);    // padding
  EXPECT_EQ(grid.slice(1, 1, 5).slice(2, 6, 10).sum().item<int>(), 16 * 128);
}

// Two classes of 1x8x8 images: a bright top half or a bright bottom half, plus noise.
ImageSet two_class_images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto labels = torch::randint(2, {n}, gen);
  auto images = torch::full({n, 1, 8, 8}, -0.8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = labels[i].item<int64_t>() == 0 ? 0 : 4;
    images[i].slice(1, top, top + 4).fill_(0.8);
  }
  images = (images + 0.3 * torch::randn(images.sizes(), gen)).clamp(-1, 1);
  return ImageSet(images.view({n, 64}), labels, {1, 8, 8}, {"top", "outlier"}, false);
}

TEST(Classifier, LearnsTwoClassesDeterministicallyAndReloads) {
  const auto dir = fresh_test_dir();
  auto data = two_class_images(600, 0);
  ClassifierOptions options;
  options.steps = 150;
  options.batch_size = 32;
  options.width = 4;
  options.feature_dim = 16;
  const auto a = (dir / "a.safetensors").string();
  const auto b = (dir / "b.safetensors").string();
  const auto report = train_classifier(data, options, a);
  EXPECT_GT(report.accuracy, 0.95);
  EXPECT_EQ(report.n_holdout, 60);
  train_classifier(data, options, b);
  EXPECT_EQ(sha256_file(a), sha256_file(b)) << "same seed, same classifier";

  auto extractor = load_feature_extractor(a, {1, 8, 8}, torch::kCPU);
  EXPECT_EQ(extractor->kind(), "classifier");
  EXPECT_EQ(extractor->metric_name("fid"), "classifier_fid");
  EXPECT_EQ(extractor->outlier_class(), 1);
  EXPECT_EQ(extractor->sha256(), sha256_file(a));
  auto features = extractor->features(data.images());
  EXPECT_EQ(features.sizes(), (std::vector<int64_t>{600, 16}));
  EXPECT_EQ(features.scalar_type(), torch::kFloat64);
  auto predicted = extractor->class_probabilities(data.images()).argmax(1);
  EXPECT_GT(predicted.eq(data.labels()).to(torch::kFloat64).mean().item<double>(), 0.95);
  // Features of a batch do not depend on what else is in it (no batch statistics).
  auto alone = extractor->features(data.images().slice(0, 7, 8));
  EXPECT_LT((alone[0] - features[7]).abs().max().item<double>(), 1e-5);

  expect_config_error(
      [&] {
        load_feature_extractor(a, {1, 28, 28}, torch::kCPU);
      },
      "wrong image shape", "trained on images");
  expect_config_error(
      [&] {
        load_feature_extractor((dir / "none.pt").string(), {1, 8, 8}, torch::kCPU);
      },
      "missing extractor", "does not exist");
  ImageSet unlabelled(data.images(), {}, {1, 8, 8}, {}, false);
  expect_config_error([&] { train_classifier(unlabelled, options, b); }, "unlabelled", "labelled");
}

TEST(TorchScriptExtractor, FidEqualsPythonsFromTheSameModule) {
  const auto dir = fresh_test_dir();
  const auto module = (dir / "extractor.pt").string();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto a = torch::rand({300, 3 * 16 * 16}, gen) * 2 - 1;
  auto b = torch::rand({200, 3 * 16 * 16}, gen) - 1.0;  // darker images: a clear FID
  PythonOracle py;
  py.put("a", a);
  py.put("b", b);
  // A small scripted CNN made with Debian's python3-torch; inputs in [0, 255] ("byte").
  py.run(R"(import torch, scipy.linalg
torch.manual_seed(0)
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8 * 7 * 7, 24)
    def forward(self, x):
        return torch.tanh(self.fc(torch.relu(self.conv(x / 255.0)).flatten(1)))
net = torch.jit.script(Net().eval())
net.save(')" +
         module + R"(')
def feats(x):
    x = torch.from_numpy(x).float().view(-1, 3, 16, 16)
    with torch.no_grad():
        return net((x + 1) * 127.5).double().numpy()
fa, fb = feats(load('a')), feats(load('b'))
m1, m2 = fa.mean(0), fb.mean(0)
s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
covmean = scipy.linalg.sqrtm(s1 @ s2).real
save('fid', [((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)])
save('fa', fa)
)");
  TorchScriptInput input;
  input.range = "byte";
  auto extractor = load_feature_extractor(module, {3, 16, 16}, torch::kCPU, input);
  EXPECT_EQ(extractor->kind(), "torchscript");
  EXPECT_EQ(extractor->metric_name("fid"), "fid");
  auto fa = extractor->features(a);
  EXPECT_LT((fa - py.get("fa")).abs().max().item<double>(), 1e-6);
  const double fid = frechet_inception_distance(feature_statistics(fa),
                                                feature_statistics(extractor->features(b)));
  const double reference = py.get("fid")[0].item<double>();
  EXPECT_GT(reference, 0.01);
  EXPECT_LT(relative_error(fid, reference), 1e-6) << fid << " vs " << reference;

  write_file_atomic((dir / "broken.pt").string(), "garbage");
  expect_config_error(
      [&] {
        load_feature_extractor((dir / "broken.pt").string(), {3, 16, 16}, torch::kCPU);
      },
      "broken module", "broken.pt");
  input.range = "percent";
  expect_config_error(
      [&] {
        load_feature_extractor(module, {3, 16, 16}, torch::kCPU, input);
      },
      "bad input range", "percent");
}

TEST(ReferenceStats, RoundTripThroughNpzAndPytorchFidLayout) {
  const auto dir = fresh_test_dir();
  const auto path = (dir / "stats.npz").string();
  auto features = torch::randn({50, 4}, torch::kFloat64);
  ReferenceStats stats{feature_statistics(features), 50, std::string(64, 'c')};
  save_reference_stats(path, stats);
  auto back = load_reference_stats(path);
  EXPECT_TRUE(torch::equal(back.gaussian.mean, stats.gaussian.mean));
  EXPECT_TRUE(torch::equal(back.gaussian.cov, stats.gaussian.cov));
  EXPECT_EQ(back.n, 50);
  EXPECT_EQ(back.extractor_sha256, stats.extractor_sha256);
  EXPECT_NEAR(frechet_inception_distance(back.gaussian, stats.gaussian), 0.0, 1e-9);

  PythonOracle py;  // a pytorch-fid style file: just mu and sigma
  py.run("np.savez(D + '/s.npz', mu=np.zeros(3), sigma=np.eye(3))");
  auto plain = load_reference_stats(py.path_of("s.npz"));
  EXPECT_TRUE(plain.extractor_sha256.empty());
  EXPECT_EQ(plain.gaussian.cov.size(0), 3);
  py.run("np.savez(D + '/bad.npz', mu=np.zeros(3), sigma=np.eye(4))");
  expect_config_error([&] { load_reference_stats(py.path_of("bad.npz")); }, "shape mismatch",
                      "sigma");
}

}  // namespace
}  // namespace uotflow
