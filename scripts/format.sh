#!/usr/bin/env bash
# Formats every C++ file of the project with clang-format-14 and .clang-format, or with --check
# lists the files that differ from it and fails (CI). The style commit is in .git-blame-ignore-revs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format-14 > /dev/null; then
  echo "format: clang-format-14 not found: run scripts/setup.sh" >&2
  exit 2
fi
mapfile -t files < <(git ls-files -- '*.cpp' '*.h' ':!:fuzz/corpus/**' ':!:fuzz/regressions/**')
if [[ ${1:-} == --check ]]; then
  clang-format-14 --dry-run --Werror "${files[@]}" 2>&1 | grep -o '^[^:]*:[0-9]*:[0-9]*: error' | cut -d: -f1 | sort -u |
    sed 's/^/format: not formatted: /' >&2 || true
  clang-format-14 --dry-run --Werror "${files[@]}" > /dev/null 2>&1 || {
    echo "format: run scripts/format.sh to format them" >&2
    exit 1
  }
  echo "format: ${#files[@]} files follow .clang-format"
else
  clang-format-14 -i "${files[@]}"
fi
