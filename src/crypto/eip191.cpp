#include "crypto/eip191.hpp"

#include "crypto/keccak.hpp"

namespace kaisar::crypto {

Hash32 personal_message_hash(ByteView message) noexcept {
  const std::string prefix = "\x19" "Ethereum Signed Message:\n" + std::to_string(message.size());
  Bytes data(prefix.begin(), prefix.end());
  data.insert(data.end(), message.begin(), message.end());
  return keccak256(ByteView(data));
}

Signature personal_sign(const PrivateKey& key, std::string_view message) {
  return key.sign_digest(personal_message_hash(message));
}

Result<Address> recover_personal_signer(std::string_view message, const Signature& sig) noexcept {
  return recover_address(personal_message_hash(message), sig);
}

}  // namespace kaisar::crypto
