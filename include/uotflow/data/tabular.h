// Tabular classification data (ARFF and sklearn CSV files) for Bayesian logistic regression:
// reading, one-hot encoding, a seeded train/test split and train-only standardisation.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace uotflow {

/// A labelled table. Nominal attributes are one-hot encoded over their declared values (a value
/// that never occurs still gets its, all-zero, column); numeric ones are kept as read.
///
///   auto data = load_classification("diabetes", "data/tabular");
///   data.features.sizes();  // [768, 8]
struct ClassificationData {
  torch::Tensor features;                  // [N, P] float64, CPU
  torch::Tensor labels;                    // [N] int64 in {0, 1}, CPU
  std::vector<std::string> feature_names;  // P names; "checking_status=<0" for one-hot columns
  std::string positive_class;              // the class value that maps to label 1
};

/// Reads an ARFF file: @relation, @attribute NAME numeric|real|integer|{v1, v2, ...}, @data, then
/// comma-separated rows; '%' starts a comment, names and values may be quoted ('a b' or "a b").
/// `label` names the class attribute ("" = the last one), which must be nominal; `positive` is the
/// class value that maps to 1 ("" = the second declared value), all others map to 0. Missing
/// values ('?'), sparse rows and string/date attributes are not supported. Any malformed input
/// raises a ConfigError naming the path and line.
ClassificationData read_arff(const std::string& path, const std::string& label = "",
                             const std::string& positive = "");

/// Reads sklearn's bundled CSV layout (breast_cancer.csv): a first line
/// "n_samples,n_features,class_name0,class_name1", then n_samples rows of n_features numbers and an
/// integer class 0 or 1. Features are named "feature_0", ...; the positive class is class_name1.
/// Malformed input raises a ConfigError naming the path and line.
ClassificationData read_sklearn_csv(const std::string& path);

/// A train/test split with features standardised by the train statistics.
struct ClassificationSplit {
  torch::Tensor x_train;  // [N_train, P] float64
  torch::Tensor y_train;  // [N_train] int64
  torch::Tensor x_test;   // [N_test, P] float64
  torch::Tensor y_test;   // [N_test] int64
};

/// Splits rows by a permutation drawn from a CPU generator seeded with `seed` (same seed, same
/// split): round(test_fraction * N) rows go to test, test_fraction in [0, 1) and at least one
/// train row. Every feature is centred by its train mean and divided by its train (population)
/// standard deviation; columns constant on the train rows are only centred.
///
///   auto split = split_and_standardise(data, 0.2, 0);
///   split.x_train.mean(0);  // ~0
ClassificationSplit split_and_standardise(const ClassificationData& data, double test_fraction,
                                          uint64_t seed);

/// Loads a named set from `dir`: "german" (credit-g.arff, positive "good"), "diabetes"
/// (diabetes.arff, positive "tested_positive"), "ionosphere" (ionosphere.arff, positive "g"),
/// "breast_cancer" (breast_cancer.csv, positive "benign"). An unknown name is a ConfigError listing
/// the known ones; a missing file is a ConfigError saying to run `make setup`
/// (scripts/fetch_tabular.sh).
ClassificationData load_classification(const std::string& name, const std::string& dir);

/// The names load_classification accepts.
std::vector<std::string> classification_names();

}  // namespace uotflow
