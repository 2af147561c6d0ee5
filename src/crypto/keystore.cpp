#include "crypto/keystore.hpp"

#include <cryptopp/scrypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/json.hpp>

#include <memory>
#include <stdexcept>

#include "crypto/keccak.hpp"
#include "crypto/keystore_parse.hpp"
#include "crypto/random.hpp"

namespace kaisar::crypto {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxKeystoreSize = 64 * 1024;
constexpr std::size_t kDerivedKeySize = 32;
// Cost ceilings: geth's "standard" scrypt (n=2^18, r=8, p=1) is well inside them; anything
// above would let a hostile keystore pin a core or allocate gigabytes.
constexpr std::uint64_t kMaxScryptN = 1U << 20;
constexpr std::uint64_t kMaxScryptR = 32;
constexpr std::uint64_t kMaxScryptP = 16;
constexpr std::uint64_t kMaxScryptMemory = 1ULL << 30;  // 128 * n * r bytes
constexpr std::uint64_t kMaxScryptWork = 1ULL << 24;    // n * r * p
constexpr std::uint64_t kMaxPbkdf2C = 10'000'000;
constexpr std::size_t kMaxSaltSize = 1024;
constexpr std::size_t kMaxPasswordSize = 1 << 20;

std::unexpected<Error> bad_field(std::string_view field, std::string_view problem) {
  return fail(ErrorCode::kInvalidArgument, "keystore field " + std::string(field) + " " + std::string(problem));
}

// Guards secret buffers so every return path wipes them.
class SecretBytes {
 public:
  explicit SecretBytes(std::size_t size) : bytes_(size) {}
  ~SecretBytes() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  std::uint8_t* data() { return bytes_.data(); }
  const std::uint8_t* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }
  ByteView view() const { return bytes_; }

 private:
  Bytes bytes_;
};

const json::object* object_field(const json::object& parent, std::string_view name) {
  const json::value* v = parent.if_contains(name);
  return v == nullptr ? nullptr : v->if_object();
}

Result<std::string_view> string_field(const json::object& parent, std::string_view name, std::string_view path) {
  const json::value* v = parent.if_contains(name);
  if (v == nullptr) return bad_field(path, "is missing");
  const json::string* s = v->if_string();
  if (s == nullptr) return bad_field(path, "must be a string");
  return std::string_view(*s);
}

Result<std::uint64_t> uint_field(const json::object& parent, std::string_view name, std::string_view path) {
  const json::value* v = parent.if_contains(name);
  if (v == nullptr) return bad_field(path, "is missing");
  if (const auto* u = v->if_uint64()) return *u;
  if (const auto* i = v->if_int64()) {
    if (*i >= 0) return static_cast<std::uint64_t>(*i);
  }
  return bad_field(path, "must be a non-negative integer");
}

Result<Bytes> hex_field(const json::object& parent, std::string_view name, std::string_view path) {
  auto text = string_field(parent, name, path);
  if (!text) return std::unexpected(text.error());
  auto bytes = kaisar::from_hex(*text);
  if (!bytes) return bad_field(path, "is not valid hex");
  return bytes;
}

Result<void> check_scrypt(const ScryptParams& p) {
  if (p.n < 2 || (p.n & (p.n - 1)) != 0) return bad_field("crypto.kdfparams.n", "must be a power of two above 1");
  if (p.n > kMaxScryptN) return bad_field("crypto.kdfparams.n", "is above the limit of 2^20");
  if (p.r == 0 || p.r > kMaxScryptR) return bad_field("crypto.kdfparams.r", "must be between 1 and 32");
  if (p.p == 0 || p.p > kMaxScryptP) return bad_field("crypto.kdfparams.p", "must be between 1 and 16");
  if (128 * p.n * p.r > kMaxScryptMemory) return bad_field("crypto.kdfparams", "needs more than 1 GiB of memory (n*r)");
  if (p.n * p.r * p.p > kMaxScryptWork) return bad_field("crypto.kdfparams", "needs too much work (n*r*p)");
  return {};
}

