#!/usr/bin/env bash
# The one check to run ON a GPU machine that has PyTorch 2.x from pip (LibTorch with CUDA), nvcc and
# CMake, but no Debian -dev packages and no network. Run from the repository root, with .deps/ filled
# beforehand on a Debian machine by scripts/device_deps.sh and carried along:
#
#   bash scripts/device_check.sh
#
# Steps: env (versions, GPU), configure (Release, LibTorch of the pip wheel, .deps), build (all
# cores), cudagraph (bench/cuda/bench_cuda_graph and bench/uotm_step_cuda.py: the toy UOTM step eager and
# replayed from a CUDA graph, C++ and PyTorch), tests (ctest -LE slow, or the gtest binary without *_Slow*), toy (UOTM on 8 Gaussians, 300
# steps on cuda), image (UOTM on Fashion-MNIST, 50 steps on cuda), pack. A failing step does not stop
# the next ones; each is timed and a summary comes last. Everything goes to stdout/stderr and, when
# $OUT is set, to $OUT/device_check.log (+ $OUT/summary.txt, $OUT/ctest_LastTest.log, $OUT/runs.tgz: the run
# folders without checkpoints, weights and .npy samples). Exit status: 0 when every step passed, else 1.
#
# Environment knobs:
#   BUILD_DIR=build-cuda        build folder (kept between runs: a rerun rebuilds incrementally)
#   DEVICE_CHECK_CLEAN=1        remove BUILD_DIR first
#   DEVICE_CHECK_BUDGET_S=560   wall-clock budget of the whole script; every step's timeout is cut to
#                               what is left of it (minus 15 s for packing and the summary)
#   DEVICE_CHECK_STEPS="env configure build cudagraph tests toy image pack"   the steps to run
#   DEVICE_CHECK_TEST_JOBS=$(nproc)   ctest -j
#   DEVICE_CHECK_CTEST_ARGS="..."     extra ctest arguments (e.g. -R Sinkhorn)
#   DEVICE_CHECK_TEST_FILTER=...      run the gtest binary directly with this --gtest_filter instead of ctest
#   TORCH_CUDA_ARCH_LIST=9.0    (Hopper) passed to LibTorch's CMake config, which otherwise probes the GPU
#   DEVICE_CHECK_CMAKE_ARGS="..."     extra configure arguments
#   DEVICE_CHECK_DEVICE=cuda    --device of the two training runs
#   DEVICE_CHECK_IMAGE_ARGS="..."     extra arguments of the image run (e.g. --set eval.at_start=false)
# shellcheck disable=SC2317  # the step functions are called through step()
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT="$PWD"
BUILD="${BUILD_DIR:-build-cuda}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
DEPS="$ROOT/.deps"
STEPS="${DEVICE_CHECK_STEPS:-env configure build cudagraph tests toy image pack}"
BUDGET="${DEVICE_CHECK_BUDGET_S:-560}"
JOBS="$(nproc 2>/dev/null || echo 8)"
DEVICE="${DEVICE_CHECK_DEVICE:-cuda}"
START=$SECONDS

# All output to the terminal and to a log under $OUT (or the build folder).
if [ -n "${OUT:-}" ]; then LOGDIR="$OUT"; else LOGDIR="$BUILD/device_check"; fi
mkdir -p "$LOGDIR"
LOG="$LOGDIR/device_check.log"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
RUNS="$BUILD/device_runs"   # run folders (deep trees); packed into $OUT/runs.tgz at the end

declare -a SUMMARY=()
FAILED=0
now() { date +%H:%M:%S; }
left() { echo $((BUDGET - (SECONDS - START) - 15)); }

