// The BLAS kernels: OpenBLAS's generic fallback is replaced by the kernels the CPU supports, in the
// `uotflow` program and in this test program, unless OPENBLAS_CORETYPE says otherwise.
#include "uotflow/core/blas.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "cli_runner.h"

using namespace uotflow;
using uotflow::testing::run_shell;

namespace {

// The "BLAS: ..." line of `uotflow info` run with the environment prefix `env`.
std::string info_blas_line(const std::string& env) {
  const auto result = run_shell(env + " " + std::string(UOTFLOW_BINARY_DIR) + "/uotflow info 2>&1");
  EXPECT_EQ(result.code, 0) << result.output;
  const auto start = result.output.find("BLAS: ");
  return start == std::string::npos
             ? result.output
             : result.output.substr(start, result.output.find('\n', start) - start);
}

}  // namespace

TEST(Blas, BetterKernelsOnlyWhereOpenBlasFellBackToItsGenericOnes) {
  const CpuFeatures avx512{/*avx2_fma=*/true, /*avx512=*/true};
  const CpuFeatures avx2{/*avx2_fma=*/true, /*avx512=*/false};
  const CpuFeatures neither{};
  EXPECT_EQ(better_blas_core("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(better_blas_core("Prescott", avx2), "Haswell");
  EXPECT_EQ(better_blas_core("Prescott", neither), "");  // a CPU as old as the kernels
  EXPECT_EQ(better_blas_core("Haswell", avx512), "");    // OpenBLAS knew the CPU
  EXPECT_EQ(better_blas_core("Cooperlake", avx512), "");
  EXPECT_EQ(better_blas_core("", avx512), "");  // not OpenBLAS
}

TEST(Blas, ProgramsRunOnTheBetterKernelsUnlessOpenblasCoretypeIsSet) {
  const auto chosen = info_blas_line("OPENBLAS_CORETYPE=Prescott");
  if (chosen == "BLAS: not OpenBLAS") {
    GTEST_SKIP() << "LibTorch's BLAS here is not OpenBLAS";
  }
  EXPECT_EQ(chosen, "BLAS: OpenBLAS, Prescott kernels");  // the user's choice stands
  if (!cpu_features().avx2_fma) {
    GTEST_SKIP() << "this CPU has no kernels better than the generic ones";
  }
  EXPECT_NE(info_blas_line("env -u OPENBLAS_CORETYPE"), "BLAS: OpenBLAS, Prescott kernels");
  // This test program too, unless it was started with the generic kernels chosen.
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  if (env == nullptr || std::string(env) != "Prescott") {
    EXPECT_NE(blas_core_name(), "Prescott");
  }
}
