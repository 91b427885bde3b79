#!/usr/bin/env bash
# Fills .deps/ (git-ignored, in the repository root) with the header-only and source-only dependencies
# that a machine without Debian's -dev packages lacks (e.g. a GPU machine with only PyTorch from pip),
# copied from the Debian packages installed here by scripts/setup.sh:
#   .deps/include/{nlohmann,CLI,stb,boost}      headers (Boost: only the include closure of what we use)
#   .deps/share/cmake/{nlohmann_json,CLI11}     their (relocatable) CMake package configs
#   .deps/src/googletest                        GoogleTest + GoogleMock sources, without docs/tests
#   .deps/fashion-mnist/*.gz                    the Fashion-MNIST IDX files (dataset-fashion-mnist)
#   .deps/data/tabular                          data/tabular (scripts/fetch_tabular.sh), when there:
#                                               tests/test_tabular.cpp fails without it
# Configure with -DUOTFLOW_DEPS_DIR=$PWD/.deps (see scripts/device_check.sh, which runs on that machine).
#
# Usage: scripts/device_deps.sh [--fmnist=all|test|none]
#   all (default): the 4 files, about 30 MiB; test: only the t10k split (4.4 MiB); none: no data.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
fmnist=all
for arg in "$@"; do
  case "$arg" in
    --fmnist=all | --fmnist=test | --fmnist=none) fmnist="${arg#--fmnist=}" ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "device_deps: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

need() {  # need FILE PACKAGE: fail with a hint when a source file is missing
  [ -e "$1" ] || { echo "device_deps: $1 is missing (install the Debian package $2, or run make setup)" >&2; exit 1; }
}
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake nlohmann-json3-dev
need /usr/include/CLI/CLI.hpp libcli11-dev
need /usr/share/cmake/CLI11/CLI11Config.cmake libcli11-dev
need /usr/include/stb/stb_image_write.h libstb-dev
need /usr/include/boost/version.hpp libboost-dev
need /usr/src/googletest/CMakeLists.txt googletest
command -v python3 >/dev/null || { echo "device_deps: python3 is needed (Boost include closure)" >&2; exit 1; }

rm -rf "$deps"
mkdir -p "$deps/include/stb" "$deps/share/cmake" "$deps/src"

# nlohmann-json and CLI11: headers and CMake configs. The configs compute their prefix from their own
# location (four levels up: .deps), so they work from anywhere.
cp -a /usr/include/nlohmann "$deps/include/"
cp -a /usr/share/cmake/nlohmann_json "$deps/share/cmake/"
cp -a /usr/include/CLI "$deps/include/"
cp -a /usr/share/cmake/CLI11 "$deps/share/cmake/"

# stb: only the headers we use (CMake looks for stb/stb_image_write.h); plot text through stb_truetype
# with DejaVu Sans (fonts-dejavu-core), or stb_easy_font without the font.
cp -a /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_truetype.h \
  /usr/include/stb/stb_easy_font.h "$deps/include/stb/"
mkdir -p "$deps/share/fonts"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && cp -a /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf "$deps/share/fonts/"

# Boost: every <boost/...> header our sources include, plus everything those include, following each
# #include line whatever #if it sits under (so other compilers' branches are covered too), plus the
# whole boost/config folder (it picks its compiler/platform/stdlib headers through macros).
mapfile -t boost_roots < <(cd "$root" && grep -rhoE '^\s*#\s*include\s*<boost/[^>]+>' \
  src include cli tests bench 2>/dev/null | sed -E 's/.*<(boost\/[^>]+)>.*/\1/' | sort -u)
python3 - "$deps/include" "${boost_roots[@]}" boost/version.hpp boost/config.hpp <<'EOF'
import os, re, shutil, sys
src_root, dst_root, todo = "/usr/include", sys.argv[1], list(sys.argv[2:])
pattern = re.compile(r'^\s*#\s*include\s*[<"](boost/[^>"]+)[>"]', re.M)
seen = set()
while todo:
    header = os.path.normpath(todo.pop())
    if header in seen:
        continue
    path = os.path.join(src_root, header)
    if not os.path.isfile(path):
        continue  # e.g. a header for another platform that Debian does not ship
    seen.add(header)
    with open(path, errors="replace") as f:
        todo.extend(pattern.findall(f.read()))
for header in sorted(seen):
    os.makedirs(os.path.dirname(os.path.join(dst_root, header)), exist_ok=True)
    shutil.copy2(os.path.join(src_root, header), os.path.join(dst_root, header))
print(f"device_deps: {len(seen)} Boost headers")
EOF
cp -a /usr/include/boost/config "$deps/include/boost/"

# Check: with .deps/include first on the path, every Boost header the sources pull in resolves there.
if command -v g++ >/dev/null && [ ${#boost_roots[@]} -gt 0 ]; then
  probe="$(mktemp --suffix=.cpp)"
  printf '#include <%s>\n' "${boost_roots[@]}" >"$probe"
  if ! g++ -std=c++20 -M -I"$deps/include" "$probe" >"$probe.d"; then
    echo "device_deps: the copied Boost headers do not preprocess" >&2; exit 1
  fi
  if grep -q '/usr/include/boost/' "$probe.d"; then
    echo "device_deps: the Boost subset is incomplete; these resolve outside .deps:" >&2
    tr ' \\' '\n\n' <"$probe.d" | grep '/usr/include/boost/' >&2; exit 1
  fi
  rm -f "$probe" "$probe.d"
fi

# GoogleTest + GoogleMock sources (built with add_subdirectory when find_package(GTest) fails).
cp -a /usr/src/googletest "$deps/src/googletest"
rm -rf "$deps/src/googletest"/{googletest,googlemock}/{test,samples,docs}

# Fashion-MNIST (the image configs read data.params.path; scripts/device_check.sh points it here).
if [ "$fmnist" != none ]; then
  need /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz dataset-fashion-mnist
  mkdir -p "$deps/fashion-mnist"
  splits=(t10k)
  [ "$fmnist" = all ] && splits+=(train)
  for s in "${splits[@]}"; do
    cp -a /usr/share/datasets/fashion-mnist/"$s"-{images-idx3,labels-idx1}-ubyte.gz "$deps/fashion-mnist/"
  done
fi

# data/tabular (0.4 MiB; git-ignored, so it does not travel by itself): device_check.sh puts it back.
if [ -d "$root/data/tabular" ]; then
  mkdir -p "$deps/data"
  cp -a "$root/data/tabular" "$deps/data/tabular"
else
  echo "device_deps: no data/tabular (run scripts/fetch_tabular.sh): the real-data tabular tests will fail there" >&2
fi

{
  echo "Filled by scripts/device_deps.sh on $(date -u +%FT%TZ) from:"
  dpkg-query -W -f='  ${Package} ${Version}\n' nlohmann-json3-dev libcli11-dev libstb-dev libboost-dev \
    googletest dataset-fashion-mnist 2>/dev/null || true
} >"$deps/SOURCES.txt"
echo "device_deps: $(du -sh "$deps" | cut -f1) in $deps"
du -sh "$deps"/include/* "$deps"/src/* "$deps"/fashion-mnist 2>/dev/null | sed 's/^/  /'
