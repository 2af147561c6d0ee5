#include "onenode/settlement.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "crypto/keystore.hpp"
#include "eth/abi.hpp"
#include "eth/wallet_signer.hpp"
#include "store/files.hpp"

namespace kaisar::onenode {

namespace json = boost::json;
using crypto::Address;
using eth::AbiValue;

namespace {

Result<crypto::PrivateKey> load_operator(const OneNodeConfig& c) {
  if (c.operator_keystore.empty() || c.operator_password_file.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "rpc_url is set but operator_keystore and operator_password_file are not: OneNode needs an "
                "operator key to send chain writes");
  }
  auto keystore = store::read_file(c.operator_keystore, 1 << 16);
  if (!keystore) return fail(keystore.error().code, "operator keystore: " + keystore.error().message);
  auto password = store::read_file(c.operator_password_file, 4096);
  if (!password) return fail(password.error().code, "operator password file: " + password.error().message);
  while (!password->empty() && (password->back() == '\n' || password->back() == '\r')) password->pop_back();
  auto key = crypto::keystore_decrypt(*keystore, *password);
  if (!key) return fail(key.error().code, "operator keystore " + c.operator_keystore + ": " + key.error().message);
  return key;
}

// The addresses must hold our contracts on this chain: the escrow names the token.
Result<void> verify_deployment(eth::RpcClient& rpc, const chain::Deployment& d, std::uint64_t chain_id) {
  if (d.chain_id != chain_id) {
    return fail(ErrorCode::kInvalidArgument, "contracts file is for chain id " + std::to_string(d.chain_id) +
                                                 ", OneNode is configured for " + std::to_string(chain_id));
  }
  auto token = chain::call_view(rpc, d.escrow, "token()", {}, "(address)");
  if (!token) {
    return fail(ErrorCode::kInvalidArgument,
                "no LeaseEscrow answers at " + d.escrow.to_checksum() + ": " + token.error().message);
  }
  if (std::get<Address>(token->at(0).value) != d.token) {
    return fail(ErrorCode::kInvalidArgument, "LeaseEscrow at " + d.escrow.to_checksum() + " uses another token");
  }
  // Contracts deployed by an older Kaisar (escrow records per lease, registry bindings
  // without the node key) answer token() but not these: say so now, not at the first payment.
  const std::string older = " is an older version than this OneNode's contracts: deploy them again (for `kaisar dev`, "
                            "remove its data dir, .kaisar-dev by default)";
  if (!chain::escrow_record(rpc, d.escrow, Hash32{}, d.token)) {
    return fail(ErrorCode::kInvalidArgument, "the LeaseEscrow at " + d.escrow.to_checksum() + older);
  }
  if (!chain::call_view(rpc, d.registry, "domainSeparator()", {}, "(bytes32)")) {
    return fail(ErrorCode::kInvalidArgument, "the ProviderRegistry at " + d.registry.to_checksum() + older);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Settlement>> Settlement::open(const OneNodeConfig& config, store::Database& db,
                                                     const Clock& clock, LeaseBook* leases) {
  std::unique_ptr<Settlement> s(new Settlement());
  s->config_ = config;
  s->clock_ = &clock;
  if (s->config_.wallet_rpc_url.empty()) s->config_.wallet_rpc_url = config.rpc_url;
  if (s->config_.contracts_file.empty()) {
    s->config_.contracts_file = (std::filesystem::path(config.data_dir) / "contracts.json").string();
  }
  s->transport_ = std::make_unique<chain::HttpRpcTransport>(config.rpc_url);
  eth::RpcClient rpc(*s->transport_);
  auto chain_id = rpc.chain_id();
  if (!chain_id) return fail(chain_id.error().code, "chain: " + chain_id.error().message);
  if (*chain_id != config.chain_id) {
    return fail(ErrorCode::kInvalidArgument, "chain: the node at " + config.rpc_url + " is on chain id " +
                                                 std::to_string(*chain_id) + ", but chain_id is " +
                                                 std::to_string(config.chain_id));
  }
  auto key = load_operator(config);
  if (!key) return std::unexpected(key.error());
  s->operator_ = key->address();

  const std::string& file = s->config_.contracts_file;
  if (std::filesystem::exists(file)) {
    auto text = store::read_file(file, 1 << 16);
    if (!text) return std::unexpected(text.error());
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec) return fail(ErrorCode::kInvalidArgument, "contracts file " + file + " is not JSON");
    auto d = chain::deployment_from_json(v);
    if (!d) return fail(d.error().code, file + ": " + d.error().message);
    s->deployment_ = *d;
  } else if (config.deploy_contracts) {
    chain::DeployOptions options;
    if (!config.payment_token.empty()) {
      auto token = Address::parse(config.payment_token);
      if (!token) return fail(ErrorCode::kInvalidArgument, "payment_token: " + token.error().message);
      options.token = *token;
    }
    eth::NonceManager nonces(rpc);
    spdlog::info("deploying Kaisar contracts with operator {}", s->operator_.to_checksum());
    auto d = chain::deploy_contracts(rpc, *key, nonces, options);
    if (!d) return fail(d.error().code, "deploying contracts: " + d.error().message);
    s->deployment_ = *d;
    if (auto w = store::write_file_atomic(file, json::serialize(chain::to_json(*d)) + "\n", 0644); !w) {
      return std::unexpected(w.error());
    }
    spdlog::info("contracts deployed; addresses in {}", file);
  } else {
    return fail(ErrorCode::kInvalidArgument, "no contracts file at " + file +
                                                 "; set contracts_file, or deploy_contracts = true to deploy them");
  }
  if (auto r = verify_deployment(rpc, s->deployment_, config.chain_id); !r) return std::unexpected(r.error());

  chain::OutboxOptions outbox_options;
  outbox_options.chain_id = config.chain_id;
  outbox_options.confirmations = config.confirmations;
  s->outbox_ = std::make_unique<chain::Outbox>(db, *s->transport_, std::move(*key), outbox_options, clock);
  s->outbox_->on_change([](const chain::OutboxEntry& e) {
    spdlog::info("chain write {} ({}): {}{}{}", e.key, e.kind, chain::to_string(e.state),
                 e.tx_hash ? " " + to_hex(*e.tx_hash) : "", e.error.empty() ? "" : " — " + e.error);
  });
  chain::IndexerOptions indexer_options;
  indexer_options.addresses = {s->deployment_.escrow, s->deployment_.epoch_log, s->deployment_.distributor,
                               s->deployment_.registry};
  indexer_options.start_block = s->deployment_.deployed_block;
  indexer_options.confirmations = config.confirmations > 0 ? config.confirmations - 1 : 0;
  s->ledger_ = std::make_unique<chain::EscrowLedger>(db, s->deployment_.escrow);
  chain::LogHandler* handler = s->ledger_.get();
  if (leases != nullptr) {
    leases->set_ledger(s->ledger_.get());
    handler = leases;
  }
  s->indexer_ = std::make_unique<chain::Indexer>(db, *s->transport_, indexer_options, handler);
  s->outbox_->start();
  s->indexer_->start();
  return s;
}

Settlement::~Settlement() { stop(); }

void Settlement::stop() {
  if (outbox_) outbox_->stop();
  if (indexer_) indexer_->stop();
}

json::object Settlement::info() {
  json::object contracts = chain::to_json(deployment_);
  contracts.erase("chain_id");
  json::object out{{"enabled", true},
                   {"chain_id", config_.chain_id},
                   {"rpc_url", config_.wallet_rpc_url},
                   {"contracts", std::move(contracts)},
                   {"operator", operator_.to_checksum()},
                   {"confirmations", config_.confirmations},
                   {"faucet", config_.faucet}};
  if (auto next = indexer_->next_block()) {
    out["indexed_block"] = *next > 0 ? static_cast<std::int64_t>(*next - 1) : -1;
  }
  if (auto counts = outbox_->counts()) {
    json::object writes;
    for (const auto& [state, n] : *counts) writes[state] = n;
    out["outbox"] = std::move(writes);
  }
  eth::RpcClient rpc(*transport_);
  if (auto head = rpc.block_number()) out["head_block"] = *head;
  return out;
}

Result<chain::EscrowRecord> Settlement::escrow_record(const Hash32& escrow_lease_id, const Address& depositor) {
  eth::RpcClient rpc(*transport_);
  return chain::escrow_record(rpc, deployment_.escrow, escrow_lease_id, depositor);
}

Result<void> Settlement::settle_lease(const Hash32& escrow_lease_id, const Address& renter,
                                      const Address& provider_wallet, const eth::Uint256& to_provider,
                                      const eth::Uint256& to_renter) {
  auto data = chain::settle_calldata(escrow_lease_id, renter, provider_wallet, to_provider, to_renter, 0);
  if (!data) return std::unexpected(data.error());
  auto entry = outbox_->enqueue("settle:" + to_hex(escrow_lease_id), "settle", deployment_.escrow, *data);
  if (!entry) return std::unexpected(entry.error());
  return {};
}

Result<void> Settlement::post_epoch_root(std::uint64_t epoch, const Hash32& root, std::uint64_t leaves) {
  auto data = eth::abi_encode_call("postRoot(uint64,bytes32,uint64)",
                                   AbiValue::list({AbiValue::uint(eth::Uint256(epoch)), AbiValue::bytes(Bytes(root.begin(), root.end())),
                                                   AbiValue::uint(eth::Uint256(leaves))}));
  if (!data) return std::unexpected(data.error());
  auto entry = outbox_->enqueue("epoch:" + std::to_string(epoch), "epoch_root", deployment_.epoch_log, *data);
  if (!entry) return std::unexpected(entry.error());
  return {};
}

Result<void> Settlement::post_rewards(std::uint64_t epoch, const Hash32& root, const eth::Uint256& total, bool fund) {
  if (fund) {
    auto mint = eth::abi_encode_call("mint(address,uint256)",
                                     AbiValue::list({AbiValue::address(deployment_.distributor), AbiValue::uint(total)}));
    if (!mint) return std::unexpected(mint.error());
    auto entry = outbox_->enqueue("rewards_fund:" + std::to_string(epoch), "rewards_fund", deployment_.token, *mint);
    if (!entry) return std::unexpected(entry.error());
  }
  auto data = eth::abi_encode_call("setRoot(uint64,bytes32,uint256)",
                                   AbiValue::list({AbiValue::uint(eth::Uint256(epoch)), AbiValue::bytes(Bytes(root.begin(), root.end())),
                                                   AbiValue::uint(total)}));
  if (!data) return std::unexpected(data.error());
  auto entry = outbox_->enqueue("rewards:" + std::to_string(epoch), "rewards_root", deployment_.distributor, *data);
  if (!entry) return std::unexpected(entry.error());
  return {};
}

std::optional<std::string> Settlement::transaction_of(const std::string& key) {
  auto entry = outbox_->find(key);
  if (!entry || !*entry || !(*entry)->tx_hash) return std::nullopt;
  return to_hex(*(*entry)->tx_hash);
}

Result<json::object> Settlement::faucet(const Address& address) {
  if (!config_.faucet) return fail(ErrorCode::kNotFound, "the faucet is off; it exists on dev chains only");
  eth::RpcClient rpc(*transport_);
  const eth::Uint256 eth_target = eth::Uint256(100) * 1000000000000000000ULL;
  auto balance = rpc.get_balance(address);
  if (!balance) return std::unexpected(balance.error());
  if (*balance < eth_target) {
    auto set = rpc.request("anvil_setBalance", json::array{address.to_lower_hex(), eth_target.to_hex()});
    if (!set) return fail(set.error().code, "faucet: the chain does not take anvil_setBalance (not a dev chain?)");
  }
  const eth::Uint256 kai = eth::Uint256(1000) * 1000000000000000000ULL;
  auto data = eth::abi_encode_call("mint(address,uint256)", AbiValue::list({AbiValue::address(address), AbiValue::uint(kai)}));
  if (!data) return std::unexpected(data.error());
  const auto minute = to_unix_seconds(clock_->now()) / 60;
  auto entry = outbox_->enqueue("faucet:" + address.to_lower_hex() + ":" + std::to_string(minute), "faucet",
                                deployment_.token, *data);
  if (!entry) return std::unexpected(entry.error());
  return json::object{{"address", address.to_checksum()},
                      {"eth_wei", eth_target.to_decimal()},
                      {"kai_base_units", kai.to_decimal()},
                      {"write", json::object{{"key", entry->key}, {"state", chain::to_string(entry->state)}}}};
}

}  // namespace kaisar::onenode
