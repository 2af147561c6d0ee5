#include "gateway/tls.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include "core/bytes.hpp"

namespace kaisar::gateway {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string{};
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kUnavailable, "cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Result<void> write_text(const std::filesystem::path& path, const std::string& text, std::filesystem::perms perms) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  const auto partial = path.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) return fail(ErrorCode::kUnavailable, "cannot write " + partial);
    std::filesystem::permissions(partial, perms, ec);
    out << text;
    if (!out.flush()) return fail(ErrorCode::kUnavailable, "cannot write " + partial);
  }
  std::filesystem::rename(partial, path, ec);
  if (ec) return fail(ErrorCode::kUnavailable, "cannot write " + path.string() + ": " + ec.message());
  return {};
}

X509Ptr parse_certificate(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

Result<TlsIdentity> create(const std::string& common_name) {
  KeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) return fail(ErrorCode::kInternal, "cannot create a TLS key");
  std::uint8_t serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return fail(ErrorCode::kInternal, "no randomness for a certificate");
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_bin2bn(serial, sizeof serial, nullptr), BN_free);
  X509_set_version(cert.get(), 2);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return fail(ErrorCode::kInternal, "cannot sign the certificate");
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail(ErrorCode::kInternal, "cannot encode the certificate");
  }
  TlsIdentity id{bio_text(cert_bio.get()), bio_text(key_bio.get()), {}};
  auto sha = certificate_sha256(id.certificate_pem);
  if (!sha) return std::unexpected(sha.error());
  id.sha256 = *sha;
  return id;
}

}  // namespace

Result<std::string> certificate_sha256(std::string_view certificate_pem) {
  X509Ptr cert = parse_certificate(certificate_pem);
  if (!cert) return fail(ErrorCode::kInvalidArgument, "not a PEM certificate");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert.get(), EVP_sha256(), digest, &n) != 1) return fail(ErrorCode::kInternal, "cannot hash the certificate");
  return to_hex(ByteView(digest, n), false);
}

Result<TlsIdentity> load_or_create_identity(const std::filesystem::path& cert, const std::filesystem::path& key,
                                            const std::string& common_name) {
  const bool have_cert = std::filesystem::exists(cert);
  const bool have_key = std::filesystem::exists(key);
  if (!have_cert && !have_key) {
    auto id = create(common_name);
    if (!id) return id;
    using std::filesystem::perms;
    if (auto w = write_text(key, id->private_key_pem, perms::owner_read | perms::owner_write); !w) return std::unexpected(w.error());
    if (auto w = write_text(cert, id->certificate_pem, perms::owner_read | perms::owner_write | perms::group_read | perms::others_read);
        !w) {
      return std::unexpected(w.error());
    }
    return id;
  }
  if (!have_cert || !have_key) {
    return fail(ErrorCode::kInvalidArgument, "the gateway needs both its certificate (" + cert.string() + ") and key (" +
                                                 key.string() + "), or neither (then it makes its own)");
  }
  auto cert_pem = read_text(cert);
  if (!cert_pem) return std::unexpected(cert_pem.error());
  auto key_pem = read_text(key);
  if (!key_pem) return std::unexpected(key_pem.error());
  X509Ptr parsed = parse_certificate(*cert_pem);
  if (!parsed) return fail(ErrorCode::kInvalidArgument, cert.string() + " holds no PEM certificate");
  BioPtr bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  KeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!pkey) return fail(ErrorCode::kInvalidArgument, key.string() + " holds no PEM private key (without a passphrase)");
  if (X509_check_private_key(parsed.get(), pkey.get()) != 1) {
    return fail(ErrorCode::kInvalidArgument, key.string() + " is not the key of " + cert.string());
  }
  auto sha = certificate_sha256(*cert_pem);
  if (!sha) return std::unexpected(sha.error());
  return TlsIdentity{std::move(*cert_pem), std::move(*key_pem), std::move(*sha)};
}

}  // namespace kaisar::gateway
