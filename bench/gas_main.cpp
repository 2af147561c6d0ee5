// bench/gas: see the script of the same name.
#include <boost/json.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "chain/contracts.hpp"
#include "chain/http_transport.hpp"
#include "chain/payments.hpp"
#include "crypto/merkle.hpp"
#include "eth/abi.hpp"
#include "process.hpp"

namespace json = boost::json;
using kaisar::Bytes;
using kaisar::Hash32;
using kaisar::crypto::Address;
using kaisar::crypto::PrivateKey;
using kaisar::eth::AbiValue;
using kaisar::eth::Uint256;
namespace chain = kaisar::chain;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::cerr << "bench/gas: " << what << "\n";
  std::exit(1);
}

template <class T>
T need(kaisar::Result<T> r, const std::string& what) {
  if (!r) die(what + ": " + r.error().message);
  return std::move(*r);
}

// A tree of `count` leaves as the epoch log would hold them (one per record).
Hash32 epoch_root(std::size_t count) {
  std::vector<Hash32> leaves;
  leaves.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string record = "record-" + std::to_string(i);
    leaves.push_back(kaisar::crypto::merkle_leaf_hash(kaisar::as_bytes(record)));
  }
  return kaisar::crypto::MerkleTree(std::move(leaves)).root();
}

Bytes reward_leaf(const Address& account, const Uint256& amount) {
  Bytes leaf(account.bytes().begin(), account.bytes().end());
  const auto word = amount.to_be32();
  leaf.insert(leaf.end(), word.begin(), word.end());
  return leaf;
}

}  // namespace

