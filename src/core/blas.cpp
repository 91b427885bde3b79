#include "uotflow/core/blas.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

namespace uotflow {

CpuFeatures cpu_features() {
  CpuFeatures cpu;
#if defined(__x86_64__) || defined(__i386__)
  // GCC's checks include the operating system's support for the wide registers (XGETBV).
  __builtin_cpu_init();
  cpu.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
#endif
  return cpu;
}

std::string blas_core_name() {
  // OpenBLAS's own query, looked up in the process: LibTorch reaches OpenBLAS through the
  // libblas.so.3 alternative, so uotflow does not link it, and another BLAS has no such symbol.
  using CoreName = char* (*)();
  auto* query = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = query != nullptr ? query() : nullptr;
  return name != nullptr ? std::string(name) : std::string();
}

std::string better_blas_core(const std::string& core_name, const CpuFeatures& cpu) {
  if (core_name != "Prescott") {
    return "";  // not OpenBLAS, or it knew this CPU
  }
  if (cpu.avx512) {
    return "SkylakeX";
  }
  return cpu.avx2_fma ? "Haswell" : "";
}

void restart_with_better_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) {
    return;
  }
  const auto core = better_blas_core(blas_core_name(), cpu_features());
  if (core.empty() || setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) {
    return;
  }
  execv("/proc/self/exe", argv);
  // Only reached when execv failed: go on with the generic kernels, and do not let child processes
  // believe the user chose them.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace uotflow
