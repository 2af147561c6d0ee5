#!/usr/bin/env bash
# End-to-end tests of the Kaisar contracts on a throwaway anvil chain.
# Usage: test.sh [WORKDIR]   (needs solcjs, and Foundry's native anvil and cast: ../scripts/foundry.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$here/../node_modules/.bin:$PATH"
# shellcheck source=../scripts/foundry.sh
source "$here/../scripts/foundry.sh"
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
"$FOUNDRY_ANVIL" --port 0 >"$anvil_log" 2>&1 &
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

# The checks below rely on cast's exit status: a failing call must be seen as failing.
if cast call 0x0000000000000000000000000000000000000001 'x()' --rpc-url http://127.0.0.1:1 >/dev/null 2>&1; then
  fail "a failing cast call exits 0 (the npm wrapper?): $FOUNDRY_CAST"
else
  ok "a failing cast call exits non-zero ($FOUNDRY_CAST)"
fi

OP_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
RENTER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
PROV_KEY=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a  # anvil key (2)
STRANGER_KEY=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6  # anvil key (3)
OP=$(cast wallet address --private-key "$OP_KEY")
RENTER=$(cast wallet address --private-key "$RENTER_KEY")
PROV=$(cast wallet address --private-key "$PROV_KEY")
STRANGER=$(cast wallet address --private-key "$STRANGER_KEY")
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
# Records are keyed by (lease, depositor): a stranger's deposit under the renter's lease id
# is its own record and never opens, funds or blocks the renter's.
L1=$(cast keccak "lease-1")
L2=$(cast keccak "lease-2")
NOW=$(cast block latest --field timestamp)
FAR=$((NOW + 86400))
SETTLE='settle(bytes32,address,address,uint256,uint256,uint256)'
rec() { cast call "$ESCROW" 'recordOf(bytes32,address)(uint256,uint8,uint64)' "$1" "$2" | sed 's/ .*//' | paste -sd, -; }
must_pass "stranger gets tokens" "$OP_KEY" "$TOKEN" 'mint(address,uint256)' "$STRANGER" 1000
must_pass "stranger approves escrow" "$STRANGER_KEY" "$TOKEN" 'approve(address,uint256)' "$ESCROW" 1000
must_pass "renter approves escrow" "$RENTER_KEY" "$TOKEN" 'approve(address,uint256)' "$ESCROW" 1000000
must_pass "stranger front-runs the renter with dust (its own record)" "$STRANGER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 1 0
must_pass "renter deposits after the stranger" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 10000 "$FAR"
gas_deposit=$(gas "$LAST_TX")
check "renter's record holds only the renter's deposit" "$(rec "$L1" "$RENTER")" "10000,1,$FAR"
check "stranger's dust is a record of its own" "$(rec "$L1" "$STRANGER")" "1,1,0"
must_pass "stranger deposits more under the lease id" "$STRANGER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 5 "$((NOW + 60))"
check "the stranger cannot fund or re-lock the renter's record" "$(rec "$L1" "$RENTER")" "10000,1,$FAR"
must_pass "renter tops up (a lower lock is ignored)" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 2000 0
check "deposit and top-up count together; the lock only grows" "$(rec "$L1" "$RENTER")" "12000,1,$FAR"
check "escrow holds both records" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 12006
check "renter paid deposit+topUp" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 988000
must_revert "renter reclaims before the lock" "$RENTER_KEY" "$ESCROW" 'reclaim(bytes32)' "$L1"
must_revert "zero deposit" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 0 "$FAR"
must_revert "stranger reclaims before its own lock" "$STRANGER_KEY" "$ESCROW" 'reclaim(bytes32)' "$L1"
must_revert "settle by non-operator" "$RENTER_KEY" "$ESCROW" "$SETTLE" "$L1" "$RENTER" "$PROV" 7000 5000 0
must_revert "settle more than deposited" "$OP_KEY" "$ESCROW" "$SETTLE" "$L1" "$RENTER" "$PROV" 7000 5001 0
must_revert "settle provider share above deposit" "$OP_KEY" "$ESCROW" "$SETTLE" "$L1" "$RENTER" "$PROV" 12001 0 0
# remainder rule: 7000 to provider, refund 4000, remaining 1000 also back to renter
must_pass "settle the renter's record" "$OP_KEY" "$ESCROW" "$SETTLE" "$L1" "$RENTER" "$PROV" 7000 4000 25
gas_settle=$(gas "$LAST_TX")
check "provider got its share" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$PROV")" 7000
check "renter got refund + remainder" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$RENTER")" 993000
check "escrow keeps only the stranger's record" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 6
check "renter credited points" "$(num "$POINTS" 'balanceOf(address)(uint256)' "$RENTER")" 25
check "stranger's record untouched by the settlement" "$(rec "$L1" "$STRANGER")" "6,1,$((NOW + 60))"
must_revert "second settle" "$OP_KEY" "$ESCROW" "$SETTLE" "$L1" "$RENTER" "$PROV" 0 0 0
must_revert "deposit into a settled record" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L1" 1 "$FAR"
must_revert "reclaim of a settled record" "$RENTER_KEY" "$ESCROW" 'reclaim(bytes32)' "$L1"
must_revert "settle unknown lease" "$OP_KEY" "$ESCROW" "$SETTLE" "$L2" "$RENTER" "$PROV" 0 0 0
# stray deposits go back to their sender, by the sender's own transaction, after its lock
LS=$(cast keccak "stray")
stranger_before=$(num "$TOKEN" 'balanceOf(address)(uint256)' "$STRANGER")
must_pass "stray deposit locked for 100 s" "$STRANGER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$LS" 50 "$((NOW + 100))"
must_revert "stray deposit reclaimed before its lock" "$STRANGER_KEY" "$ESCROW" 'reclaim(bytes32)' "$LS"
must_revert "someone else reclaims the stray deposit" "$RENTER_KEY" "$ESCROW" 'reclaim(bytes32)' "$LS"
cast rpc evm_increaseTime 3600 >/dev/null && cast rpc evm_mine >/dev/null
must_pass "stray deposit reclaimed by its sender" "$STRANGER_KEY" "$ESCROW" 'reclaim(bytes32)' "$LS"
gas_reclaim=$(gas "$LAST_TX")
must_revert "reclaimed twice" "$STRANGER_KEY" "$ESCROW" 'reclaim(bytes32)' "$LS"
must_revert "the operator cannot settle a reclaimed record" "$OP_KEY" "$ESCROW" "$SETTLE" "$LS" "$STRANGER" "$PROV" 0 0 0
must_pass "front-runner's dust reclaimed by its sender" "$STRANGER_KEY" "$ESCROW" 'reclaim(bytes32)' "$L1"
check "stranger got every stray token back" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$STRANGER")" "$((stranger_before + 6))"
check "escrow emptied" "$(num "$TOKEN" 'balanceOf(address)(uint256)' "$ESCROW")" 0
# second and third lease: every account already exists (steady state)
L3=$(cast keccak "lease-3")
must_pass "deposit lease 2 (escrow empty before)" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L2" 5000 "$FAR"
gas_deposit2=$(gas "$LAST_TX")
must_pass "deposit lease 3 (escrow holding lease 2)" "$RENTER_KEY" "$ESCROW" 'deposit(bytes32,uint256,uint64)' "$L3" 3000 "$FAR"
gas_deposit3=$(gas "$LAST_TX")
must_pass "renter uses points on lease 2" "$RENTER_KEY" "$ESCROW" 'usePoints(bytes32,uint256)' "$L2" 10
check "points spent" "$(num "$POINTS" 'balanceOf(address)(uint256)' "$RENTER")" 15
must_revert "using points on a lease without an own record" "$STRANGER_KEY" "$ESCROW" 'usePoints(bytes32,uint256)' "$L2" 1
must_revert "using more points than held" "$RENTER_KEY" "$ESCROW" 'usePoints(bytes32,uint256)' "$L2" 16
must_revert "points are not spendable directly" "$RENTER_KEY" "$POINTS" 'spend(address,uint256)' "$RENTER" 1
must_revert "points mint by stranger" "$RENTER_KEY" "$POINTS" 'mint(address,uint256)' "$RENTER" 1
must_pass "operator mints points" "$OP_KEY" "$POINTS" 'mint(address,uint256)' "$RENTER" 5
must_pass "settle lease 3 (split)" "$OP_KEY" "$ESCROW" "$SETTLE" "$L3" "$RENTER" "$PROV" 1000 2000 1
gas_settle3=$(gas "$LAST_TX")
must_pass "settle lease 2 (all to provider)" "$OP_KEY" "$ESCROW" "$SETTLE" "$L2" "$RENTER" "$PROV" 5000 0 3
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
# Bindings are EIP-712 typed data signed by the node key (and by the owner when relayed);
# cast signs the typed data itself, so the contract's digest is checked against it.
CHAIN_ID=$(cast chain-id)
NODE2_KEY=0x$(printf 'kaisar-test-node-2' | sha256sum | cut -c1-64)
NODE2=$(cast wallet address --private-key "$NODE2_KEY")
typed() { # typed NODE OWNER NONCE [CHAIN_ID [CONTRACT]] -> EIP-712 JSON of the binding
  printf '{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Binding":[{"name":"node","type":"address"},{"name":"owner","type":"address"},{"name":"nonce","type":"uint256"}]},"primaryType":"Binding","domain":{"name":"Kaisar ProviderRegistry","version":"1","chainId":%s,"verifyingContract":"%s"},"message":{"node":"%s","owner":"%s","nonce":%s}}' \
    "${4:-$CHAIN_ID}" "${5:-$REG}" "$1" "$2" "$3"
}
tsign() { cast wallet sign --private-key "$1" --data "$2"; } # tsign KEY JSON
N2_SIG=$(tsign "$NODE2_KEY" "$(typed "$NODE2" "$PROV" 0)")
# Signatures are deterministic (RFC 6979): signing the contract's digest must give cast's.
check "bindingDigest is the EIP-712 hash of the typed data" \
  "$(cast wallet sign --no-hash --private-key "$NODE2_KEY" "$(cast call "$REG" 'bindingDigest(address,address)(bytes32)' "$NODE2" "$PROV")")" "$N2_SIG"
