#!/usr/bin/env bash
# find_package(uotflow) from another project: installs the build (BUILD_DIR) into a folder of its
# own, configures and builds tests/package/ against that prefix alone, and runs the program.
# Usage: check_package.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
prefix="$build/package-test/prefix"
rm -rf "$build/package-test"
cmake --install "$build" --prefix "$prefix" > /dev/null
# LibTorch where the build found it (Debian's without a hint; a PyTorch wheel's on a GPU machine).
torch_dir=$(sed -n 's/^Torch_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")
cmake -S "$here" -B "$build/package-test/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" ${torch_dir:+"-DTorch_DIR=$torch_dir"} \
  > "$build/package-test/configure.log" || { cat "$build/package-test/configure.log"; exit 1; }
cmake --build "$build/package-test/build" > "$build/package-test/build.log" \
  || { tail -n 40 "$build/package-test/build.log"; exit 1; }
# The installed library, not the build's: the program runs from the prefix.
LD_LIBRARY_PATH="$prefix/lib" "$build/package-test/build/consumer"
# (ldd's output taken whole first: `ldd | grep -q` fails under pipefail when grep closes the pipe early.)
libs=$(ldd "$build/package-test/build/consumer")
grep -q "$prefix/lib/libuotflow" <<<"$libs" \
  || { echo "consumer does not use the installed libuotflow:"; echo "$libs"; exit 1; }
