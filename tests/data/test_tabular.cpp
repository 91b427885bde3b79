// Tests of the tabular classification data: the ARFF and sklearn-CSV readers on small fixtures,
// their errors, the seeded standardised split, and the real sets (checked against SciPy).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "python_oracle.h"
#include "uotflow/core/error.h"
#include "uotflow/data/tabular.h"
#include "uotflow_build_info.h"

namespace uotflow {
namespace {

using testing::expect_config_error;

const std::string kRealDir = std::string(UOTFLOW_SOURCE_DIR) + "/data/tabular";

// A per-test file in GoogleTest's temp dir, so that tests run in parallel do not collide.
std::string write_table_file(const std::string& suffix, const std::string& contents) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string path =
      ::testing::TempDir() + "uotflow_" + info->test_suite_name() + "_" + info->name() + suffix;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

torch::Tensor doubles(std::vector<double> values, int64_t rows) {
  return torch::tensor(values, torch::kDouble).reshape({rows, -1});
}

torch::Tensor longs(std::vector<int64_t> values) {
  return torch::tensor(values, torch::kLong);
}

// Nominal attributes (quoted values, a comma inside quotes), a quoted name, comments, CRLF.
const std::string kArff =
    "% a comment before the header\n"
    "@RELATION toy\n"
    "\n"
    "@attribute 'the size' numeric   % a trailing comment\n"
    "@attribute colour {red, 'dark blue', \"x,y\"}\n"
    "@Attribute n INTEGER\n"
    "@attribute class {no, yes}\n"
    "@data\n"
    "% a comment between rows\n"
    "1.5, red, 3, yes\n"
    "-2,'dark blue',4,no\r\n"
    "  +0.25 , \"x,y\" , 5e0 , 'yes'  % comment\n";

TEST(TabularArff, ReadsNominalQuotedAndNumericAttributes) {
  const auto data = read_arff(write_table_file(".arff", kArff));
  EXPECT_TRUE(torch::equal(data.features, doubles({1.5, 1, 0, 0, 3,  //
                                                   -2, 0, 1, 0, 4,   //
                                                   0.25, 0, 0, 1, 5},
                                                  3)))
      << data.features;
  EXPECT_TRUE(torch::equal(data.labels, longs({1, 0, 1}))) << data.labels;
  EXPECT_EQ(data.feature_names, (std::vector<std::string>{"the size", "colour=red",
                                                          "colour=dark blue", "colour=x,y", "n"}));
  EXPECT_EQ(data.positive_class, "yes");  // the second declared value
}

TEST(TabularArff, LabelAndPositiveClassAreChosenByName) {
  const auto path = write_table_file(".arff", kArff);
  const auto by_colour = read_arff(path, "colour", "red");
  EXPECT_TRUE(torch::equal(by_colour.labels, longs({1, 0, 0}))) << by_colour.labels;
  EXPECT_EQ(by_colour.feature_names,
            (std::vector<std::string>{"the size", "n", "class=no", "class=yes"}));
  EXPECT_TRUE(torch::equal(by_colour.features, doubles({1.5, 3, 0, 1,  //
                                                        -2, 4, 1, 0,   //
                                                        0.25, 5, 0, 1},
                                                       3)));
  EXPECT_TRUE(torch::equal(read_arff(path, "colour").labels, longs({0, 1, 0})));  // 'dark blue'
  const auto negative = read_arff(path, "", "no");
  EXPECT_EQ(negative.positive_class, "no");
  EXPECT_TRUE(torch::equal(negative.labels, longs({0, 1, 0})));
}

// An ARFF with the given data rows (line 6 onwards) under a fixed header.
std::string arff_with_rows(const std::string& rows) {
  return write_table_file(".arff",
                          "@relation r\n@attribute a numeric\n@attribute b {u, v}\n"
                          "@attribute class {no, yes}\n@data\n" +
                              rows);
}

// The start of the message for a problem at `line` of `path` (0: the file as a whole).
std::string at_line(const std::string& path, int line) {
  return "data file '" + path + "'" + (line > 0 ? ", line " + std::to_string(line) : "") + ": ";
}

TEST(TabularArff, MalformedRowsNameFileLineAndProblem) {
  struct Case {
    std::string rows;
    int line;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"1,u,no\n2,v\n", 7, "2 values where the header declares 3 attributes"},
      {"1,u,no,4\n", 6, "4 values where the header declares 3 attributes"},
      {"1,u,no\n2,w,yes\n", 7, "unknown value 'w' for attribute 'b' (declared: u, v)"},
      {"1,u,maybe\n", 6, "unknown value 'maybe' for attribute 'class'"},
      {"abc,u,no\n", 6, "cannot parse 'abc' as a finite number (attribute 'a')"},
      {"nan,u,no\n", 6, "cannot parse 'nan'"},
      {"?,u,no\n", 6, "missing value '?' for attribute 'a'"},
      {"1,'u,no\n", 6, "unterminated quote"},
      {"1,'u' v,no\n", 6, "expected ',' after the quoted value 'u'"},
      {"{0 1, 2 yes}\n", 6, "sparse rows"},
      {"% only a comment\n", 6, "the file holds no data rows"},
  };
  for (const auto& c : cases) {
    const auto path = arff_with_rows(c.rows);
    expect_config_error([&] { read_arff(path); }, c.rows, at_line(path, c.line) + c.problem);
  }
}

TEST(TabularArff, MalformedHeadersAndArgumentsAreConfigErrors) {
  const auto no_data = write_table_file(".arff", "@relation r\n@attribute a numeric\n% end\n");
  expect_config_error([&] { read_arff(no_data); }, "no @data",
                      at_line(no_data, 3) + "the file ends without a @data section");
  const auto text = write_table_file(".arff", "@relation r\n@attribute s string\n@data\n");
  expect_config_error([&] { read_arff(text); }, "string attribute",
                      at_line(text, 2) + "attribute 's' has the unsupported type 'string'");
  const auto unclosed = write_table_file(".arff", "@relation r\n@attribute c {a, b\n@data\n");
  expect_config_error([&] { read_arff(unclosed); }, "unclosed nominal list", "lack a closing '}'");
  const auto stray = write_table_file(".arff", "@relation r\nhello\n");
  expect_config_error([&] { read_arff(stray); }, "stray line",
                      at_line(stray, 2) + "expected @relation, @attribute or @data");

  const auto path = arff_with_rows("1,u,no\n");
  expect_config_error([&] { read_arff(path, "nope"); }, "unknown label",
                      "has no attribute 'nope' (attributes: a, b, class)");
  expect_config_error([&] { read_arff(path, "", "maybe"); }, "unknown positive class",
                      "has no value 'maybe' (declared: no, yes)");
  expect_config_error([&] { read_arff(path, "a"); }, "numeric label", "must be nominal");
  expect_config_error([&] { read_arff(path + ".absent"); }, "missing file",
                      "cannot read data file '" + path + ".absent'");
}

TEST(TabularCsv, ReadsSklearnLayout) {
  const auto data =
      read_sklearn_csv(write_table_file(".csv", "3,2,neg,pos\n1,2,0\n3.5,-4,1\n5,6e-1,1\n"));
  EXPECT_TRUE(torch::equal(data.features, doubles({1, 2, 3.5, -4, 5, 0.6}, 3))) << data.features;
  EXPECT_TRUE(torch::equal(data.labels, longs({0, 1, 1})));
  EXPECT_EQ(data.feature_names, (std::vector<std::string>{"feature_0", "feature_1"}));
  EXPECT_EQ(data.positive_class, "pos");
}

TEST(TabularCsv, MalformedFilesNameFileLineAndProblem) {
  struct Case {
    std::string contents;
    int line;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"2,2,neg,pos\n1,2,0\n1,2\n", 3,
       "2 values where the header announces 2 features and a class"},
      {"2,2,neg,pos\n1,2,0\n1,x,1\n", 3, "cannot parse 'x' as a finite number (feature 1)"},
      {"2,2,neg,pos\n1,2,0\n1,2,2\n", 3, "the class must be 0 or 1, got '2'"},
      {"3,2,neg,pos\n1,2,0\n1,2,1\n", 3, "the header announces 3 rows but the file holds 2"},
      {"3,2,a,b,c\n", 1, "expected a first line 'n_samples,n_features,class_name0,class_name1'"},
      {"3,2.5,a,b\n", 1, "n_features must be a positive whole number, got '2.5'"},
      {"", 0, "the file is empty"},
  };
  for (const auto& c : cases) {
    const auto path = write_table_file(".csv", c.contents);
    expect_config_error([&] { read_sklearn_csv(path); }, c.contents,
                        at_line(path, c.line) + c.problem);
  }
}

