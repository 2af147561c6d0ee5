#pragma once

#include <boost/json/object.hpp>

#include <optional>
#include <string>

#include "core/error.hpp"
#include "crypto/keystore.hpp"
#include "crypto/secp256k1.hpp"

namespace kaisar::provider {

// A provider's identity in its data dir:
//   owner.json    the owner wallet (keystore v3, password protected)
//   node.key      the node key, hex, mode 0600: the agent runs unattended with it
//   binding.json  the owner's signature binding node key → wallet (public)
struct ProviderIdentity {
  crypto::PrivateKey node_key;
  crypto::Address owner;
  std::string binding_issued_at;
  crypto::Signature binding_signature;
};

// What the owner's binding lets the node key do: provide compute or check providers (a
// different signed text each, so one never serves as the other).
enum class Role { kProvider, kChecker };

struct InitResult {
  crypto::Address owner;
  crypto::Address node;
  bool created_wallet = false;
};

// Creates (or keeps) the node key, stores `owner_key` as owner.json encrypted with
// `password`, and signs the binding. Refuses to replace an existing owner.json with a
// different wallet.
Result<InitResult> init_identity(const std::string& data_dir, const crypto::PrivateKey& owner_key,
                                 std::string_view password, bool created_wallet,
                                 crypto::ScryptParams scrypt = {}, Role role = Role::kProvider);
Result<ProviderIdentity> load_identity(const std::string& data_dir, Role role = Role::kProvider);

// The hello that answers a channel's challenge (core/protocol.hpp): the node key's signature
// of the one-time nonce and the owner's binding. Agents add what they describe of themselves.
boost::json::object signed_hello(const ProviderIdentity& identity, std::string_view nonce);

}  // namespace kaisar::provider
