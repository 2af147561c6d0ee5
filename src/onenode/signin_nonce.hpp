#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "crypto/address.hpp"

namespace kaisar::onenode {

// Stateless sign-in nonces: a nonce is an HMAC-SHA256, under a secret only this OneNode
// knows, of what it was issued for (domain, address, issued-at, expiry), so that issuing
// one stores nothing and strangers asking for millions cannot crowd out a real wallet.
class NonceKey {
 public:
  explicit NonceKey(const std::array<std::uint8_t, 32>& secret) : secret_(secret) {}
  // The key in `path` (hex), made with fresh randomness when missing, so that nonces
  // issued before a restart still verify after it.
  static Result<NonceKey> load_or_create(const std::string& path);

  // 32 hex characters (128 bits of the MAC): alphanumeric, as EIP-4361 asks.
  std::string nonce_for(std::string_view domain, const crypto::Address& address, std::string_view issued_at,
                        std::string_view expires_at) const;
  // Whether `nonce` is the one issued for these; constant time.
  bool verify(std::string_view nonce, std::string_view domain, const crypto::Address& address,
              std::string_view issued_at, std::string_view expires_at) const;

 private:
  std::array<std::uint8_t, 32> secret_;
};

}  // namespace kaisar::onenode
