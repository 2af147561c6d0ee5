#include "provider/identity.hpp"

#include <boost/json.hpp>
#include <filesystem>

#include "core/protocol.hpp"
#include "core/time.hpp"
#include "crypto/eip191.hpp"
#include "store/files.hpp"

namespace kaisar::provider {

namespace fs = std::filesystem;
namespace json = boost::json;

Result<InitResult> init_identity(const std::string& data_dir, const crypto::PrivateKey& owner_key,
                                 std::string_view password, bool created_wallet, crypto::ScryptParams scrypt, Role role) {
  const std::string owner_path = (fs::path(data_dir) / "owner.json").string();
  const std::string node_path = (fs::path(data_dir) / "node.key").string();
  const std::string binding_path = (fs::path(data_dir) / "binding.json").string();

  if (auto existing = store::read_file(owner_path)) {
    auto address = crypto::keystore_address(*existing);
    if (address && *address != owner_key.address()) {
      return fail(ErrorCode::kConflict, owner_path + " already holds wallet " + address->to_checksum() +
                                            "; use another --data dir or remove it first");
    }
  } else {
    auto w = store::write_file_atomic(owner_path, crypto::keystore_encrypt(owner_key, password, scrypt), 0600);
    if (!w) return std::unexpected(w.error());
  }

  std::optional<crypto::PrivateKey> node_key;
  if (auto text = store::read_file(node_path, 1024)) {
    std::string trimmed = *text;
    while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.pop_back();
    auto k = crypto::PrivateKey::from_hex(trimmed);
    if (!k) return fail(ErrorCode::kInvalidArgument, node_path + " does not hold a node key: " + k.error().message);
    node_key = *k;
  } else {
    node_key = crypto::PrivateKey::generate();
    auto w = store::write_file_atomic(node_path, to_hex(node_key->bytes()) + "\n", 0600);
    if (!w) return std::unexpected(w.error());
  }

  const crypto::Address node = node_key->address();
  const crypto::Address owner = owner_key.address();
  const std::string issued_at = format_rfc3339(std::chrono::system_clock::now());
  auto sig = crypto::personal_sign(owner_key, role == Role::kChecker
                                                  ? protocol::checker_binding_message(node.to_checksum(), owner.to_checksum(), issued_at)
                                                  : protocol::binding_message(node.to_checksum(), owner.to_checksum(), issued_at));
  json::object binding{{"node", node.to_checksum()},
                       {"owner", owner.to_checksum()},
                       {"issued_at", issued_at},
                       {"signature", sig.to_hex()}};
  auto w = store::write_file_atomic(binding_path, json::serialize(binding) + "\n", 0644);
  if (!w) return std::unexpected(w.error());
  return InitResult{owner, node, created_wallet};
}

Result<ProviderIdentity> load_identity(const std::string& data_dir, Role role) {
  const std::string init = role == Role::kChecker ? "`kaisar checker init`" : "`kaisar provider init`";
  const std::string node_path = (fs::path(data_dir) / "node.key").string();
  const std::string binding_path = (fs::path(data_dir) / "binding.json").string();
  auto node_text = store::read_file(node_path, 1024);
  if (!node_text) {
    return fail(ErrorCode::kNotFound, "no identity in " + data_dir + ": run " + init + " first");
  }
  std::string trimmed = *node_text;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) trimmed.pop_back();
  auto node_key = crypto::PrivateKey::from_hex(trimmed);
  if (!node_key) return fail(ErrorCode::kInvalidArgument, node_path + ": " + node_key.error().message);
  auto binding_text = store::read_file(binding_path, 1 << 16);
  if (!binding_text) return fail(ErrorCode::kNotFound, binding_path + " is missing: run " + init + " again");
  boost::system::error_code ec;
  auto v = json::parse(*binding_text, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kInvalidArgument, binding_path + " is not a JSON object");
  const auto& o = v.get_object();
  auto str = [&](const char* key) -> std::string {
    auto it = o.find(key);
    return it != o.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string{};
  };
  auto owner = crypto::Address::parse(str("owner"));
  auto sig = crypto::Signature::parse(str("signature"));
  auto node = crypto::Address::parse(str("node"));
  if (!owner || !sig || !node) return fail(ErrorCode::kInvalidArgument, binding_path + " is malformed");
  if (*node != node_key->address()) {
    return fail(ErrorCode::kInvalidArgument, binding_path + " binds another node key: run " + init + " again");
  }
  return ProviderIdentity{*node_key, *owner, str("issued_at"), *sig};
}

json::object signed_hello(const ProviderIdentity& identity, std::string_view nonce) {
  return json::object{{"type", "hello"},
                      {"v", protocol::kVersion},
                      {"node", identity.node_key.address().to_checksum()},
                      {"signature", crypto::personal_sign(identity.node_key, protocol::auth_message(nonce)).to_hex()},
                      {"binding", json::object{{"owner", identity.owner.to_checksum()},
                                               {"issued_at", identity.binding_issued_at},
                                               {"signature", identity.binding_signature.to_hex()}}}};
}

}  // namespace kaisar::provider
