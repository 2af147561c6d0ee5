#pragma once

#include <string_view>

#include "core/bytes.hpp"
#include "crypto/secp256k1.hpp"

namespace kaisar::crypto {

// EIP-191 version 0x45 ("personal_sign"):
// keccak256("\x19Ethereum Signed Message:\n" + decimal(len(message)) + message).
Hash32 personal_message_hash(ByteView message) noexcept;
inline Hash32 personal_message_hash(std::string_view message) noexcept {
  return personal_message_hash(as_bytes(message));
}

Signature personal_sign(const PrivateKey& key, std::string_view message);
Result<Address> recover_personal_signer(std::string_view message, const Signature& sig) noexcept;

}  // namespace kaisar::crypto
