#!/usr/bin/env bash
# End-to-end tests of the Kaisar contracts on a throwaway anvil chain.
# Usage: test.sh [WORKDIR]   (needs solcjs, anvil and cast on PATH, or in ../node_modules/.bin)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../node_modules/.bin:$PATH"
work="${1:-$here/../build/contracts-test}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
out="$work/contracts"

passed=0
failed=0
ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }

"$here/build.sh" "$out" >/dev/null

# --- anvil on a free port -------------------------------------------------------------
anvil_log="$work/anvil.log"
anvil --port 0 >"$anvil_log" 2>&1 &
anvil_pid=$!
cleanup() { kill "$anvil_pid" 2>/dev/null || true; wait "$anvil_pid" 2>/dev/null || true; }
trap cleanup EXIT
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/.*Listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$anvil_log" | head -n1)"
  [[ -n "$port" ]] && break
  kill -0 "$anvil_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -n "$port" ]] || { cat "$anvil_log"; echo "anvil did not start"; exit 1; }
export ETH_RPC_URL="http://127.0.0.1:$port"
for _ in $(seq 1 50); do cast chain-id >/dev/null 2>&1 && break; sleep 0.1; done

OP_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
RENTER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
PROV_KEY=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a  # anvil key (2)
OP=$(cast wallet address --private-key "$OP_KEY")
RENTER=$(cast wallet address --private-key "$RENTER_KEY")
PROV=$(cast wallet address --private-key "$PROV_KEY")
NODE_KEY=0x$(printf 'kaisar-test-node' | sha256sum | cut -c1-64)
NODE=$(cast wallet address --private-key "$NODE_KEY")
NODE2=0x00000000000000000000000000000000000b0b01