must_revert "register without the node key's signature" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" 0x
must_revert "register with the owner's own signature instead of the node's" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$(tsign "$PROV_KEY" "$(typed "$NODE2" "$PROV" 0)")"
must_revert "register with the node's signature for another owner" "$RENTER_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$N2_SIG"
must_revert "register with a signature for another chain id" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$(tsign "$NODE2_KEY" "$(typed "$NODE2" "$PROV" 0 $((CHAIN_ID + 1)))")"
must_revert "register with a signature for another deployment" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$(tsign "$NODE2_KEY" "$(typed "$NODE2" "$PROV" 0 "$CHAIN_ID" "$ESCROW")")"
must_pass "owner registers node with the node key's signature" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$N2_SIG"
check "node bound to owner" "$(cast call "$REG" 'ownerOf(address)(address)' "$NODE2")" "$PROV"
must_revert "another wallet takes a bound node" "$RENTER_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$(tsign "$NODE2_KEY" "$(typed "$NODE2" "$RENTER" 0)")"
must_revert "release by non-owner" "$RENTER_KEY" "$REG" 'release(address)' "$NODE2"
must_pass "owner releases node" "$PROV_KEY" "$REG" 'release(address)' "$NODE2"
check "release bumps the node's nonce" "$(num "$REG" 'nonceOf(address)(uint256)' "$NODE2")" 1
must_revert "the old binding does not replay after release" "$PROV_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$N2_SIG"
must_pass "released node bound to another wallet with a fresh node signature" "$RENTER_KEY" "$REG" 'register(address,bytes)' "$NODE2" "$(tsign "$NODE2_KEY" "$(typed "$NODE2" "$RENTER" 1)")"
# relayed by the operator: the owner's and the node key's signatures
OWNER_SIG=$(tsign "$PROV_KEY" "$(typed "$NODE" "$PROV" 0)")
NODE_SIG=$(tsign "$NODE_KEY" "$(typed "$NODE" "$PROV" 0)")
RFOR='registerFor(address,address,bytes,bytes)'
must_revert "operator relays a signature by the wrong wallet" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$(tsign "$RENTER_KEY" "$(typed "$NODE" "$PROV" 0)")" "$NODE_SIG"
must_revert "operator relays without the node key's signature" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$OWNER_SIG" 0x
must_revert "operator relays a wrong node key's signature" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$OWNER_SIG" "$(tsign "$NODE2_KEY" "$(typed "$NODE" "$PROV" 0)")"
must_revert "operator relays signatures for another node" "$OP_KEY" "$REG" "$RFOR" "$NODE2" "$PROV" "$OWNER_SIG" "$NODE_SIG"
must_revert "operator relays signatures for another chain id" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" \
  "$(tsign "$PROV_KEY" "$(typed "$NODE" "$PROV" 0 $((CHAIN_ID + 1)))")" "$(tsign "$NODE_KEY" "$(typed "$NODE" "$PROV" 0 $((CHAIN_ID + 1)))")"
