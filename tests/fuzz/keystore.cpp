// libFuzzer target for the keystore parser and decryptor (untrusted JSON from disk or the
// user). Links kaisar_crypto.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/keystore.hpp"
#include "crypto/keystore_parse.hpp"

namespace {

// Only inputs whose KDF costs about a millisecond go on to key derivation; the cost limits
// themselves are checked by parse_keystore, which every input goes through.
bool cheap_kdf(const kaisar::crypto::ParsedKeystore& ks) {
  if (ks.kdf == kaisar::crypto::KeystoreKdf::kPbkdf2) return ks.pbkdf2_c <= 10'000;
  return ks.scrypt.n * ks.scrypt.r * ks.scrypt.p <= (1U << 13);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = kaisar::crypto::parse_keystore(text);
  if (!parsed || !cheap_kdf(*parsed)) return 0;
  // The seeds are encrypted with this password, so mutations reach AES and key validation.
  auto key = kaisar::crypto::keystore_decrypt(text, "fuzz");
  if (key) (void)key->address();
  (void)kaisar::crypto::keystore_address(text);
  return 0;
}