# send KEY TO SIG ARGS... -> prints tx hash; fails if the call would revert
send() {
  local key=$1; shift
  local tx
  tx=$(cast send --async --private-key "$key" "$@" 2>/dev/null) || return 1
  local status
  status=$(cast receipt "$tx" status 2>/dev/null) || return 1
  [[ "$status" == true || "$status" == 1* || "$status" == 0x1 ]] || return 1
  echo "$tx"
}
gas() { cast receipt "$1" gasUsed; }
deploy() { # deploy NAME [CTOR_SIG ARGS...]
  local name=$1; shift
  local code; code=0x$(cat "$out/${name}_sol_${name}.bin")
  if [[ $# -gt 0 ]]; then
    local args; args=$(cast abi-encode "$@"); code="${code}${args#0x}"
  fi
  local tx; tx=$(send "$OP_KEY" --create "$code") || { echo "deploy $name failed" >&2; return 1; }
  cast receipt "$tx" contractAddress
}
num() { cast call "$@" | sed 's/ .*//'; }
# check NAME ACTUAL EXPECTED
check() { if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1 (got '$2', want '$3')"; fi; }
# must_revert NAME KEY ARGS... : the transaction must not go through
must_revert() {
  local name=$1; shift
  if send "$@" >/dev/null 2>&1; then fail "$name (did not revert)"; else ok "$name reverts"; fi
}
must_pass() { # must_pass NAME KEY ARGS... ; sets LAST_TX
  local name=$1; shift
  if LAST_TX=$(send "$@"); then ok "$name"; else LAST_TX=""; fail "$name"; fi
}

# --- deploy ---------------------------------------------------------------------------
TOKEN=$(deploy KaiToken)
POINTS=$(deploy RewardPoints)
ESCROW=$(deploy LeaseEscrow "constructor(address,address)" "$TOKEN" "$POINTS")
EPOCHS=$(deploy EpochLog)
DIST=$(deploy RewardDistributor "constructor(address)" "$TOKEN")
REG=$(deploy ProviderRegistry)
check "token name" "$(cast call "$TOKEN" 'name()(string)')" '"Kaisar Token"'
check "token symbol" "$(cast call "$TOKEN" 'symbol()(string)')" '"KAI"'
check "token decimals" "$(cast call "$TOKEN" 'decimals()(uint8)')" "18"
must_pass "escrow made points minter" "$OP_KEY" "$POINTS" 'setMinter(address,bool)' "$ESCROW" true
must_pass "escrow made points spender" "$OP_KEY" "$POINTS" 'setSpender(address,bool)' "$ESCROW" true

# --- token ----------------------------------------------------------------------------
must_pass "owner mints to renter" "$OP_KEY" "$TOKEN" 'mint(address,uint256)' "$RENTER" 1000000
check "renter balance after mint" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 1000000
must_revert "non-owner mint" "$RENTER_KEY" "$TOKEN" 'mint(address,uint256)' "$RENTER" 1

# --- escrow ---------------------------------------------------------------------------
L1=$(cast keccak "lease-1")
L2=$(cast keccak "lease-2")
must_pass "renter approves escrow" "$RENTER_KEY" "$TOKEN" 'approve(address,uint256)' "$ESCROW" 1000000
must_pass "deposit" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256)' "$L1" 10000
gas_deposit=$(gas "$LAST_TX")
must_revert "second deposit to the same lease" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256)' "$L1" 1
must_pass "topUp by renter" "$RENTER_KEY" "$ESCROW" 'topUp(bytes32,uint256)' "$L1" 2000
must_revert "topUp by someone else" "$PROV_KEY" "$ESCROW" 'topUp(bytes32,uint256)' "$L1" 1
check "escrow holds deposit+topUp" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 12000
check "renter paid deposit+topUp" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 988000
must_revert "settle by non-operator" "$RENTER_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L1" "$PROV" 7000 5000 0
must_revert "settle more than deposited" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L1" "$PROV" 7000 5001 0
must_revert "settle provider share above deposit" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L1" "$PROV" 12001 0 0
# remainder rule: 7000 to provider, refund 4000, remaining 1000 also back to renter
must_pass "settle" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L1" "$PROV" 7000 4000 25
gas_settle=$(gas "$LAST_TX")
check "provider got its share" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$PROV")" 7000
check "renter got refund + remainder" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 993000
check "escrow emptied" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 0
check "renter credited points" "$(num "$POINTS" 'balanceOf(address)(uint256)' "$RENTER")" 25
must_revert "second settle" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L1" "$PROV" 0 0 0
must_revert "deposit into a settled lease" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256)' "$L1" 1
must_revert "settle unknown lease" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L2" "$PROV" 0 0 0
# second and third lease: every account already exists (steady state)
L3=$(cast keccak "lease-3")
must_pass "deposit lease 2 (escrow empty before)" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256)' "$L2" 5000
gas_deposit2=$(gas "$LAST_TX")
must_pass "deposit lease 3 (escrow holding lease 2)" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256)' "$L3" 3000
gas_deposit3=$(gas "$LAST_TX")
must_pass "renter uses points on lease 2" "$RENTER_KEY" "$ESCROW" 'usePoints(bytes32,uint256)' "$L2" 10
check "points spent" "$(num "$POINTS" 'balanceOf(address)(uint256)' "$RENTER")" 15
must_revert "using more points than held" "$RENTER_KEY" "$ESCROW" 'usePoints(bytes32,uint256)' "$L2" 16
must_revert "points are not spendable directly" "$RENTER_KEY" "$POINTS" 'spend(address,uint256)' "$RENTER" 1
must_revert "points mint by stranger" "$RENTER_KEY" "$POINTS" 'mint(address,uint256)' "$RENTER" 1
must_pass "operator mints points" "$OP_KEY" "$POINTS" 'mint(address,uint256)' "$RENTER" 5
must_pass "settle lease 3 (split)" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L3" "$PROV" 1000 2000 1
gas_settle3=$(gas "$LAST_TX")
must_pass "settle lease 2 (all to provider)" "$OP_KEY" "$ESCROW" 'settle(bytes32,address,uint256,uint256,uint256)' "$L2" "$PROV" 5000 0 3
gas_settle2=$(gas "$LAST_TX")
check "provider balance after leases 2, 3" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$PROV")" 13000
check "renter balance after leases 2, 3" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 987000
check "renter points after leases 2, 3" "$(num "$POINTS" 'balanceOf(address)(uint256)' "$RENTER")" 24
check "escrow emptied again" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 0
first_total=$((gas_deposit + gas_settle))
empty_total=$((gas_deposit2 + gas_settle2))
steady_total=$((gas_deposit3 + gas_settle3))
# The very first lease also pays for creating the provider's token balance and the
# renter's points balance (one-time 20,000-gas storage writes each); it is reported only.
if (( steady_total < 150000 )); then ok "deposit+settle gas $steady_total < 150000 (steady state)"; else fail "deposit+settle gas $steady_total >= 150000 (steady state)"; fi
if (( empty_total < 150000 )); then ok "deposit+settle gas $empty_total < 150000 (into an empty escrow)"; else fail "deposit+settle gas $empty_total >= 150000 (into an empty escrow)"; fi

