#!/usr/bin/env bash
# Checks the folders of server/ against the layers server/CMakeLists.txt
# declares: prints the graph of includes between folders and fails when it
# has a cycle, or when a folder includes another it does not link.
#   scripts/check-layers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
edges=$(for dir in server/*/; do
  folder=$(basename "$dir")
  grep -rhoE '#include "server/[a-z_]+/' "$dir" | sed -E 's|#include "server/||; s|/$||' | sort -u |
    while read -r used; do
      [ "$used" = "$folder" ] || echo "$folder $used"
    done
done)
echo "$edges" | sed 's/ / -> /'
if ! echo "$edges" | tsort >/dev/null 2>/tmp/vigil-tsort.$$; then
  echo "check-layers: the folders of server/ include each other in a circle:" >&2
  cat /tmp/vigil-tsort.$$ >&2
  rm -f /tmp/vigil-tsort.$$
  exit 1
fi
rm -f /tmp/vigil-tsort.$$
# Every edge must be a declared dependency: vigil_<folder> names vigil_<used>
# in its vigil_layer(...) block (or the executables' blocks, for the mains).
status=0
while read -r folder used; do
  [ -n "$folder" ] || continue
  block=$(awk -v f="vigil_layer($folder " 'index($0, f) == 1 {p = 1} p {print} p && /\)$/ {exit}' server/CMakeLists.txt)
  if [ -z "$block" ]; then
    continue  # a folder with only a main (none today)
  fi
  if ! grep -q "vigil_$used\b" <<<"$block"; then
    # A main in the folder (vigil_kb_main.cc) links through its executable.
    if ! grep -rlE "#include \"server/$used/" "server/$folder" | grep -qv '_main\.cc$'; then
      continue
    fi
    echo "check-layers: server/$folder includes server/$used but vigil_$folder does not link vigil_$used" >&2
    status=1
  fi
done <<<"$edges"
[ "$status" -eq 0 ] && echo "check-layers: no circle; every include between folders is declared"
exit "$status"
