#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace kaisar::gateway {

// The gateway's TLS identity: a certificate and its private key (PEM), and the SHA-256 of
// the certificate (DER, lower-case hex) that agents pin.
struct TlsIdentity {
  std::string certificate_pem;
  std::string private_key_pem;
  std::string sha256;
};

// Reads the certificate and key from `cert` and `key`; when neither exists, creates a
// self-signed P-256 certificate for `common_name` (ten years) and writes both (the key
// 0600). One without the other is an error, as is a key that does not match.
Result<TlsIdentity> load_or_create_identity(const std::filesystem::path& cert, const std::filesystem::path& key,
                                            const std::string& common_name);

// SHA-256 of a PEM certificate's DER bytes, lower-case hex.
Result<std::string> certificate_sha256(std::string_view certificate_pem);

}  // namespace kaisar::gateway
