#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (with .clang-format) makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done < <(git ls-files '*.cpp' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "format-check: these files need clang-format -i:"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "format-check: $(git ls-files '*.cpp' '*.h' | wc -l) files clean"
