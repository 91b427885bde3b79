#!/usr/bin/env bash
# Puts the tabular classification sets (Bayesian logistic regression) into data/tabular/: three ARFF
# files from Debian's weka package and sklearn's breast_cancer.csv from python3-sklearn. The packages
# are downloaded and unpacked in a temporary folder, never installed. Idempotent: does nothing when
# the files are already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/data/tabular"

# package -> the files to take from it (paths inside the .deb).
declare -A files=(
  [weka]="usr/share/doc/weka/examples/credit-g.arff usr/share/doc/weka/examples/diabetes.arff usr/share/doc/weka/examples/ionosphere.arff"
  [python3-sklearn]="usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
)

# True when every file of the package is already in $dest.
have_all() {
  local f
  for f in ${files[$1]}; do
    [ -s "$dest/$(basename "$f")" ] || return 1
  done
}

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
updated=0
# apt-get download into $tmp, with one `apt-get update` and a retry when the package lists are
# stale.
download() {
  (cd "$tmp" && apt-get download -qq "$1" >/dev/null 2>&1) && return 0
  if [ "$updated" = 0 ]; then
    echo "fetch_tabular: apt-get download $1 failed; running apt-get update and retrying"
    "${sudo_cmd[@]}" apt-get update -qq
    updated=1
    (cd "$tmp" && apt-get download -qq "$1" >/dev/null) && return 0
  fi
  echo "fetch_tabular: error: cannot download the Debian package '$1'" >&2
  return 1
}

tmp=""
cleanup() {
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

for package in "${!files[@]}"; do
  have_all "$package" && continue
  [ -n "$tmp" ] || tmp="$(mktemp -d)"
  echo "fetch_tabular: taking ${files[$package]} from the Debian package $package"
  download "$package"
  deb=("$tmp/${package}"_*.deb)
  mkdir -p "$tmp/$package" "$dest"
  dpkg-deb -x "${deb[0]}" "$tmp/$package"
  for f in ${files[$package]}; do
    if [ -f "$tmp/$package/$f" ]; then cp "$tmp/$package/$f" "$dest/"; fi
  done
done

# The check runs in every case, so that a package whose layout changed is reported here.
status=0
for package in "${!files[@]}"; do
  for f in ${files[$package]}; do
    if [ ! -s "$dest/$(basename "$f")" ]; then
      echo "fetch_tabular: error: $dest/$(basename "$f") is missing (expected /$f in the Debian package $package)" >&2
      status=1
    fi
  done
done
exit "$status"
