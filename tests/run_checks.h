// Helpers shared by the tests that train runs: a fresh folder per test, final weights compared bit
// for bit, JSON Lines read back.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "uotflow/core/config.h"
#include "uotflow/io/files.h"
#include "uotflow/io/safetensors.h"

namespace uotflow::testing {

/// TempDir()/uotflow-<current test name>, emptied and created.
inline std::filesystem::path fresh_test_dir() {
  const auto dir =
      std::filesystem::path(::testing::TempDir()) /
      ("uotflow-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// Expects two safetensors files to hold the same tensors, bit for bit.
inline void expect_same_weights(const std::string& a, const std::string& b) {
  auto wa = load_safetensors(a);
  auto wb = load_safetensors(b);
  ASSERT_EQ(wa.size(), wb.size()) << a;
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << b << " lacks " << name;
    EXPECT_TRUE(torch::equal(t, wb.at(name))) << a << ": " << name;
  }
}

/// Expects the final/ weights of two runs (generator, EMA generator, potential) to be equal.
inline void expect_same_final_weights(const std::string& run_a, const std::string& run_b) {
  for (const auto& group : {"generator", "generator_ema", "potential"}) {
    expect_same_weights(run_a + "/final/" + group + ".safetensors",
                        run_b + "/final/" + group + ".safetensors");
  }
}

/// The rows of a JSON Lines file.
inline std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> rows;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) {
      rows.push_back(Json::parse(line));
    }
  }
  return rows;
}

}  // namespace uotflow::testing