must_revert "non-operator relays good signatures" "$RENTER_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$OWNER_SIG" "$NODE_SIG"
must_pass "operator relays the owner's and the node's signatures" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$OWNER_SIG" "$NODE_SIG"
check "node bound by signature" "$(cast call "$REG" 'ownerOf(address)(address)' "$NODE")" "$PROV"
must_pass "binding again to the same owner is a no-op" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$PROV" "$OWNER_SIG" "$NODE_SIG"
must_revert "bound node cannot be re-bound to another owner" "$OP_KEY" "$REG" "$RFOR" "$NODE" "$RENTER" \
  "$(tsign "$RENTER_KEY" "$(typed "$NODE" "$RENTER" 0)")" "$(tsign "$NODE_KEY" "$(typed "$NODE" "$RENTER" 0)")"
# A second registry on the same chain: the first one's signatures are worthless there.
REG2=$(deploy ProviderRegistry)
must_revert "a signature for one registry does not replay on another" "$PROV_KEY" "$REG2" 'register(address,bytes)' "$NODE2" "$N2_SIG"

# --- roles ----------------------------------------------------------------------------
must_revert "setOperator by non-owner" "$RENTER_KEY" "$EPOCHS" 'setOperator(address)' "$RENTER"
must_pass "owner changes operator" "$OP_KEY" "$EPOCHS" 'setOperator(address)' "$RENTER"
must_pass "new operator posts" "$RENTER_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 3 "$R0" 0
must_revert "old operator no longer posts" "$OP_KEY" "$EPOCHS" 'postRoot(uint64,bytes32,uint64)' 4 "$R0" 0

echo "gas: deposit $gas_deposit + settle $gas_settle = $first_total (first lease: creates balances)"
echo "gas: deposit $gas_deposit2 + settle $gas_settle2 = $empty_total (into an empty escrow)"
echo "gas: deposit $gas_deposit3 + settle $gas_settle3 = $steady_total (steady state)"
echo "gas: postRoot $gas_post; claim $gas_claim; reclaim of a stray deposit $gas_reclaim (paid by its sender)"
echo "contracts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