// 50 rows: an id column (0..49, to recover which rows went where), a skewed column, a constant one.
ClassificationData synthetic_table() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto ids = torch::arange(50, torch::kDouble);
  const auto skewed = torch::randn({50}, gen, torch::kDouble).exp() * 3.0 + 7.0;
  const auto constant = torch::full({50}, 0.1, torch::kDouble);
  return {torch::stack({ids, skewed, constant}, 1),
          torch::arange(50, torch::kLong) % 2,
          {"id", "skewed", "constant"},
          "1"};
}

// The original row ids of the split's train and test rows, read back from the id column (the
// standardisation maps it affinely and increasingly).
std::pair<torch::Tensor, torch::Tensor> row_ids(const ClassificationSplit& split, int64_t rows) {
  const auto all = torch::cat({split.x_train.select(1, 0), split.x_test.select(1, 0)});
  const auto to_id = [&](const torch::Tensor& x) {
    return ((x - all.min()) / (all.max() - all.min()) * (rows - 1)).round().to(torch::kLong);
  };
  return {to_id(split.x_train.select(1, 0)), to_id(split.x_test.select(1, 0))};
}

TEST(TabularSplit, SameSeedSameSplitOtherSeedOtherSplit) {
  const auto data = synthetic_table();
  const auto a = split_and_standardise(data, 0.2, 7);
  const auto b = split_and_standardise(data, 0.2, 7);
  const auto c = split_and_standardise(data, 0.2, 8);
  EXPECT_EQ(a.x_train.sizes(), (c10::IntArrayRef{40, 3}));
  EXPECT_EQ(a.x_test.sizes(), (c10::IntArrayRef{10, 3}));
  EXPECT_EQ(a.y_train.sizes(), (c10::IntArrayRef{40}));
  EXPECT_EQ(a.y_test.dtype(), torch::kLong);
  EXPECT_TRUE(torch::equal(a.x_train, b.x_train) && torch::equal(a.x_test, b.x_test));
  EXPECT_TRUE(torch::equal(a.y_train, b.y_train) && torch::equal(a.y_test, b.y_test));
  EXPECT_FALSE(torch::equal(row_ids(a, 50).second, row_ids(c, 50).second));
  // 0.25 * 50 = 12.5 rounds to 13; test_fraction 0 keeps every row for training.
  EXPECT_EQ(split_and_standardise(data, 0.25, 0).x_test.size(0), 13);
  EXPECT_EQ(split_and_standardise(data, 0.0, 0).x_train.size(0), 50);
  for (double bad : {-0.1, 1.0, 0.995}) {
    expect_config_error([&] { split_and_standardise(data, bad, 0); }, std::to_string(bad),
                        "test_fraction must be in [0, 1)");
  }
}