# step NAME LIMIT_S COMMAND...: runs it (an executable under `timeout`; a shell function with
# STEP_LIMIT set, which it passes to `timeout` itself),
# prints a marker with the command line before and the status and seconds after, records the summary.
step() {
  local name="$1" limit="$2"
  shift 2
  local remaining
  remaining="$(left)"
  if [ "$remaining" -lt 5 ]; then
    skip "$name" "no time left of the ${BUDGET}s budget"
    return 1
  fi
  [ "$limit" -gt "$remaining" ] && limit="$remaining"
  echo
  echo "=== [$(now)] STEP $name (limit ${limit}s)"
  echo "+ $*"
  local t0=$SECONDS rc
  if [ "$(type -t "$1")" = function ]; then
    STEP_LIMIT="$limit" "$@"
    rc=$?
  else
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
  fi
  local dt=$((SECONDS - t0)) status=PASS
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    status="TIMEOUT(${limit}s)"
  elif [ $rc -ne 0 ]; then
    status="FAIL(rc=$rc)"
  fi
  [ $rc -ne 0 ] && FAILED=1
  echo "=== [$(now)] END $name: $status in ${dt}s"
  SUMMARY+=("$(printf '%-10s %-16s %6ss' "$name" "$status" "$dt")")
  return $rc
}
skip() {
  echo
  echo "=== [$(now)] STEP $1: SKIPPED ($2)"
  SUMMARY+=("$(printf '%-10s %-16s %7s  %s' "$1" "SKIPPED" "-" "$2")")
}
wants() { [[ " $STEPS " == *" $1 "* ]]; }

# --- tools: python3 with torch, cmake, ninja, nvcc -------------------------------------------------
PY="$(command -v python3 || true)"
TORCH_PREFIX=""
[ -n "$PY" ] && TORCH_PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"
CMAKE="$(command -v cmake || true)"
CTEST="$(command -v ctest || true)"
NINJA="$(command -v ninja || true)"
if [ -z "$NINJA" ] && [ -n "$PY" ]; then  # the pip package ninja
  NINJA="$("$PY" -c 'import ninja, os; print(os.path.join(ninja.BIN_DIR, "ninja"))' 2>/dev/null || true)"
  [ -x "$NINJA" ] || NINJA=""
fi
NVCC="${CUDACXX:-}"
for c in "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc || true)" /usr/local/cuda/bin/nvcc \
  /usr/local/cuda-*/bin/nvcc; do
  [ -z "$NVCC" ] && [ -n "$c" ] && [ -x "$c" ] && NVCC="$c"
done
if [ -z "$NVCC" ] && [ -n "$PY" ]; then  # nvcc of the pip CUDA packages (nvidia-cuda-nvcc)
  NVCC="$("$PY" - <<'EOF' 2>/dev/null
import glob, os, site
for d in site.getsitepackages():
    for p in sorted(glob.glob(os.path.join(d, "nvidia", "*", "bin", "nvcc"))):
        print(p); raise SystemExit
EOF
)"
fi
CUDA_ROOT=""
if [ -n "$NVCC" ]; then
  CUDA_ROOT="$(cd "$(dirname "$(readlink -f "$NVCC")")/.." && pwd)"
  PATH="$(dirname "$NVCC"):$PATH"
  export CUDACXX="$NVCC" CUDA_HOME="${CUDA_HOME:-$CUDA_ROOT}" PATH
fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"

env_info() {
  echo "date: $(date -u +%FT%TZ)  host: $(hostname)  cores: $JOBS  root: $ROOT"
  uname -a
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4
  echo "python3: $PY"
  [ -n "$PY" ] && "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda, "| available", torch.cuda.is_available(), "| cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' 2>&1
  echo "torch cmake prefix: ${TORCH_PREFIX:-NOT FOUND}"
  echo "cmake: ${CMAKE:-NOT FOUND} $([ -n "$CMAKE" ] && "$CMAKE" --version | head -1)"
  echo "ninja: ${NINJA:-not found (Unix Makefiles)} $([ -n "$NINJA" ] && "$NINJA" --version)"
  echo "nvcc: ${NVCC:-NOT FOUND} $([ -n "$NVCC" ] && "$NVCC" --version | tail -2 | head -1)  (CUDA root $CUDA_ROOT)"
  echo "c++: $(command -v c++ || command -v g++ || echo NOT FOUND) $(c++ --version 2>/dev/null | head -1)"
  echo "zlib.h: $(ls /usr/include/zlib.h 2>/dev/null || echo "missing: the image run then reads un-gzipped copies")"
  for py in /usr/bin/python3 "$PY"; do
    [ -x "$py" ] || { echo "$py: missing"; continue; }
    echo "$py ($("$py" -c 'import sys; print(sys.version.split()[0])' 2>&1)): $("$py" -c '
import importlib.util
print(" ".join(m + ("=ok" if importlib.util.find_spec(m) else "=MISSING") for m in ("numpy", "scipy", "ot", "torch")))' 2>&1)"
  done
  echo ".deps: $(du -sh "$DEPS" 2>/dev/null | cut -f1) $(ls "$DEPS" 2>/dev/null | tr '\n' ' ')"
  [ -n "$TORCH_PREFIX" ] && [ -n "$CMAKE" ] && [ -n "$NVCC" ] && [ -d "$DEPS/include" ]
}

