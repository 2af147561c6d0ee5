#include "chain/node_binding.hpp"

#include <boost/json.hpp>

#include "chain/contracts.hpp"
#include "crypto/eip712.hpp"

namespace kaisar::chain {

namespace json = boost::json;

json::value typed_data(const NodeBinding& b) {
  auto field = [](std::string_view name, std::string_view type) { return json::object{{"name", name}, {"type", type}}; };
  return json::object{
      {"types",
       json::object{{"EIP712Domain", json::array{field("name", "string"), field("version", "string"),
                                                 field("chainId", "uint256"), field("verifyingContract", "address")}},
                    {"Binding", json::array{field("node", "address"), field("owner", "address"),
                                            field("nonce", "uint256")}}}},
      {"primaryType", "Binding"},
      {"domain", json::object{{"name", "Kaisar ProviderRegistry"},
                              {"version", "1"},
                              {"chainId", b.chain_id},
                              {"verifyingContract", b.registry.to_checksum()}}},
      {"message", json::object{{"node", b.node.to_checksum()}, {"owner", b.owner.to_checksum()}, {"nonce", b.nonce}}}};
}

Result<Hash32> binding_digest(const NodeBinding& binding) { return crypto::eip712_digest(typed_data(binding)); }

Result<std::uint64_t> registry_nonce(eth::RpcClient& rpc, const crypto::Address& registry, const crypto::Address& node) {
  auto out = call_view(rpc, registry, "nonceOf(address)", {eth::AbiValue::address(node)}, "(uint256)");
  if (!out) return std::unexpected(out.error());
  const auto* n = std::get_if<eth::Uint256>(&out->at(0).value);
  if (n == nullptr || n->bit_length() > 64) return fail(ErrorCode::kInvalidArgument, "the registry's nonce is not a uint64");
  return n->low_u64();
}

Result<eth::Receipt> register_node(eth::RpcClient& rpc, const crypto::PrivateKey& owner, eth::NonceManager& nonces,
                                   const crypto::Address& registry, const crypto::PrivateKey& node_key) {
  auto chain_id = rpc.chain_id();
  if (!chain_id) return std::unexpected(chain_id.error());
  const crypto::Address node = node_key.address();
  auto nonce = registry_nonce(rpc, registry, node);
  if (!nonce) return fail(nonce.error().code, "reading the registry: " + nonce.error().message);
  auto digest = binding_digest(NodeBinding{*chain_id, registry, node, owner.address(), *nonce});
  if (!digest) return std::unexpected(digest.error());
  const crypto::Signature signature = node_key.sign_digest(*digest);
  return transact(rpc, owner, nonces, registry, "register(address,bytes)",
                  {eth::AbiValue::address(node), eth::AbiValue::bytes(Bytes(signature.rsv.begin(), signature.rsv.end()))});
}

}  // namespace kaisar::chain
