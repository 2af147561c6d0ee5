#!/usr/bin/env bash
# Runs every test: the default (optimized) build's suite, the same suite under ASan+UBSan,
# and the libFuzzer corpora replayed under the clang fuzz build.
set -euo pipefail
cd "$(dirname "$0")/.."
werror=$([[ -n ${CI:-} ]] && echo ON || echo OFF)
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== unit and integration tests (default preset)"
ctest --preset default

echo "== the same suite under ASan+UBSan"
cmake --preset asan -DKAISAR_WERROR="$werror" >/dev/null
cmake --build --preset asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan

echo "== fuzz corpora replay (clang, libFuzzer)"
cmake --preset fuzz -DKAISAR_WERROR="$werror" >/dev/null
cmake --build --preset fuzz
for f in build/fuzz/tests/fuzz/fuzz_*; do
  name=$(basename "$f")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  echo "-- $name on $corpus"
  "$f" -runs=0 "$corpus" >/dev/null 2>&1 || { "$f" -runs=0 "$corpus"; exit 1; }
  # and a short burst of new inputs, bounded in time
  "$f" -max_total_time=10 -max_len=4096 "$corpus" -artifact_prefix=build/fuzz/ >/dev/null 2>&1 || { echo "fuzzer $name found a crash"; exit 1; }
done
echo "all test stages passed"
