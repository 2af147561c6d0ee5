#include "popw/attestation.hpp"

#include <boost/json.hpp>

#include "crypto/eip712.hpp"

namespace kaisar::popw {

namespace json = boost::json;

namespace {

json::array fields(std::initializer_list<std::pair<std::string_view, std::string_view>> list) {
  json::array out;
  for (const auto& [name, type] : list) out.push_back(json::object{{"name", name}, {"type", type}});
  return out;
}

Result<Hash32> hash_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + " must be 0x and 64 hex digits");
  auto h = from_hex_fixed<32>(v->get_string());
  if (!h) return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + ": " + h.error().message);
  return *h;
}

Result<crypto::Address> address_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + " must be an address");
  auto a = crypto::Address::parse(v->get_string());
  if (!a) return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + ": " + a.error().message);
  return *a;
}

Result<std::uint64_t> uint_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v != nullptr && v->is_uint64()) return v->get_uint64();
  if (v != nullptr && v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + " must be a whole number below 2^64");
}

Result<bool> bool_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_bool()) return fail(ErrorCode::kInvalidArgument, "attestation." + std::string(key) + " must be true or false");
  return v->get_bool();
}

}  // namespace

json::object to_json(const Attestation& a) {
  return json::object{{"provider", a.provider.to_checksum()},
                      {"checker", a.checker.to_checksum()},
                      {"epoch", a.epoch},
                      {"checkId", to_hex(a.check_id)},
                      {"seed", to_hex(a.seed)},
                      {"root", to_hex(a.root)},
                      {"opsPerSecond", a.ops_per_second},
                      {"memoryBytes", a.memory_bytes},
                      {"memoryPassed", a.memory_passed},
                      {"passed", a.passed}};
}

Result<Attestation> attestation_from_json(const json::value& value) {
  if (!value.is_object()) return fail(ErrorCode::kInvalidArgument, "attestation must be an object");
  const auto& o = value.get_object();
  if (o.size() != 10) return fail(ErrorCode::kInvalidArgument, "attestation must have exactly the 10 fields of its type");
  Attestation a;
  auto provider = address_field(o, "provider");
  if (!provider) return std::unexpected(provider.error());
  auto checker = address_field(o, "checker");
  if (!checker) return std::unexpected(checker.error());
  auto epoch = uint_field(o, "epoch");
  if (!epoch) return std::unexpected(epoch.error());
  auto check_id = hash_field(o, "checkId");
  if (!check_id) return std::unexpected(check_id.error());
  auto seed = hash_field(o, "seed");
  if (!seed) return std::unexpected(seed.error());
  auto root = hash_field(o, "root");
  if (!root) return std::unexpected(root.error());
  auto ops = uint_field(o, "opsPerSecond");
  if (!ops) return std::unexpected(ops.error());
  auto memory = uint_field(o, "memoryBytes");
  if (!memory) return std::unexpected(memory.error());
  auto memory_passed = bool_field(o, "memoryPassed");
  if (!memory_passed) return std::unexpected(memory_passed.error());
  auto passed = bool_field(o, "passed");
  if (!passed) return std::unexpected(passed.error());
  a.provider = *provider;
  a.checker = *checker;
  a.epoch = *epoch;
  a.check_id = *check_id;
  a.seed = *seed;
  a.root = *root;
  a.ops_per_second = *ops;
  a.memory_bytes = *memory;
  a.memory_passed = *memory_passed;
  a.passed = *passed;
  return a;
}

json::value attestation_typed_data(const Attestation& a, const AttestationDomain& domain) {
  json::object types{
      {"EIP712Domain", fields({{"name", "string"}, {"version", "string"}, {"chainId", "uint256"}, {"verifyingContract", "address"}})},
      {"Attestation", fields({{"provider", "address"},
                              {"checker", "address"},
                              {"epoch", "uint64"},
                              {"checkId", "bytes32"},
                              {"seed", "bytes32"},
                              {"root", "bytes32"},
                              {"opsPerSecond", "uint64"},
                              {"memoryBytes", "uint64"},
                              {"memoryPassed", "bool"},
                              {"passed", "bool"}})}};
  // Large integers as decimal strings: JSON numbers past 2^53 lose precision in wallets.
  json::object message = to_json(a);
  message["epoch"] = std::to_string(a.epoch);
  message["opsPerSecond"] = std::to_string(a.ops_per_second);
  message["memoryBytes"] = std::to_string(a.memory_bytes);
  return json::object{{"types", std::move(types)},
                      {"primaryType", "Attestation"},
                      {"domain", json::object{{"name", "Kaisar PoPW"},
                                              {"version", "1"},
                                              {"chainId", std::to_string(domain.chain_id)},
                                              {"verifyingContract", domain.verifying_contract.to_checksum()}}},
                      {"message", std::move(message)}};
}

Result<Hash32> attestation_digest(const Attestation& a, const AttestationDomain& domain) {
  return crypto::eip712_digest(attestation_typed_data(a, domain));
}

Result<crypto::Signature> sign_attestation(const crypto::PrivateKey& checker_key, const Attestation& a,
                                           const AttestationDomain& domain) {
  if (checker_key.address() != a.checker) {
    return fail(ErrorCode::kInvalidArgument, "the attestation names another checker than the signing key");
  }
  auto digest = attestation_digest(a, domain);
  if (!digest) return std::unexpected(digest.error());
  return checker_key.sign_digest(*digest);
}

Result<void> verify_attestation(const Attestation& a, const crypto::Signature& signature,
                                const AttestationDomain& domain) {
  auto digest = attestation_digest(a, domain);
  if (!digest) return std::unexpected(digest.error());
  auto signer = crypto::recover_address(*digest, signature);
  if (!signer || *signer != a.checker) {
    return fail(ErrorCode::kUnauthenticated, "the attestation's signature is not its checker's");
  }
  return {};
}

}  // namespace kaisar::popw
