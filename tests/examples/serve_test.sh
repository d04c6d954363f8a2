#!/usr/bin/env bash
# Installs this build tree's production library into a prefix, builds examples/serve against
# the installed package in a fresh build tree, has ipex-tune export a recipe for a small traced
# model and serves it with the example. Run by ctest (tests/examples/CMakeLists.txt); every
# failure says which step failed and leaves the work folder for inspection.
set -euo pipefail

launcher=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) source_dir=$2 ;;
    --build) build_dir=$2 ;;
    --work) work=$2 ;;
    --cmake) cmake=$2 ;;
    --generator) generator=$2 ;;
    --cxx) cxx=$2 ;;
    --launcher=*) launcher=${1#--launcher=}; shift; continue ;;  # may be empty
    --tune) tune=$2 ;;
    --worker) worker=$2 ;;
    *) echo "serve_test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done

fail() { echo "FAIL: $*" >&2; exit 1; }
# Runs a command with its output in $work/NAME.log; on failure shows the log and stops.
step() {
  local name=$1; shift
  echo "== $name"
  if ! "$@" >"$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name: '$*' exited non-zero"
  fi
}

[[ -x $tune && -x $worker ]] || fail "build ipex-tune and ipex-tune-worker first"
# A fixed folder (emptied first) rather than a random one: the same paths every run let ccache
# reuse the example's objects.
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

step install "$cmake" --install "$build_dir" --prefix "$prefix"
[[ -n $(find "$prefix" -path '*/cmake/IpexTune/IpexTuneConfig.cmake') ]] ||
  fail "no IpexTuneConfig.cmake installed"
[[ -f $prefix/include/core/runtime.h && -f $prefix/include/recipes/recipe_yaml.h ]] ||
  fail "public headers missing under $prefix/include"
for internal in tuner db app workloads; do
  [[ ! -e $prefix/include/$internal ]] || fail "$internal/ headers installed"
done

configure=("$cmake" -S "$source_dir/examples/serve" -B "$work/serve-build" -G "$generator"
           -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx")
if [[ -n $launcher ]]; then configure+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"); fi
step configure "${configure[@]}"
step build "$cmake" --build "$work/serve-build" -j1
serve=$work/serve-build/serve
[[ -x $serve ]] || fail "the example built no executable"

# A recipe exported by ipex-tune for a user's traced model: a study of one trial besides stock.
# Workers cache fp32 reference outputs in the build tree, as the other CLI tests do.
export IPT_CACHE_DIR=$build_dir/test-cache
step model /usr/bin/python3 "$source_dir/tests/app/make_traced_model.py" "$work/small.pt"
step tune "$tune" --model "$work/small.pt" --input image:1x3x16x16:float32 --batch 2 \
  --headless --db "$work/study.db" --export "$work/recipe.yaml" \
  --max-trials 1 --finalists 0 --measure-time 0.3 --measure-share 0
[[ -f $work/recipe.yaml ]] || fail "ipex-tune exported no recipe"

expect() {  # expect LOG TEXT: the log has a line containing TEXT
  grep -qF -- "$2" "$work/$1.log" || { cat "$work/$1.log" >&2; fail "$1: no line with '$2'"; }
}
step serve "$serve" "$work/small.pt" "$work/recipe.yaml" --requests 7 \
  --save-optimized "$work/optimized.pt"
expect serve "output: [2, 4] Float"
expect serve "requests: 7, median latency:"
expect serve "first call:"
expect serve "stream 0: 1 thread(s) pinned to {"
[[ -f $work/optimized.pt ]] || fail "serve --save-optimized wrote no file"
step serve-optimized "$serve" --optimized "$work/optimized.pt" --requests 3
expect serve-optimized "optimize: 0 ms"
expect serve-optimized "output: [2, 4] Float"

# A recipe that does not exist: a non-zero exit and one message naming the file.
if "$serve" "$work/small.pt" "$work/missing.yaml" >"$work/bad.log" 2>&1; then
  fail "serve succeeded with a missing recipe"
fi
expect bad "serve: error:"
expect bad "missing.yaml"

rm -rf "$work"
echo "PASS"