# --- epoch log ------------------------------------------------------------------------
R0=$(cast keccak "epoch-0")
R1=$(cast keccak "epoch-1")
must_revert "postRoot skipping epoch 0" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 1 "$R1" 3
must_pass "postRoot epoch 0" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 0 "$R0" 3
must_revert "postRoot epoch 0 again" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 0 "$R1" 3
must_revert "postRoot by non-operator" "$RENTER_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 1 "$R1" 3
must_pass "postRoot epoch 1 (3 leaves)" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 1 "$R1" 3
gas_post_small=$(gas "$LAST_TX")
must_pass "postRoot epoch 2 (10^12 leaves)" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 2 "$R0" 1000000000000
gas_post=$(gas "$LAST_TX")
check "nextEpoch" "$(num "$EPOCHS" 'nextEpoch()(uint64)')" 3
check "epoch 0 root kept" "$(cast call "$EPOCHS" 'epochOf(uint64)(bytes32,uint64,uint64,bool)' 0 | head -n1)" "$R0"
# both posts write the same slots; the only difference is calldata bytes of the count
if (( gas_post - gas_post_small < 500 && gas_post_small - gas_post < 500 )); then
  ok "postRoot gas independent of leaf count ($gas_post_small vs $gas_post)"
else
  fail "postRoot gas depends on leaf count ($gas_post_small vs $gas_post)"
fi

# --- reward distributor ---------------------------------------------------------------
leaf() { cast keccak "0x00${1#0x}$(printf '%064x' "$2")"; }
node() { # sorted pair
  local a=${1,,} b=${2,,}
  if [[ "$a" < "$b" ]]; then cast keccak "0x01${a#0x}${b#0x}"; else cast keccak "0x01${b#0x}${a#0x}"; fi
}
A=$PROV; B=$RENTER; C=$OP
LA=$(leaf "$A" 300); LB=$(leaf "$B" 200); LC=$(leaf "$C" 100)
check "leafHash matches the off-chain encoding" "$(cast call "$DIST" 'leafHash(address,uint256)(bytes32)' "$A" 300)" "$LA"
NAB=$(node "$LA" "$LB")
ROOT=$(node "$NAB" "$LC")   # odd level: LC carried up unchanged
must_pass "owner funds the distributor" "$OP_KEY" "$TOKEN" 'mint(address,uint256)' "$OP" 600
must_pass "approve distributor" "$OP_KEY" "$TOKEN" 'approve(address,uint256)' "$DIST" 600
must_pass "fund distributor" "$OP_KEY" "$DIST" 'fund(uint256)' 600
must_revert "setRoot by non-operator" "$RENTER_KEY" "$DIST" 'setRoot(uint64,bytes32,uint256)' 0 "$ROOT" 600
must_pass "setRoot epoch 0" "$OP_KEY" "$DIST" 'setRoot(uint64,bytes32,uint256)' 0 "$ROOT" 600
must_revert "setRoot epoch 0 again" "$OP_KEY" "$DIST" 'setRoot(uint64,bytes32,uint256)' 0 "$R0" 600
prov_before=$(num "$TOKEN" 'balanceOf(address)(uint256)' "$A")
must_revert "claim with a bad proof" "$RENTER_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$A" 300 "[$LC,$LB]"
must_revert "claim of a wrong amount" "$RENTER_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$A" 301 "[$LB,$LC]"
must_pass "claim (relayed by someone else)" "$RENTER_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$A" 300 "[$LB,$LC]"
gas_claim=$(gas "$LAST_TX")
check "claimant paid" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$A")" "$((prov_before + 300))"
must_revert "second claim of the same leaf" "$PROV_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$A" 300 "[$LB,$LC]"
must_pass "claim of the carried-up leaf" "$OP_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$C" 100 "[$NAB]"
must_revert "claim in an epoch without root" "$RENTER_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 1 "$B" 200 "[$LA,$LC]"
must_pass "claim B" "$RENTER_KEY" "$DIST" 'claim(uint64,address,uint256,bytes32[])' 0 "$B" 200 "[$LA,$LC]"
check "distributor emptied" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$DIST")" 0

