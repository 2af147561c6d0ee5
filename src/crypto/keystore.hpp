#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/secp256k1.hpp"

namespace kaisar::crypto {

// Web3 Secret Storage (keystore v3): scrypt KDF + AES-128-CTR + Keccak-256 MAC.
struct ScryptParams {
  std::uint64_t n = 262144;  // geth's "standard" cost; tests use a light one
  std::uint32_t r = 8;
  std::uint32_t p = 1;
};

inline constexpr ScryptParams kLightScrypt{4096, 8, 6};

// Returns the keystore JSON text (with "address", "id" (UUID v4), "version": 3).
std::string keystore_encrypt(const PrivateKey& key, std::string_view password, ScryptParams params = {});

// Parses untrusted keystore JSON. Supports kdf "scrypt" and "pbkdf2" (hmac-sha256),
// cipher "aes-128-ctr". Wrong password -> kUnauthenticated ("wrong password");
// malformed input -> kInvalidArgument naming the bad field. Rejects KDF parameters
// that would take unreasonable memory or time (n > 2^20, r*p too large, dklen != 32, c > 10M).
Result<PrivateKey> keystore_decrypt(std::string_view json, std::string_view password) noexcept;

// The address field of a keystore without decrypting it (for listing wallets).
Result<Address> keystore_address(std::string_view json) noexcept;

}  // namespace kaisar::crypto
