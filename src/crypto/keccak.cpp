#include "crypto/keccak.hpp"

#include <cryptopp/keccak.h>
#include <openssl/evp.h>

#include <cstdlib>

namespace kaisar::crypto {

Hash32 keccak256(ByteView data) noexcept {
  Hash32 out{};
  CryptoPP::Keccak_256 hasher;
  hasher.Update(data.data(), data.size());
  hasher.Final(out.data());
  return out;
}

Hash32 sha256(ByteView data) noexcept {
  Hash32 out{};
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; a silent zero hash would be worse than a crash.
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size()) {
    std::abort();
  }
  return out;
}

}  // namespace kaisar::crypto
