#!/usr/bin/env bash
# The layers of docs/design.md, checked on the sources: each layer of libcoupling includes only the
# headers of the layers it may depend on, HDF5 only in log/, c10d only in dist/, and nothing of
# trainer/. Prints every include that crosses a layer the wrong way and fails.
# Usage: layer_includes.sh SOURCE_DIR
set -euo pipefail
cd "$1/libcoupling"
status=0
# layer: the coupling/ header folders it may include (besides its own and the top-level headers)
declare -A allowed=(
  [engine]=""
  [formats]=""
  [models]="engine formats"
  [log]="engine"
  [dist]="engine"
  [training]="engine formats models log dist"
)
for layer in "${!allowed[@]}"; do
  for folder in include/coupling/$layer src/$layer; do
    [[ -d $folder ]] || continue
    while IFS= read -r line; do
      file=${line%%:*}
      header=$(sed -E 's/.*#include [<"]([^>"]+)[>"].*/\1/' <<<"$line")
      case $header in
        trainer/*) ;;
        hdf5*|H5*) [[ $layer == log ]] && continue ;;
        torch/csrc/distributed/*) [[ $layer == dist ]] && continue ;;
        coupling/*/*)
          target=$(cut -d/ -f2 <<<"$header")
          [[ $target == "$layer" ]] && continue
          [[ " ${allowed[$layer]} " == *" $target "* ]] && continue ;;
        *) continue ;;
      esac
      echo "layer_includes: $file ($layer) includes $header" >&2
      status=1
    done < <(grep -rnE '^#include [<"]' "$folder" | sed -E 's/^([^:]+):[0-9]+:/\1:/')
  done
done
((status == 0)) && echo "layer_includes: every include follows the layers of docs/design.md"
exit "$status"