Result<ParsedKeystore> parse(std::string_view text) {
  if (text.size() > kMaxKeystoreSize) return fail(ErrorCode::kInvalidArgument, "keystore is larger than 64 KiB");
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return fail(ErrorCode::kInvalidArgument, "keystore is not valid JSON: " + ec.message());
  const json::object* top = root.if_object();
  if (top == nullptr) return fail(ErrorCode::kInvalidArgument, "keystore must be a JSON object");

  ParsedKeystore out;
  auto version = uint_field(*top, "version", "version");
  if (!version) return std::unexpected(version.error());
  if (*version != 3) return bad_field("version", "must be 3");

  const json::object* crypto = object_field(*top, "crypto");
  if (crypto == nullptr) crypto = object_field(*top, "Crypto");  // older geth spelling
  if (crypto == nullptr) return bad_field("crypto", "is missing or not an object");

  auto cipher = string_field(*crypto, "cipher", "crypto.cipher");
  if (!cipher) return std::unexpected(cipher.error());
  if (*cipher != "aes-128-ctr") return bad_field("crypto.cipher", "must be aes-128-ctr");
  const json::object* cipherparams = object_field(*crypto, "cipherparams");
  if (cipherparams == nullptr) return bad_field("crypto.cipherparams", "is missing or not an object");
  auto iv = hex_field(*cipherparams, "iv", "crypto.cipherparams.iv");
  if (!iv) return std::unexpected(iv.error());
  if (iv->size() != out.iv.size()) return bad_field("crypto.cipherparams.iv", "must be 16 bytes");
  std::copy(iv->begin(), iv->end(), out.iv.begin());

  auto ciphertext = hex_field(*crypto, "ciphertext", "crypto.ciphertext");
  if (!ciphertext) return std::unexpected(ciphertext.error());
  if (ciphertext->size() != 32) return bad_field("crypto.ciphertext", "must be 32 bytes");
  out.ciphertext = std::move(*ciphertext);

  auto mac = hex_field(*crypto, "mac", "crypto.mac");
  if (!mac) return std::unexpected(mac.error());
  if (mac->size() != out.mac.size()) return bad_field("crypto.mac", "must be 32 bytes");
  std::copy(mac->begin(), mac->end(), out.mac.begin());

  auto kdf = string_field(*crypto, "kdf", "crypto.kdf");
  if (!kdf) return std::unexpected(kdf.error());
  const json::object* kdfparams = object_field(*crypto, "kdfparams");
  if (kdfparams == nullptr) return bad_field("crypto.kdfparams", "is missing or not an object");
  auto dklen = uint_field(*kdfparams, "dklen", "crypto.kdfparams.dklen");
  if (!dklen) return std::unexpected(dklen.error());
  if (*dklen != kDerivedKeySize) return bad_field("crypto.kdfparams.dklen", "must be 32");
  auto salt = hex_field(*kdfparams, "salt", "crypto.kdfparams.salt");
  if (!salt) return std::unexpected(salt.error());
  if (salt->empty() || salt->size() > kMaxSaltSize) return bad_field("crypto.kdfparams.salt", "must be 1 to 1024 bytes");
  out.salt = std::move(*salt);

  if (*kdf == "scrypt") {
    out.kdf = KeystoreKdf::kScrypt;
    auto n = uint_field(*kdfparams, "n", "crypto.kdfparams.n");
    if (!n) return std::unexpected(n.error());
    auto r = uint_field(*kdfparams, "r", "crypto.kdfparams.r");
    if (!r) return std::unexpected(r.error());
    auto p = uint_field(*kdfparams, "p", "crypto.kdfparams.p");
    if (!p) return std::unexpected(p.error());
    if (*n > kMaxScryptN) return bad_field("crypto.kdfparams.n", "is above the limit of 2^20");
    if (*r > kMaxScryptR) return bad_field("crypto.kdfparams.r", "must be between 1 and 32");
    if (*p > kMaxScryptP) return bad_field("crypto.kdfparams.p", "must be between 1 and 16");
    out.scrypt = {*n, static_cast<std::uint32_t>(*r), static_cast<std::uint32_t>(*p)};
    auto ok = check_scrypt(out.scrypt);
    if (!ok) return std::unexpected(ok.error());
  } else if (*kdf == "pbkdf2") {
    out.kdf = KeystoreKdf::kPbkdf2;
    auto prf = string_field(*kdfparams, "prf", "crypto.kdfparams.prf");
    if (!prf) return std::unexpected(prf.error());
    if (*prf != "hmac-sha256") return bad_field("crypto.kdfparams.prf", "must be hmac-sha256");
    auto c = uint_field(*kdfparams, "c", "crypto.kdfparams.c");
    if (!c) return std::unexpected(c.error());
    if (*c == 0 || *c > kMaxPbkdf2C) return bad_field("crypto.kdfparams.c", "must be between 1 and 10000000");
    out.pbkdf2_c = static_cast<std::uint32_t>(*c);
  } else {
    return bad_field("crypto.kdf", "must be scrypt or pbkdf2");
  }

  if (const json::value* address = top->if_contains("address"); address != nullptr) {
    const json::string* s = address->if_string();
    if (s == nullptr) return bad_field("address", "must be a string");
    std::string text_address(*s);
    if (!text_address.starts_with("0x") && !text_address.starts_with("0X")) text_address = "0x" + text_address;
    auto parsed = Address::parse(text_address);
    if (!parsed) return bad_field("address", "is not a valid address");
    out.address = *parsed;
  }
  return out;
}