configure() {
  if [ "${DEVICE_CHECK_CLEAN:-0}" = 1 ]; then rm -rf "$BUILD"; fi
  local args=(-S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX"
    "-DUOTFLOW_DEPS_DIR=$DEPS"
    -DUOTFLOW_WITH_LEMON=OFF -DUOTFLOW_BUILD_BENCH=OFF -DUOTFLOW_BUILD_CUDA_BENCH=ON
    -DUOTFLOW_BUILD_TESTS=ON -DUOTFLOW_BUILD_CLI=ON -DUOTFLOW_BUILD_PYTHON=OFF)
  [ -n "$NINJA" ] && [ ! -f "$BUILD/Makefile" ] && args+=(-G Ninja "-DCMAKE_MAKE_PROGRAM=$NINJA")
  [ -n "$NVCC" ] && args+=("-DCMAKE_CUDA_COMPILER=$NVCC" "-DCUDAToolkit_ROOT=$CUDA_ROOT" "-DCUDA_TOOLKIT_ROOT_DIR=$CUDA_ROOT")
  # shellcheck disable=SC2206
  args+=(${DEVICE_CHECK_CMAKE_ARGS:-})
  echo "+ $CMAKE ${args[*]}"
  timeout "$STEP_LIMIT" "$CMAKE" "${args[@]}"
}

build() {
  timeout "$STEP_LIMIT" "$CMAKE" --build "$BUILD" -j "$JOBS"
  local rc=$?
  # gtest_discover_tests lists the tests after linking by running the binary; when that fails the
  # build fails although the binaries exist, so say which of them were made.
  ls -la "$BUILD/uotflow" "$BUILD/uotflow_tests" 2>&1
  return "$rc"
}

# The Python reference oracles run /usr/bin/python3 (hard-coded in tests/python_oracle.h and
# tests/test_io.cpp). Where that interpreter lacks numpy but is the same Python version as the one
# with torch (a venv made from it), its site-packages are put on PYTHONPATH for the tests. POT ("ot")
# is not on the GPU image: the oracle tests that import it fail (they do not skip).
oracle_pythonpath() {
  [ -x /usr/bin/python3 ] && [ -n "$PY" ] || return 0
  /usr/bin/python3 -c 'import numpy' 2>/dev/null && return 0
  local v1 v2 site
  v1="$(/usr/bin/python3 -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)"
  v2="$("$PY" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)"
  [ "$v1" = "$v2" ] || return 0
  site="$("$PY" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))' 2>/dev/null)"
  [ -n "$site" ] && echo "$site"
}

tests() {
  local bin="$BUILD/uotflow_tests" site rc
  # tests/test_tabular.cpp reads data/tabular/ (git-ignored); device_deps.sh copies it into .deps.
  if [ ! -d data/tabular ] && [ -d "$DEPS/data/tabular" ]; then
    mkdir -p data && cp -r "$DEPS/data/tabular" data/tabular
  fi
  site="$(oracle_pythonpath)"
  if [ -n "$site" ]; then
    echo "tests: /usr/bin/python3 gets PYTHONPATH=$site (numpy/scipy/torch of $PY)"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if [ -z "${DEVICE_CHECK_TEST_FILTER:-}" ] && [ -n "$CTEST" ] && [ -f "$BUILD/CTestTestfile.cmake" ] &&
    (cd "$BUILD" && "$CTEST" -N -LE slow | grep 'Total Tests: [1-9]' >/dev/null); then
    (cd "$BUILD" && timeout --kill-after=10 "$STEP_LIMIT" "$CTEST" -LE slow --output-on-failure \
      -j "${DEVICE_CHECK_TEST_JOBS:-$JOBS}" --timeout 300 ${DEVICE_CHECK_CTEST_ARGS:-})
    rc=$?
    [ -f "$BUILD/Testing/Temporary/LastTest.log" ] && cp "$BUILD/Testing/Temporary/LastTest.log" "$LOGDIR/ctest_LastTest.log"
  elif [ -x "$bin" ]; then
    echo "tests: running $bin directly"
    OMP_NUM_THREADS=1 timeout --kill-after=10 "$STEP_LIMIT" "$bin" \
      "--gtest_filter=${DEVICE_CHECK_TEST_FILTER:--*_Slow*}" --gtest_brief=1
    rc=$?
  else
    echo "tests: $bin was not built"
    return 1
  fi
  # Which failures come from the missing Python modules (no numpy/scipy/POT for /usr/bin/python3).
  if [ "$rc" -ne 0 ] && [ -f "$LOGDIR/ctest_LastTest.log" ]; then
    echo "tests: failures mentioning a missing Python module:"
    grep -o "No module named '[a-z_]*'\|python3 with numpy is not available" "$LOGDIR/ctest_LastTest.log" | sort | uniq -c
  fi
  return "$rc"
}