# --- provider registry ----------------------------------------------------------------
must_pass "owner registers node" "$PROV_KEY" "$REG" 'register(address)' "$NODE2"
check "node bound to owner" "$(cast call "$REG" 'ownerOf(address)(address)' "$NODE2")" "$PROV"
must_revert "another wallet takes a bound node" "$RENTER_KEY" "$REG" 'register(address)' "$NODE2"
must_revert "release by non-owner" "$RENTER_KEY" "$REG" 'release(address)' "$NODE2"
must_pass "owner releases node" "$PROV_KEY" "$REG" 'release(address)' "$NODE2"
must_pass "released node bound by another wallet" "$RENTER_KEY" "$REG" 'register(address)' "$NODE2"
H=$(cast keccak "0x$(printf 'Kaisar provider binding' | od -An -tx1 | tr -d ' \n')${NODE#0x}${PROV#0x}")
check "bindingHash matches the documented bytes" "$(cast call "$REG" 'bindingHash(address,address)(bytes32)' "$NODE" "$PROV")" "$H"
SIG=$(cast wallet sign --private-key "$PROV_KEY" "$H")
BAD_SIG=$(cast wallet sign --private-key "$RENTER_KEY" "$H")
must_revert "operator relays a signature by the wrong wallet" "$OP_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE" "$PROV" "$BAD_SIG"
must_revert "operator relays a signature for another node" "$OP_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE2" "$PROV" "$SIG"
must_revert "non-operator relays a good signature" "$RENTER_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE" "$PROV" "$SIG"
must_pass "operator relays the owner's signature" "$OP_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE" "$PROV" "$SIG"
check "node bound by signature" "$(cast call "$REG" 'ownerOf(address)(address)' "$NODE")" "$PROV"
must_pass "binding again to the same owner is a no-op" "$OP_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE" "$PROV" "$SIG"
SIG_R=$(cast wallet sign --private-key "$RENTER_KEY" "$(cast keccak "0x$(printf 'Kaisar provider binding' | od -An -tx1 | tr -d ' \n')${NODE#0x}${RENTER#0x}")")
must_revert "bound node cannot be re-bound to another owner" "$OP_KEY" "$REG" 'registerFor(address,address,bytes)' "$NODE" "$RENTER" "$SIG_R"

# --- roles ----------------------------------------------------------------------------
must_revert "setOperator by non-owner" "$RENTER_KEY" "$EPOCHS" 'setOperator(address)' "$RENTER"
must_pass "owner changes operator" "$OP_KEY" "$EPOCHS" 'setOperator(address)' "$RENTER"
must_pass "new operator posts" "$RENTER_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 3 "$R0" 0
must_revert "old operator no longer posts" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 4 "$R0" 0

echo "gas: deposit $gas_deposit + settle $gas_settle = $first_total (first lease: creates balances)"
echo "gas: deposit $gas_deposit2 + settle $gas_settle2 = $empty_total (into an empty escrow)"
echo "gas: deposit $gas_deposit3 + settle $gas_settle3 = $steady_total (steady state)"
echo "gas: postRoot $gas_post; claim $gas_claim"
echo "contracts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