// Returns false only if OpenSSL fails (allocation); parameters were validated by parse/check_scrypt.
bool derive_key(const ParsedKeystore& ks, std::string_view password, SecretBytes& key) {
  if (ks.kdf == KeystoreKdf::kScrypt) {
    // OpenSSL enforces RFC 7914's n < 2^(16 r), which geth does not: the Web3 Secret Storage
    // reference vector itself uses r = 1, n = 2^18. Crypto++ derives those.
    if (ks.scrypt.r < 4 && ks.scrypt.n >= (std::uint64_t{1} << (16 * ks.scrypt.r))) {
      try {
        CryptoPP::Scrypt scrypt;
        scrypt.DeriveKey(key.data(), key.size(), reinterpret_cast<const CryptoPP::byte*>(password.data()),
                         password.size(), ks.salt.data(), ks.salt.size(), ks.scrypt.n, ks.scrypt.r, ks.scrypt.p);
        return true;
      } catch (const CryptoPP::Exception&) {
        return false;
      }
    }
    const std::uint64_t maxmem = 128 * ks.scrypt.r * (ks.scrypt.n + 2) + 128 * ks.scrypt.r * ks.scrypt.p + (1U << 20);
    return EVP_PBE_scrypt(password.data(), password.size(), ks.salt.data(), ks.salt.size(), ks.scrypt.n, ks.scrypt.r,
                          ks.scrypt.p, maxmem, key.data(), key.size()) == 1;
  }
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), ks.salt.data(),
                           static_cast<int>(ks.salt.size()), static_cast<int>(ks.pbkdf2_c), EVP_sha256(),
                           static_cast<int>(key.size()), key.data()) == 1;
}

// AES-128-CTR is its own inverse.
bool aes_128_ctr(const std::uint8_t* key, const std::array<std::uint8_t, 16>& iv, ByteView in, std::uint8_t* out) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx) return false;
  int len = 0;
  int final_len = 0;
  return EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_ctr(), nullptr, key, iv.data()) == 1 &&
         EVP_EncryptUpdate(ctx.get(), out, &len, in.data(), static_cast<int>(in.size())) == 1 &&
         EVP_EncryptFinal_ex(ctx.get(), out + len, &final_len) == 1 &&
         static_cast<std::size_t>(len + final_len) == in.size();
}