# Fashion-MNIST for the image run: .deps/fashion-mnist (gzipped; un-gzipped into the build folder
# when this build has no zlib). The train split when its files are there, else the test split.
fmnist_args() {
  local dir="$DEPS/fashion-mnist" split=train
  [ -f "$dir/train-images-idx3-ubyte.gz" ] || split="test"
  if ! grep -q UOTFLOW_HAVE_ZLIB "$BUILD/compile_commands.json" 2>/dev/null; then
    local raw="$BUILD/fashion-mnist-raw"
    mkdir -p "$raw"
    for f in "$dir"/*.gz; do
      [ -f "$raw/$(basename "$f" .gz)" ] || gzip -dc "$f" >"$raw/$(basename "$f" .gz)"
    done
    dir="$raw"
  fi
  echo "--set data.params.path=$dir --set data.params.split=$split"
}

pack() {
  [ -n "${OUT:-}" ] || { echo "pack: OUT is not set; the runs stay in $RUNS"; return 0; }
  [ -d "$RUNS" ] || { echo "pack: no runs"; return 0; }
  tar -czf "$OUT/runs.tgz" -C "$(dirname "$RUNS")" --exclude=checkpoints --exclude='*.safetensors' \
    --exclude='*.npy' --exclude='*.pt' \
    "$(basename "$RUNS")" && ls -la "$OUT/runs.tgz"
}

# --- the steps ---------------------------------------------------------------------------------------
echo "=== device_check: steps '$STEPS', budget ${BUDGET}s, log $LOG"
wants env && step env 60 env_info
if wants configure; then
  if [ -z "$CMAKE" ] || [ -z "$TORCH_PREFIX" ]; then
    skip configure "no cmake or no torch.utils.cmake_prefix_path"
  else
    step configure 300 configure
  fi
fi
wants build && { if [ -f "$BUILD/CMakeCache.txt" ]; then step build 600 build; else skip build "not configured"; fi; }
# C++ and PyTorch, one after the other, each with its own rounds (the GPU is not shared between them).
cuda_graph_bench() {
  local bin="$BUILD/bench_cuda_graph"
  [ -x "$bin" ] || { echo "cudagraph: $bin was not built"; return 1; }
  local rc=0
  timeout "$STEP_LIMIT" "$bin" --steps=300 --warmup=20 --rounds=5 || rc=1
  (cd "$ROOT/bench" && PYTHONUNBUFFERED=1 timeout "$STEP_LIMIT" "$PY" uotm_step_cuda.py --steps 300 --warmup 20 --rounds 5) || rc=1
  return $rc
}
wants cudagraph && step cudagraph 240 cuda_graph_bench
wants tests && step tests 600 tests

UOTFLOW="$BUILD/uotflow"
if wants toy; then
  if [ -x "$UOTFLOW" ]; then
    step toy 180 "$UOTFLOW" train --config configs/toy/uotm_8gaussians.json --steps 300 --device "$DEVICE" --out "$RUNS"
  else
    skip toy "$UOTFLOW was not built"
  fi
fi
if wants image; then
  if [ -x "$UOTFLOW" ]; then
    # shellcheck disable=SC2046
    step image 300 "$UOTFLOW" train --config configs/image/uotm_fashion_mnist.json --steps 50 --device "$DEVICE" \
      --out "$RUNS" $(fmnist_args) ${DEVICE_CHECK_IMAGE_ARGS:-}
  else
    skip image "$UOTFLOW was not built"
  fi
fi
wants pack && step pack 60 pack

echo
echo "=== device_check summary ($((SECONDS - START))s of the ${BUDGET}s budget)"
printf '%s\n' "${SUMMARY[@]}" | tee "$LOGDIR/summary.txt"
# Let tee finish writing the log before the machine collects $OUT.
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit $FAILED
