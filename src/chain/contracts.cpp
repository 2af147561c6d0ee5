#include "chain/contracts.hpp"

#include <boost/json/array.hpp>

#include <string>

namespace kaisar::chain {

namespace json = boost::json;
using crypto::Address;
using eth::AbiValue;

Result<Artifact> artifact(std::string_view name) {
  for (const Artifact& a : artifacts()) {
    if (a.name == name) return a;
  }
  return fail(ErrorCode::kNotFound, "no compiled contract named " + std::string(name));
}

json::object to_json(const Deployment& d) {
  return json::object{
      {"chain_id", d.chain_id},
      {"token", d.token.to_checksum()},
      {"points", d.points.to_checksum()},
      {"escrow", d.escrow.to_checksum()},
      {"epoch_log", d.epoch_log.to_checksum()},
      {"distributor", d.distributor.to_checksum()},
      {"registry", d.registry.to_checksum()},
      {"deployed_block", d.deployed_block},
  };
}

namespace {

Result<Address> address_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return fail(ErrorCode::kInvalidArgument, "deployment: \"" + std::string(key) + "\" must be an address string");
  }
  auto a = Address::parse(v->get_string());
  if (!a) return fail(ErrorCode::kInvalidArgument, "deployment: \"" + std::string(key) + "\": " + a.error().message);
  return *a;
}

Result<std::uint64_t> u64_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v != nullptr && v->is_uint64()) return v->get_uint64();
  if (v != nullptr && v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  return fail(ErrorCode::kInvalidArgument, "deployment: \"" + std::string(key) + "\" must be a non-negative integer");
}

}  // namespace

Result<Deployment> deployment_from_json(const json::value& value) {
  if (!value.is_object()) return fail(ErrorCode::kInvalidArgument, "deployment must be a JSON object");
  const json::object& o = value.get_object();
  Deployment d;
  auto chain_id = u64_field(o, "chain_id");
  if (!chain_id) return std::unexpected(chain_id.error());
  d.chain_id = *chain_id;
  auto block = u64_field(o, "deployed_block");
  if (!block) return std::unexpected(block.error());
  d.deployed_block = *block;
  struct Field {
    std::string_view key;
    Address* target;
  };
  for (const Field& f : {Field{"token", &d.token}, Field{"points", &d.points}, Field{"escrow", &d.escrow},
                         Field{"epoch_log", &d.epoch_log}, Field{"distributor", &d.distributor},
                         Field{"registry", &d.registry}}) {
    auto a = address_field(o, f.key);
    if (!a) return std::unexpected(a.error());
    *f.target = *a;
  }
  return d;
}

namespace {

Result<eth::DeployedContract> deploy(eth::RpcClient& rpc, const crypto::PrivateKey& owner, eth::NonceManager& nonces,
                                     std::string_view name, std::string_view constructor,
                                     const AbiValue::List& args, const DeployOptions& options) {
  auto a = artifact(name);
  if (!a) return std::unexpected(a.error());
  auto code = from_hex(a->bytecode_hex);
  if (!code) return fail(ErrorCode::kInternal, "embedded bytecode of " + std::string(name) + " is not hex");
  if (!constructor.empty()) {
    auto types = eth::AbiType::parse(constructor);
    if (!types) return std::unexpected(types.error());
    auto encoded = eth::abi_encode(*types, AbiValue::list(args));
    if (!encoded) return std::unexpected(encoded.error());
    code->insert(code->end(), encoded->begin(), encoded->end());
  }
  auto deployed = eth::deploy_contract(rpc, owner, nonces, *code, {}, options.receipt_timeout, options.poll_interval);
  if (!deployed) {
    return fail(deployed.error().code, "deploying " + std::string(name) + ": " + deployed.error().message);
  }
  return deployed;
}

}  // namespace

