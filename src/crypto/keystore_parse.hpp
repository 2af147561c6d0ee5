#pragma once

// Internal: the keystore parser on its own, before any key derivation, so the fuzzer can
// exercise it at full speed. Not part of the public crypto API.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/bytes.hpp"
#include "crypto/address.hpp"
#include "crypto/keystore.hpp"

namespace kaisar::crypto {

enum class KeystoreKdf { kScrypt, kPbkdf2 };

struct ParsedKeystore {
  KeystoreKdf kdf = KeystoreKdf::kScrypt;
  ScryptParams scrypt;          // when kdf == kScrypt
  std::uint32_t pbkdf2_c = 0;   // when kdf == kPbkdf2 (prf is always hmac-sha256)
  Bytes salt;
  std::array<std::uint8_t, 16> iv{};
  Bytes ciphertext;             // always 32 bytes: a secp256k1 secret
  Hash32 mac{};
  std::optional<Address> address;
};

// Validates every field, including the KDF cost limits documented on keystore_decrypt.
Result<ParsedKeystore> parse_keystore(std::string_view json) noexcept;

}  // namespace kaisar::crypto
