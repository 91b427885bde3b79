#!/usr/bin/env bash
# The one-way layering of the library: a file may include uotflow headers of its own folder or of a
# lower layer, never of a higher one or of another folder of the same layer; and no file of run/ or
# cli/ names a method. Prints each violation and exits 1 when there is one. Usage: check_layers.sh [ROOT] (default: the repository root).
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}

# Layers, lowest first; folders on one line are siblings and may not include each other.
layers=(
  "core"
  "io"
  "ot nets optim data"
  "metrics flow"
  "features"
  "methods"
  "run"
  "cli python"
)
declare -A rank
for i in "${!layers[@]}"; do
  for folder in ${layers[$i]}; do
    rank[$folder]=$i
  done
done

# The layer folder of a file: src/F/..., include/uotflow/F/..., cli/..., python/...
folder_of() {
  case "$1" in
    cli/*) echo cli ;;
    python/*) echo python ;;
    src/*) echo "$1" | cut -d/ -f2 ;;
    include/uotflow/*) echo "$1" | cut -d/ -f3 ;;
  esac
}

status=0
cd "$root"
while IFS= read -r file; do
  from=$(folder_of "$file")
  if [ -z "${rank[$from]+x}" ]; then
    echo "$file: folder '$from' has no layer (add it to tests/tools/check_layers.sh)"
    status=1
    continue
  fi
  while IFS= read -r line; do
    to=$(echo "$line" | sed -E 's#.*"uotflow/([a-z_]+)/.*#\1#')
    [ "$to" = "$from" ] && continue
    if [ -z "${rank[$to]+x}" ]; then
      echo "$file: includes from unknown folder '$to': $line"
      status=1
    elif [ "${rank[$to]}" -ge "${rank[$from]}" ]; then
      echo "$file: layer '$from' includes from '$to', which is not below it: $line"
      status=1
    fi
  done < <(grep -E '^#include "uotflow/[a-z_]+/' "$file" || true)
done < <(find src include/uotflow cli python -type f \( -name '*.h' -o -name '*.cpp' \) | sort)
# The run loop and the command line know no method by name: what differs between methods comes
# through the Method interface and the registry entry. The names registered in src/methods/ may
# appear in src/run/ and cli/ only as a default method (`default_method`, the flow alias).
while IFS= read -r method; do
  while IFS= read -r hit; do
    echo "$hit: names method '$method' (take it from the Method interface or its registry entry)"
    status=1
  done < <(grep -rnE "\"$method\"" src/run cli 2>/dev/null | grep -v "default_method" || true)
done < <(grep -rhozP 'registry\.add\(\s*"[a-z_0-9]+"' src/methods 2>/dev/null | tr '\0\n' '\n ' |
           sed -E 's/.*"([a-z_0-9]+)"/\1/' | sort -u)
[ $status -eq 0 ] && echo "layering: ok"
exit $status