Result<Deployment> deploy_contracts(eth::RpcClient& rpc, const crypto::PrivateKey& owner, eth::NonceManager& nonces,
                                    const DeployOptions& options) {
  Deployment d;
  auto chain_id = rpc.chain_id();
  if (!chain_id) return std::unexpected(chain_id.error());
  d.chain_id = *chain_id;

  std::uint64_t first_block = UINT64_MAX;
  auto step = [&](std::string_view name, std::string_view ctor, const AbiValue::List& args,
                  Address& out) -> Result<void> {
    auto deployed = deploy(rpc, owner, nonces, name, ctor, args, options);
    if (!deployed) return std::unexpected(deployed.error());
    out = deployed->address;
    first_block = std::min(first_block, deployed->receipt.block_number);
    return {};
  };

  if (options.token) {
    d.token = *options.token;
  } else if (auto r = step("KaiToken", "", {}, d.token); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = step("RewardPoints", "", {}, d.points); !r) return std::unexpected(r.error());
  if (auto r = step("LeaseEscrow", "(address,address)", {AbiValue::address(d.token), AbiValue::address(d.points)},
                    d.escrow);
      !r) {
    return std::unexpected(r.error());
  }
  if (auto r = step("EpochLog", "", {}, d.epoch_log); !r) return std::unexpected(r.error());
  if (auto r = step("RewardDistributor", "(address)", {AbiValue::address(d.token)}, d.distributor); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = step("ProviderRegistry", "", {}, d.registry); !r) return std::unexpected(r.error());

  for (std::string_view role : {"setMinter(address,bool)", "setSpender(address,bool)"}) {
    auto receipt = transact(rpc, owner, nonces, d.points, role, {AbiValue::address(d.escrow), AbiValue::boolean(true)},
                            options.receipt_timeout, options.poll_interval);
    if (!receipt) return std::unexpected(receipt.error());
  }
  d.deployed_block = first_block == UINT64_MAX ? 0 : first_block;
  return d;
}

Result<eth::Receipt> transact(eth::RpcClient& rpc, const crypto::PrivateKey& key, eth::NonceManager& nonces,
                              const Address& to, std::string_view signature, const AbiValue::List& args,
                              std::chrono::milliseconds timeout, std::chrono::milliseconds poll_interval) {
  auto data = eth::abi_encode_call(signature, AbiValue::list(args));
  if (!data) return std::unexpected(data.error());
  eth::TxRequest request;
  request.to = to;
  request.data = std::move(*data);
  auto hash = eth::send_transaction(rpc, key, nonces, request);
  if (!hash) return std::unexpected(hash.error());
  auto receipt = rpc.wait_for_receipt(*hash, timeout, poll_interval);
  if (!receipt) return std::unexpected(receipt.error());
  if (receipt->status != 1) {
    return fail(ErrorCode::kConflict, std::string(signature) + " in " + to_hex(*hash) + " reverted");
  }
  return receipt;
}

Result<AbiValue::List> call_view(eth::RpcClient& rpc, const Address& to, std::string_view signature,
                                 const AbiValue::List& args, std::string_view returns) {
  auto data = eth::abi_encode_call(signature, AbiValue::list(args));
  if (!data) return std::unexpected(data.error());
  auto types = eth::AbiType::parse(returns);
  if (!types) return std::unexpected(types.error());
  eth::CallRequest request;
  request.to = to;
  request.data = std::move(*data);
  auto out = rpc.call(request);
  if (!out) return std::unexpected(out.error());
  if (out->empty()) {
    return fail(ErrorCode::kNotFound, "no contract answered " + std::string(signature) + " at " + to.to_checksum());
  }
  auto decoded = eth::abi_decode(*types, *out);
  if (!decoded) return std::unexpected(decoded.error());
  return std::get<AbiValue::List>(std::move(decoded->value));
}

Result<eth::Uint256> token_balance(eth::RpcClient& rpc, const Address& token, const Address& holder) {
  auto out = call_view(rpc, token, "balanceOf(address)", {AbiValue::address(holder)}, "(uint256)");
  if (!out) return std::unexpected(out.error());
  return std::get<eth::Uint256>(out->at(0).value);
}

}  // namespace kaisar::chain
