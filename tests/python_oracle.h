// Independent references for tests: Debian's python3 with NumPy, SciPy and POT (installed by
// scripts/setup.sh). Tensors go to the script as .npy files and results come back the same way.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "uotflow/io/npy.h"

namespace uotflow::testing {

/// One scratch folder per oracle. The script sees:
///   D (the folder), load(name) -> float64 array, save(name, array), and numpy as np.
/// Usage:
///   PythonOracle py;
///   py.put("x", x);
///   py.run("import ot\nsave('w', ot.emd2([], [], ot.dist(load('x'), load('x'))))");
///   double w = py.get("w").item<double>();
class PythonOracle {
 public:
  static constexpr const char* kPython = "/usr/bin/python3";

  PythonOracle() {
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("uotflow_oracle_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~PythonOracle() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PythonOracle(const PythonOracle&) = delete;
  PythonOracle& operator=(const PythonOracle&) = delete;

  void put(const std::string& name, const torch::Tensor& t) const {
    save_npy(path(name), t.detach().cpu().to(torch::kFloat64).contiguous());
  }
  torch::Tensor get(const std::string& name) const {
    return load_npy(path(name)).to(torch::kFloat64);
  }

  /// Runs the script; throws std::runtime_error with the script's output when it fails.
  void run(const std::string& body) const {
    const std::string script = path_of("script.py");
    std::ofstream(script)
        << "import sys, numpy as np\n"
           "D = sys.argv[1]\n"
           "def load(n): return np.load(D + '/' + n + '.npy').astype(np.float64)\n"
           "def save(n, a): np.save(D + '/' + n + '.npy', np.asarray(a, dtype=np.float64))\n"
        << body << "\n";
    const std::string log = path_of("script.log");
    const std::string command =
        std::string(kPython) + " " + script + " " + dir_.string() + " > " + log + " 2>&1";
    if (std::system(command.c_str()) != 0) {
      std::ifstream in(log);
      std::stringstream out;
      out << in.rdbuf();
      throw std::runtime_error("python oracle failed:\n" + out.str());
    }
  }

  /// Path of `file` in the scratch folder (what the script calls D + '/' + file).
  std::string path_of(const std::string& file) const {
    return (dir_ / file).string();
  }

 private:
  std::string path(const std::string& name) const {
    return path_of(name + ".npy");
  }
  std::filesystem::path dir_;
};

}  // namespace uotflow::testing
