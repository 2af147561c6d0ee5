#!/usr/bin/env bash
# Compiles every contract with solcjs into $1 (default build/contracts).
# Fails on any compiler error or warning.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-build/contracts}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
solc="${SOLCJS:-solcjs}"
if ! command -v "$solc" >/dev/null 2>&1; then
  solc="$here/../node_modules/.bin/solcjs"
fi
log="$out/solc.log"
cd "$here"
if ! "$solc" --bin --abi --optimize --optimize-runs 200 --base-path . -o "$out" \
    Operated.sol TokenTransfer.sol MerkleVerify.sol KaiToken.sol RewardPoints.sol \
    LeaseEscrow.sol EpochLog.sol RewardDistributor.sol ProviderRegistry.sol >"$log" 2>&1; then
  cat "$log" >&2
  echo "build.sh: compilation failed" >&2
  exit 1
fi
if grep -qiE 'warning|error' "$log"; then
  cat "$log" >&2
  echo "build.sh: compiler warnings are treated as errors" >&2
  exit 1
fi
for c in KaiToken RewardPoints LeaseEscrow EpochLog RewardDistributor ProviderRegistry; do
  f="$out/${c}_sol_${c}.bin"
  [[ -s "$f" ]] || { echo "build.sh: missing $f" >&2; exit 1; }
done
echo "contracts built in $out"
