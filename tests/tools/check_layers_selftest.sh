#!/usr/bin/env bash
# The layering check must fail on an upward include and on a sibling include, and pass on a
# downward one: run it on a small tree made here.
set -euo pipefail
check="$(cd "$(dirname "$0")" && pwd)/check_layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/ot" "$tmp/include/uotflow/methods" "$tmp/cli" "$tmp/python"
echo '#include "uotflow/core/config.h"' > "$tmp/src/ot/down.cpp"
echo '#include "uotflow/ot/phi.h"' > "$tmp/include/uotflow/methods/method.h"
bash "$check" "$tmp" > /dev/null || { echo "FAIL: a downward include was rejected"; exit 1; }
echo '#include "uotflow/methods/method.h"' > "$tmp/src/ot/up.cpp"
if bash "$check" "$tmp" > "$tmp/out"; then
  echo "FAIL: an upward include (ot -> methods) passed"; exit 1
fi
grep -q "src/ot/up.cpp: layer 'ot' includes from 'methods'" "$tmp/out" || { cat "$tmp/out"; exit 1; }
rm "$tmp/src/ot/up.cpp"
echo '#include "uotflow/nets/nets.h"' > "$tmp/src/ot/sibling.cpp"
if bash "$check" "$tmp" > /dev/null; then
  echo "FAIL: a sibling include (ot -> nets) passed"; exit 1
fi
rm "$tmp/src/ot/sibling.cpp"
# A method's name in the run loop fails; as the flow alias's default method it passes.
mkdir -p "$tmp/src/methods" "$tmp/src/run"
echo '  registry.add("mine", "a method", make);' > "$tmp/src/methods/mine.cpp"
echo '  request.default_method = "mine";' > "$tmp/cli/main.cpp"
bash "$check" "$tmp" > /dev/null || { echo "FAIL: a default method was rejected"; exit 1; }
echo '  if (method == "mine") {}' > "$tmp/src/run/loop.cpp"
if bash "$check" "$tmp" > "$tmp/out"; then
  echo "FAIL: a method name in src/run passed"; exit 1
fi
grep -q "names method 'mine'" "$tmp/out" || { cat "$tmp/out"; exit 1; }
echo "layering self-test: ok"