Hash32 keystore_mac(const SecretBytes& derived, ByteView ciphertext) {
  Bytes data(derived.data() + 16, derived.data() + 32);
  data.insert(data.end(), ciphertext.begin(), ciphertext.end());
  return keccak256(ByteView(data));
}

}  // namespace

Result<ParsedKeystore> parse_keystore(std::string_view json) noexcept {
  try {
    return parse(json);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInvalidArgument, std::string("keystore could not be parsed: ") + e.what());
  }
}

Result<PrivateKey> keystore_decrypt(std::string_view json, std::string_view password) noexcept {
  try {
    auto ks = parse(json);
    if (!ks) return std::unexpected(ks.error());
    if (password.size() > kMaxPasswordSize) return fail(ErrorCode::kInvalidArgument, "password is longer than 1 MiB");
    SecretBytes derived(kDerivedKeySize);
    if (!derive_key(*ks, password, derived)) return fail(ErrorCode::kInternal, "keystore key derivation failed");
    const Hash32 mac = keystore_mac(derived, ks->ciphertext);
    if (!equal_constant_time(mac, ks->mac)) return fail(ErrorCode::kUnauthenticated, "wrong password");
    SecretBytes plain(ks->ciphertext.size());
    if (!aes_128_ctr(derived.data(), ks->iv, ks->ciphertext, plain.data())) {
      return fail(ErrorCode::kInternal, "keystore decryption failed");
    }
    auto key = PrivateKey::from_bytes(plain.view());
    if (!key) return fail(ErrorCode::kInvalidArgument, "keystore holds an invalid private key");
    if (ks->address && *ks->address != key->address()) {
      return bad_field("address", "does not match the encrypted key");
    }
    return key;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("keystore decryption failed: ") + e.what());
  }
}

Result<Address> keystore_address(std::string_view json) noexcept {
  try {
    auto ks = parse(json);
    if (!ks) return std::unexpected(ks.error());
    if (!ks->address) return bad_field("address", "is missing");
    return *ks->address;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInvalidArgument, std::string("keystore could not be parsed: ") + e.what());
  }
}

std::string keystore_encrypt(const PrivateKey& key, std::string_view password, ScryptParams params) {
  if (password.size() > kMaxPasswordSize) throw std::invalid_argument("password is longer than 1 MiB");
  if (auto ok = check_scrypt(params); !ok) throw std::invalid_argument(ok.error().message);
  ParsedKeystore ks;
  ks.kdf = KeystoreKdf::kScrypt;
  ks.scrypt = params;
  ks.salt.resize(32);
  random_bytes(ks.salt);
  random_bytes(ks.iv);
  SecretBytes derived(kDerivedKeySize);
  if (!derive_key(ks, password, derived)) throw std::runtime_error("keystore key derivation failed");
  ks.ciphertext.resize(32);
  if (!aes_128_ctr(derived.data(), ks.iv, key.bytes(), ks.ciphertext.data())) {
    throw std::runtime_error("keystore encryption failed");
  }
  const Hash32 mac = keystore_mac(derived, ks.ciphertext);

  json::object kdfparams;
  kdfparams["dklen"] = kDerivedKeySize;
  kdfparams["n"] = params.n;
  kdfparams["r"] = params.r;
  kdfparams["p"] = params.p;
  kdfparams["salt"] = kaisar::to_hex(ks.salt, false);
  json::object crypto;
  crypto["cipher"] = "aes-128-ctr";
  crypto["cipherparams"] = json::object{{"iv", kaisar::to_hex(ks.iv, false)}};
  crypto["ciphertext"] = kaisar::to_hex(ks.ciphertext, false);
  crypto["kdf"] = "scrypt";
  crypto["kdfparams"] = std::move(kdfparams);
  crypto["mac"] = kaisar::to_hex(mac, false);
  json::object root;
  // geth writes the address as bare lower-case hex.
  root["address"] = kaisar::to_hex(key.address().bytes(), false);
  root["crypto"] = std::move(crypto);
  root["id"] = random_uuid();
  root["version"] = 3;
  return json::serialize(root);
}

}  // namespace kaisar::crypto
