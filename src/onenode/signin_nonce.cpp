#include "onenode/signin_nonce.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <filesystem>

#include "core/bytes.hpp"
#include "crypto/random.hpp"
#include "store/files.hpp"

namespace kaisar::onenode {

Result<NonceKey> NonceKey::load_or_create(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    std::array<std::uint8_t, 32> fresh{};
    crypto::random_bytes(fresh);
    if (auto w = store::write_file_atomic(path, to_hex(fresh, false) + "\n", 0600); !w) return std::unexpected(w.error());
  }
  auto text = store::read_file(path, 4096);
  if (!text) return std::unexpected(text.error());
  std::string_view hex(*text);
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.remove_suffix(1);
  auto secret = from_hex_fixed<32>(hex);
  if (!secret) {
    return fail(ErrorCode::kInvalidArgument, path + " must hold 64 hex characters (the sign-in key): delete it to make a new one");
  }
  return NonceKey(*secret);
}

std::string NonceKey::nonce_for(std::string_view domain, const crypto::Address& address, std::string_view issued_at,
                                std::string_view expires_at) const {
  // Newline-separated: none of the fields can hold one (the SIWE grammar forbids it).
  std::string input = "kaisar sign-in nonce\n";
  input.append(domain).append("\n").append(address.to_lower_hex()).append("\n");
  input.append(issued_at).append("\n").append(expires_at);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac.data(), &length);
  return to_hex(ByteView(mac.data(), 16), false);
}

bool NonceKey::verify(std::string_view nonce, std::string_view domain, const crypto::Address& address,
                      std::string_view issued_at, std::string_view expires_at) const {
  const std::string expected = nonce_for(domain, address, issued_at, expires_at);
  return nonce.size() == expected.size() && CRYPTO_memcmp(nonce.data(), expected.data(), expected.size()) == 0;
}

}  // namespace kaisar::onenode
