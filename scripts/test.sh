#!/usr/bin/env bash
# Runs every test: the default (optimized) build's suite, the same suite under ASan+UBSan,
# and the libFuzzer corpora replayed under the clang fuzz build.
set -euo pipefail
cd "$(dirname "$0")/.."
werror=$([[ -n ${CI:-} ]] && echo ON || echo OFF)
export PATH="$PWD/node_modules/.bin:$PATH"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# The number of tests a ctest log says passed.
passed_in() { sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$1" | tail -n 1; }

echo "== unit and integration tests (default preset)"
ctest --preset default | tee "$logs/default.log"

echo "== the same suite under ASan+UBSan"
cmake --preset asan -DKAISAR_WERROR="$werror" >/dev/null
cmake --build --preset asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan | tee "$logs/asan.log"

echo "== fuzz corpora replay (clang, libFuzzer)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target fuzz_all
scratch=$logs
fuzzers=0
for f in build/fuzz/tests/fuzz/fuzz_*; do
  name=$(basename "$f")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  echo "-- $name: replaying $(ls "$corpus" | wc -l) inputs from $corpus"
  "$f" -runs=0 "$corpus" >"$scratch/$name.log" 2>&1 || { cat "$scratch/$name.log"; exit 1; }
  # Then a short burst of new inputs; new finds go to scratch, never into the repo.
  mkdir -p "$scratch/$name"
  "$f" -max_total_time=15 -max_len=8192 -artifact_prefix="$scratch/" "$scratch/$name" "$corpus" \
    >"$scratch/$name.log" 2>&1 || { tail -n 40 "$scratch/$name.log"; echo "fuzzer $name found a crash"; exit 1; }
  fuzzers=$((fuzzers + 1))
done
total=$(( $(passed_in "$logs/default.log") + $(passed_in "$logs/asan.log") + fuzzers ))
echo "all test stages passed (default suite, ASan+UBSan suite, $fuzzers fuzz targets)"
echo "tests: $total passed, 0 failed"
