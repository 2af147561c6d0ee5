#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "crypto/address.hpp"

namespace kaisar::crypto {

// A recoverable ECDSA signature r || s || v, v in {27, 28} (as personal_sign returns it).
struct Signature {
  std::array<std::uint8_t, 65> rsv{};

  // Accepts 65 bytes of hex; v may be 0/1 or 27/28 and is normalised to 27/28.
  // High-s signatures are rejected (EIP-2 malleability rule).
  static Result<Signature> parse(std::string_view hex) noexcept;
  static Result<Signature> from_bytes(ByteView bytes) noexcept;
  std::string to_hex() const { return kaisar::to_hex(rsv); }
  std::uint8_t recovery_id() const { return static_cast<std::uint8_t>(rsv[64] - 27); }
};

class PrivateKey {
 public:
  // Fails unless 0 < key < n.
  static Result<PrivateKey> from_bytes(ByteView bytes) noexcept;
  static Result<PrivateKey> from_hex(std::string_view hex) noexcept;
  // A fresh key from the OS CSPRNG.
  static PrivateKey generate();

  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;
  ~PrivateKey();  // wipes the secret

  const std::array<std::uint8_t, 32>& bytes() const { return secret_; }
  // 64 bytes X || Y (no 0x04 prefix), the form Ethereum hashes into an address.
  std::array<std::uint8_t, 64> public_key() const;
  Address address() const;

  // Deterministic (RFC 6979) low-s signature of a 32-byte digest.
  Signature sign_digest(const Hash32& digest) const;

 private:
  PrivateKey() = default;
  std::array<std::uint8_t, 32> secret_{};
};

// The address whose key produced `sig` over `digest`.
Result<Address> recover_address(const Hash32& digest, const Signature& sig) noexcept;
// The 64-byte public key that produced `sig` over `digest`.
Result<std::array<std::uint8_t, 64>> recover_public_key(const Hash32& digest, const Signature& sig) noexcept;

Address address_from_public_key(const std::array<std::uint8_t, 64>& public_key) noexcept;

}  // namespace kaisar::crypto
