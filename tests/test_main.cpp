// The tests' main: GoogleTest's, run on the BLAS kernels the `uotflow` program runs on
// (uotflow/core/blas.h), so that the training tests check what a user's run does.
#include <gtest/gtest.h>

#include "uotflow/core/blas.h"

int main(int argc, char** argv) {
  uotflow::restart_with_better_blas_kernels(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