TEST(TabularSplit, StandardisesWithTrainStatisticsOnly) {
  const auto data = synthetic_table();
  const auto split = split_and_standardise(data, 0.3, 3);
  const auto [train_ids, test_ids] = row_ids(split, 50);
  // The rows are a partition of the table, and labels travel with their rows.
  EXPECT_TRUE(torch::equal(std::get<0>(torch::cat({train_ids, test_ids}).sort()),
                           torch::arange(50, torch::kLong)));
  EXPECT_TRUE(torch::equal(split.y_train, data.labels.index({train_ids})));
  EXPECT_TRUE(torch::equal(split.y_test, data.labels.index({test_ids})));

  const auto train = split.x_train.slice(1, 0, 2);
  EXPECT_TRUE(torch::allclose(train.mean(0), torch::zeros({2}, torch::kDouble), 0.0, 1e-12));
  EXPECT_TRUE(torch::allclose(train.std(0, /*unbiased=*/false), torch::ones({2}, torch::kDouble),
                              0.0, 1e-12));
  // The constant column is centred, not divided.
  EXPECT_TRUE(
      torch::allclose(split.x_train.select(1, 2), torch::zeros({35}, torch::kDouble), 0.0, 1e-12));
  // Test rows use the train mean and std, recomputed here from the raw rows.
  const auto raw_train = data.features.index({train_ids}).slice(1, 0, 2);
  const auto mean = raw_train.mean(0);
  const auto std = raw_train.std(0, /*unbiased=*/false);
  const auto expected = (data.features.index({test_ids}).slice(1, 0, 2) - mean) / std;
  EXPECT_TRUE(torch::allclose(split.x_test.slice(1, 0, 2), expected, 1e-12, 1e-12));
}

// The real sets, fetched by `make setup`. Their absence is a failure, not a skip: set-up installs
// them.
::testing::AssertionResult real_sets_present() {
  for (const char* file :
       {"credit-g.arff", "diabetes.arff", "ionosphere.arff", "breast_cancer.csv"}) {
    if (!std::filesystem::is_regular_file(kRealDir + "/" + file)) {
      return ::testing::AssertionFailure()
             << kRealDir << "/" << file
             << " is missing: run `make setup` (scripts/fetch_tabular.sh)";
    }
  }
  return ::testing::AssertionSuccess();
}

int64_t positives(const ClassificationData& data) {
  return data.labels.sum().item<int64_t>();
}

