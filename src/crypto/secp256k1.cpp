#include "crypto/secp256k1.hpp"

#include <openssl/crypto.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include <algorithm>
#include <cstdlib>

#include "crypto/keccak.hpp"
#include "crypto/random.hpp"

namespace kaisar::crypto {

namespace {

// Group order n / 2, big-endian. EIP-2: an s above it is the malleated twin of a valid one.
constexpr std::array<std::uint8_t, 32> kHalfOrder = {
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};
constexpr std::array<std::uint8_t, 32> kOrder = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

// One context for the process, randomized once against side channels. libsecp256k1 contexts
// are safe to share between threads for everything except randomize itself.
const secp256k1_context* context() {
  static secp256k1_context* const ctx = [] {
    secp256k1_context* c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (c == nullptr) std::abort();
    Hash32 seed = random_hash();
    if (secp256k1_context_randomize(c, seed.data()) != 1) std::abort();
    OPENSSL_cleanse(seed.data(), seed.size());
    return c;
  }();
  return ctx;
}

// Big-endian compare of 32-byte scalars.
int compare32(const std::uint8_t* a, const std::array<std::uint8_t, 32>& b) {
  for (std::size_t i = 0; i < 32; ++i) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

bool is_zero32(const std::uint8_t* a) {
  return std::all_of(a, a + 32, [](std::uint8_t b) { return b == 0; });
}

std::array<std::uint8_t, 64> serialize_public_key(const secp256k1_pubkey& pubkey) {
  std::array<std::uint8_t, 65> full{};
  std::size_t len = full.size();
  secp256k1_ec_pubkey_serialize(context(), full.data(), &len, &pubkey, SECP256K1_EC_UNCOMPRESSED);
  std::array<std::uint8_t, 64> out{};
  std::copy(full.begin() + 1, full.end(), out.begin());
  return out;
}

}  // namespace

Result<Signature> Signature::from_bytes(ByteView bytes) noexcept {
  if (bytes.size() != 65) {
    return fail(ErrorCode::kInvalidArgument, "signature must be 65 bytes (r, s, v), got " + std::to_string(bytes.size()));
  }
  const std::uint8_t* r = bytes.data();
  const std::uint8_t* s = bytes.data() + 32;
  std::uint8_t v = bytes[64];
  if (v == 0 || v == 1) v = static_cast<std::uint8_t>(v + 27);
  if (v != 27 && v != 28) {
    return fail(ErrorCode::kInvalidArgument, "signature v must be 0, 1, 27 or 28, got " + std::to_string(bytes[64]));
  }
  if (is_zero32(r) || compare32(r, kOrder) >= 0) {
    return fail(ErrorCode::kInvalidArgument, "signature r is out of range");
  }
  if (is_zero32(s)) return fail(ErrorCode::kInvalidArgument, "signature s is zero");
  if (compare32(s, kHalfOrder) > 0) {
    return fail(ErrorCode::kInvalidArgument, "signature has a high s value (EIP-2); re-sign with a canonical signer");
  }
  Signature sig;
  std::copy(bytes.begin(), bytes.end(), sig.rsv.begin());
  sig.rsv[64] = v;
  return sig;
}

Result<Signature> Signature::parse(std::string_view hex) noexcept {
  auto bytes = kaisar::from_hex(hex);
  if (!bytes) return fail(ErrorCode::kInvalidArgument, "signature is not valid hex: " + bytes.error().message);
  return from_bytes(*bytes);
}

Result<PrivateKey> PrivateKey::from_bytes(ByteView bytes) noexcept {
  if (bytes.size() != 32) {
    return fail(ErrorCode::kInvalidArgument, "private key must be 32 bytes, got " + std::to_string(bytes.size()));
  }
  PrivateKey key;
  std::copy(bytes.begin(), bytes.end(), key.secret_.begin());
  if (secp256k1_ec_seckey_verify(context(), key.secret_.data()) != 1) {
    return fail(ErrorCode::kInvalidArgument, "private key must be between 1 and the secp256k1 group order");
  }
  return key;
}

Result<PrivateKey> PrivateKey::from_hex(std::string_view hex) noexcept {
  auto bytes = kaisar::from_hex(hex);
  if (!bytes) return fail(ErrorCode::kInvalidArgument, "private key is not valid hex: " + bytes.error().message);
  auto key = from_bytes(*bytes);
  OPENSSL_cleanse(bytes->data(), bytes->size());
  return key;
}

PrivateKey PrivateKey::generate() {
  PrivateKey key;
  do {
    random_bytes(key.secret_);
  } while (secp256k1_ec_seckey_verify(context(), key.secret_.data()) != 1);
  return key;
}

PrivateKey::~PrivateKey() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

std::array<std::uint8_t, 64> PrivateKey::public_key() const {
  secp256k1_pubkey pubkey;
  // Cannot fail: the secret was validated on construction.
  if (secp256k1_ec_pubkey_create(context(), &pubkey, secret_.data()) != 1) std::abort();
  return serialize_public_key(pubkey);
}

Address PrivateKey::address() const { return address_from_public_key(public_key()); }

Signature PrivateKey::sign_digest(const Hash32& digest) const {
  secp256k1_ecdsa_recoverable_signature raw;
  // A null nonce function selects RFC 6979; libsecp256k1 always emits low-s.
  if (secp256k1_ecdsa_sign_recoverable(context(), &raw, digest.data(), secret_.data(), nullptr, nullptr) != 1) {
    std::abort();
  }
  Signature sig;
  int recid = 0;
  secp256k1_ecdsa_recoverable_signature_serialize_compact(context(), sig.rsv.data(), &recid, &raw);
  sig.rsv[64] = static_cast<std::uint8_t>(27 + recid);
  return sig;
}

Result<std::array<std::uint8_t, 64>> recover_public_key(const Hash32& digest, const Signature& sig) noexcept {
  const std::uint8_t v = sig.rsv[64];
  if (v != 27 && v != 28) return fail(ErrorCode::kInvalidArgument, "signature v must be 27 or 28");
  if (compare32(sig.rsv.data() + 32, kHalfOrder) > 0) {
    return fail(ErrorCode::kInvalidArgument, "signature has a high s value (EIP-2)");
  }
  secp256k1_ecdsa_recoverable_signature raw;
  if (secp256k1_ecdsa_recoverable_signature_parse_compact(context(), &raw, sig.rsv.data(), v - 27) != 1) {
    return fail(ErrorCode::kInvalidArgument, "signature r or s is out of range");
  }
  secp256k1_pubkey pubkey;
  if (secp256k1_ecdsa_recover(context(), &pubkey, &raw, digest.data()) != 1) {
    return fail(ErrorCode::kInvalidArgument, "signature does not recover to a public key");
  }
  return serialize_public_key(pubkey);
}

Result<Address> recover_address(const Hash32& digest, const Signature& sig) noexcept {
  auto pubkey = recover_public_key(digest, sig);
  if (!pubkey) return std::unexpected(pubkey.error());
  return address_from_public_key(*pubkey);
}

Address address_from_public_key(const std::array<std::uint8_t, 64>& public_key) noexcept {
  const Hash32 hash = keccak256(ByteView(public_key));
  std::array<std::uint8_t, 20> bytes{};
  std::copy(hash.begin() + 12, hash.end(), bytes.begin());
  return Address(bytes);
}

}  // namespace kaisar::crypto
