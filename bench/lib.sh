# Shared by the compare_*.sh scripts (source it after setting BUILD and ROUNDS): one thread for every
# library, Debian's python3 (the first python3 on PATH may lack POT / torch), a temporary folder, and
# the interleaved rounds. The caller defines run_cpp ROUND and run_py ROUND.
#
# KEEP_FREED=1 (the default) runs both sides with glibc told to keep freed memory
# (MALLOC_MMAP_THRESHOLD_ 32 MiB, MALLOC_TRIM_THRESHOLD_ 1 GiB: what `uotflow` sets for itself with
# mallopt). Otherwise every buffer above 128 KiB is a fresh mmap whose pages fault in on first touch,
# and on this machine kind that can cost more than the arithmetic done on it. KEEP_FREED=0: glibc's
# defaults.

PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
if [ "${KEEP_FREED:-1}" = 1 ]; then
  export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
fi
# Both sides on the same BLAS kernels: those `uotflow` runs on (where OpenBLAS falls back to its
# generic kernels, it starts again on the ones the CPU supports; docs/getting-started.md), unless
# OPENBLAS_CORETYPE is set already.
if [[ -z ${OPENBLAS_CORETYPE:-} && -x ${BUILD:-}/uotflow ]]; then
  BLAS_CORE=$("$BUILD/uotflow" info | sed -n 's/^BLAS: OpenBLAS, \(.*\) kernels$/\1/p')
  if [[ -n $BLAS_CORE ]]; then
    export OPENBLAS_CORETYPE=$BLAS_CORE
  fi
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# require_binary NAME: sets BIN=$BUILD/NAME, or exits 2 saying how to build it.
require_binary() {
  BIN=$BUILD/$1
  if [[ ! -x $BIN ]]; then
    echo "$(basename "$0" .sh): $BIN not found; build it with: ninja -C $BUILD $1" >&2
    exit 2
  fi
}

# ROUNDS rounds of run_cpp and run_py, the order alternating so neither side always runs first.
interleave_rounds() {
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then run_cpp "$r"; run_py "$r"; else run_py "$r"; run_cpp "$r"; fi
    echo "  round $((r + 1))/$ROUNDS done" >&2
  done
}