TEST(TabularSets, RealSetsHaveTheirKnownSizes) {
  ASSERT_TRUE(real_sets_present());
  EXPECT_EQ(classification_names(),
            (std::vector<std::string>{"german", "diabetes", "ionosphere", "breast_cancer"}));
  for (const auto& name : classification_names()) {
    const auto data = load_classification(name, kRealDir);
    EXPECT_EQ(data.features.dtype(), torch::kDouble) << name;
    EXPECT_EQ(data.labels.dtype(), torch::kLong) << name;
    EXPECT_EQ(static_cast<int64_t>(data.feature_names.size()), data.features.size(1)) << name;
    EXPECT_TRUE(torch::isfinite(data.features).all().item<bool>()) << name;
  }
  // German credit: 7 numeric attributes and 13 nominal ones with 56 declared values in all; two
  // declared values never occur (purpose=vacation, personal_status=female single), so 2 of the 63
  // columns are all zero.
  const auto german = load_classification("german", kRealDir);
  EXPECT_EQ(german.features.sizes(), (c10::IntArrayRef{1000, 63}));
  EXPECT_EQ(positives(german), 700);
  EXPECT_EQ(german.positive_class, "good");
  EXPECT_EQ(german.feature_names.front(), "checking_status=<0");
  EXPECT_EQ(german.feature_names.back(), "foreign_worker=no");
  EXPECT_EQ((german.features.abs().sum(0) > 0).sum().item<int64_t>(), 61);
  // A one-hot block (checking_status: 4 values) holds exactly one 1 per row.
  EXPECT_TRUE(
      torch::equal(german.features.slice(1, 0, 4).sum(1), torch::ones({1000}, torch::kDouble)));

  const auto diabetes = load_classification("diabetes", kRealDir);
  EXPECT_EQ(diabetes.features.sizes(), (c10::IntArrayRef{768, 8}));
  EXPECT_EQ(positives(diabetes), 268);
  const auto ionosphere = load_classification("ionosphere", kRealDir);
  EXPECT_EQ(ionosphere.features.sizes(), (c10::IntArrayRef{351, 34}));
  EXPECT_EQ(positives(ionosphere), 225);
  const auto breast_cancer = load_classification("breast_cancer", kRealDir);
  EXPECT_EQ(breast_cancer.features.sizes(), (c10::IntArrayRef{569, 30}));
  EXPECT_EQ(positives(breast_cancer), 357);
  EXPECT_EQ(breast_cancer.positive_class, "benign");
}

TEST(TabularSets, UnknownNameAndMissingFileAreConfigErrors) {
  expect_config_error([] { load_classification("iris", kRealDir); }, "unknown name",
                      "unknown classification set 'iris' (known: german, diabetes, ionosphere, "
                      "breast_cancer)");
  const std::string empty_dir = ::testing::TempDir() + "uotflow_tabular_empty_dir";
  std::filesystem::create_directories(empty_dir);
  expect_config_error([&] { load_classification("german", empty_dir); }, "missing file",
                      "run `make setup` (scripts/fetch_tabular.sh)");
}

// SciPy's ARFF reader as an independent parse of diabetes (numeric) and german (one-hot over the
// declared nominal values, in declaration order).
TEST(TabularSets, DiabetesAndGermanMatchScipyLoadarff) {
  ASSERT_TRUE(real_sets_present());
  testing::PythonOracle py;
  const std::string root = "root = '" + kRealDir + "/'\n";
  py.run(root +
         "from scipy.io import arff\n"
         "def table(file, positive):\n"
         "    d, meta = arff.loadarff(root + file)\n"
         "    names = meta.names()\n"
         "    columns = []\n"
         "    for n in names[:-1]:\n"
         "        kind, values = meta[n]\n"
         "        if kind == 'nominal':\n"
         "            columns += [d[n] == v.encode() for v in values]\n"
         "        else:\n"
         "            columns.append(d[n])\n"
         "    return np.column_stack(columns), d[names[-1]] == positive.encode()\n"
         "for name, file, positive in [('diabetes', 'diabetes.arff', 'tested_positive'),\n"
         "                             ('german', 'credit-g.arff', 'good')]:\n"
         "    x, y = table(file, positive)\n"
         "    save(name + '_x', x)\n"
         "    save(name + '_y', y)\n");
  for (const std::string name : {"diabetes", "german"}) {
    const auto data = load_classification(name, kRealDir);
    EXPECT_TRUE(torch::equal(data.features, py.get(name + "_x"))) << name;
    EXPECT_TRUE(torch::equal(data.labels, py.get(name + "_y").to(torch::kLong))) << name;
  }
}

}  // namespace
}  // namespace uotflow
