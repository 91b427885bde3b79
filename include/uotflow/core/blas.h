// The BLAS kernels LibTorch's CPU matrix products run on.
//
// OpenBLAS picks its kernels for the CPU when it loads. An OpenBLAS older than the CPU does not
// know it and falls back to its generic "Prescott" kernels: Debian 12's 0.3.21 does so on Intel
// family 6 model 207, where training the toy models runs 1.6 to 2.5x slower than with the kernels
// the CPU supports (docs/benchmarks.md#blas-kernels). OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so
// the way to better kernels is to set it and start the program again.
#pragma once

#include <string>

namespace uotflow {

/// The CPU features that decide which OpenBLAS kernels can run.
struct CpuFeatures {
  bool avx2_fma = false;  ///< AVX2 and FMA3: OpenBLAS's Haswell kernels
  bool avx512 = false;    ///< AVX-512 F, CD, BW, DQ and VL: its SkylakeX kernels
};

/// This CPU's features (the operating system's support included).
CpuFeatures cpu_features();

/// The name of the kernels OpenBLAS picked ("Haswell", "Prescott", ...), or "" when the BLAS in
/// this process is not OpenBLAS.
std::string blas_core_name();

/// The OPENBLAS_CORETYPE to run with instead of `core_name`, or "" to keep it: "SkylakeX" or
/// "Haswell" when OpenBLAS fell back to its generic kernels on a CPU that has better ones.
///
///   better_blas_core("Prescott", {.avx2_fma = true, .avx512 = true}) == "SkylakeX"
std::string better_blas_core(const std::string& core_name, const CpuFeatures& cpu);

/// Starts this program again (same arguments, same process id) with OPENBLAS_CORETYPE set to
/// better_blas_core(blas_core_name(), cpu_features()) when that is not "". Returns when there is
/// nothing to change, when OPENBLAS_CORETYPE is already set (the user's choice, and how the
/// started-again program knows it is), or when starting again fails. Call it first in main(),
/// before any thread exists.
void restart_with_better_blas_kernels(char** argv);

}  // namespace uotflow