int main() {
  auto anvil = kaisar::testing::start_anvil();
  if (anvil.url.empty()) die("anvil did not start");
  chain::HttpRpcTransport transport(anvil.url);
  kaisar::eth::RpcClient rpc(transport);
  kaisar::eth::NonceManager nonces(rpc);
  const PrivateKey op = need(PrivateKey::from_hex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
                             "operator key");
  const auto fast = std::chrono::milliseconds{20};
  const auto timeout = std::chrono::milliseconds{20000};
  chain::DeployOptions options;
  options.poll_interval = fast;
  const chain::Deployment d = need(chain::deploy_contracts(rpc, op, nonces, options), "deploy");
  std::cerr << "contracts deployed on " << anvil.url << "\n";

  auto send = [&](const PrivateKey& key, const Address& to, std::string_view sig, const AbiValue::List& args) {
    return need(chain::transact(rpc, key, nonces, to, sig, args, timeout, fast), std::string(sig)).gas_used;
  };

  // --- lease lifecycle: deposit + settle ---------------------------------------------------
  const PrivateKey renter = PrivateKey::generate();
  const Address provider = PrivateKey::generate().address();
  need(rpc.request("anvil_setBalance", json::array{renter.address().to_lower_hex(), "0x56bc75e2d63100000"}), "fund");
  send(op, d.token, "mint(address,uint256)", {AbiValue::address(renter.address()), AbiValue::uint(1000000)});
  send(renter, d.token, "approve(address,uint256)", {AbiValue::address(d.escrow), AbiValue::uint(~Uint256(0))});
  struct Lifecycle {
    std::uint64_t deposit = 0;
    std::uint64_t settle = 0;
  };
  auto lifecycle = [&](const std::string& name, std::uint64_t to_provider, std::uint64_t refund) {
    const Hash32 id = chain::escrow_lease_id(name);
    const Bytes id_bytes(id.begin(), id.end());
    Lifecycle l;
    l.deposit = send(renter, d.escrow, "deposit(bytes32,uint256,uint64)",
                     {AbiValue::bytes(id_bytes), AbiValue::uint(10000), AbiValue::uint(4102444800)});
    l.settle = send(op, d.escrow, "settle(bytes32,address,address,uint256,uint256,uint256)",
                    {AbiValue::bytes(id_bytes), AbiValue::address(renter.address()), AbiValue::address(provider),
                     AbiValue::uint(to_provider),
                     AbiValue::uint(refund), AbiValue::uint(0)});
    return l;
  };
  // The first lease also creates the provider's token balance (a one-time storage write).
  const Lifecycle first = lifecycle("lease-first", 6000, 4000);
  const Lifecycle steady = lifecycle("lease-steady", 7000, 3000);
  std::cerr << "lease: first deposit " << first.deposit << " + settle " << first.settle << "; steady deposit "
            << steady.deposit << " + settle " << steady.settle << "\n";

  // --- epoch roots at 10 and 100,000 leaves ---------------------------------------------------
  std::uint64_t root_gas_10 = 0;
  std::uint64_t root_gas_100000 = 0;
  {
    const Hash32 r10 = epoch_root(10);
    const Hash32 r100k = epoch_root(100000);
    // Epoch 0 pays for the log's first slot writes; compare epochs 1 and 2.
    send(op, d.epoch_log, "postRoot(uint64,bytes32,uint64)",
         {AbiValue::uint(0), AbiValue::bytes(Bytes(r10.begin(), r10.end())), AbiValue::uint(10)});
    root_gas_10 = send(op, d.epoch_log, "postRoot(uint64,bytes32,uint64)",
                       {AbiValue::uint(1), AbiValue::bytes(Bytes(r10.begin(), r10.end())), AbiValue::uint(10)});
    root_gas_100000 =
        send(op, d.epoch_log, "postRoot(uint64,bytes32,uint64)",
             {AbiValue::uint(2), AbiValue::bytes(Bytes(r100k.begin(), r100k.end())), AbiValue::uint(100000)});
  }

  // --- reward claim from a 1,000-leaf distribution ---------------------------------------------
  std::uint64_t claim_gas = 0;
  std::size_t proof_length = 0;
  {
    std::vector<PrivateKey> accounts;
    std::vector<Hash32> leaves;
    Uint256 total;
    for (int i = 0; i < 1000; ++i) {
      accounts.push_back(PrivateKey::generate());
      const Uint256 amount(static_cast<std::uint64_t>(100 + i));
      total = total + amount;
      leaves.push_back(kaisar::crypto::merkle_leaf_hash(reward_leaf(accounts.back().address(), amount)));
    }
    kaisar::crypto::MerkleTree tree(leaves);
    send(op, d.token, "mint(address,uint256)", {AbiValue::address(op.address()), AbiValue::uint(total)});
    send(op, d.token, "approve(address,uint256)", {AbiValue::address(d.distributor), AbiValue::uint(total)});
    send(op, d.distributor, "fund(uint256)", {AbiValue::uint(total)});
    send(op, d.distributor, "setRoot(uint64,bytes32,uint256)",
         {AbiValue::uint(0), AbiValue::bytes(Bytes(tree.root().begin(), tree.root().end())), AbiValue::uint(total)});
    const std::size_t index = 500;
    auto proof = need(tree.proof(index), "proof");
    proof_length = proof.size();
    AbiValue::List proof_values;
    for (const Hash32& h : proof) proof_values.push_back(AbiValue::bytes(Bytes(h.begin(), h.end())));
    // Relayed by the operator: the tokens go to the account either way.
    claim_gas = send(op, d.distributor, "claim(uint64,address,uint256,bytes32[])",
                     {AbiValue::uint(0), AbiValue::address(accounts[index].address()),
                      AbiValue::uint(static_cast<std::uint64_t>(100 + index)), AbiValue::list(proof_values)});
  }

  json::object out{{"lease_lifecycle_gas", steady.deposit + steady.settle},
                   {"lease_lifecycle_gas_first", first.deposit + first.settle},
                   {"deposit_gas", steady.deposit},
                   {"settle_gas", steady.settle},
                   {"epoch_root_gas_10", root_gas_10},
                   {"epoch_root_gas_100000", root_gas_100000},
                   {"claim_gas", claim_gas},
                   {"claim_proof_length", proof_length},
                   {"lease_lifecycle_under_150000", steady.deposit + steady.settle < 150000},
                   {"epoch_root_gas_constant",
                    root_gas_100000 >= root_gas_10 ? root_gas_100000 - root_gas_10 < 200 : root_gas_10 - root_gas_100000 < 200}};
  std::cout << json::serialize(out) << std::endl;
  return 0;
}
