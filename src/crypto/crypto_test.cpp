#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "crypto/address.hpp"
#include "crypto/eip191.hpp"
#include "crypto/eip712.hpp"
#include "crypto/keccak.hpp"
#include "crypto/keystore.hpp"
#include "crypto/keystore_parse.hpp"
#include "crypto/merkle.hpp"
#include "crypto/random.hpp"
#include "crypto/secp256k1.hpp"
#include "eth_vectors.hpp"
#include "process.hpp"

namespace kaisar::crypto {
namespace {

namespace json = boost::json;

constexpr int kIterations = 20;
constexpr std::string_view kAnvilKey0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

// --- helpers ------------------------------------------------------------------------------

using testing::cast;

Bytes random_vector(std::size_t size) {
  Bytes out(size);
  random_bytes(out);
  return out;
}

std::string random_text(std::size_t size) {
  static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?-_";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) out += kAlphabet[random_below(kAlphabet.size())];
  return out;
}

std::string random_address_lower() { return to_hex(random_vector(20)); }

std::string hash_hex(const Hash32& h) { return to_hex(h); }

// A key that is already known to be valid.
PrivateKey key_from_hex(std::string_view hex) {
  auto key = PrivateKey::from_hex(hex);
  EXPECT_TRUE(key) << key.error().message;
  return key ? *key : PrivateKey::generate();
}

// --- keccak / sha256 ----------------------------------------------------------------------

TEST(Keccak, SharedVectors) {
  const json::value vectors = testing::load_eth_vectors();
  for (const json::value& v : testing::eth_vector_list(vectors, "keccak256")) {
    const std::string input(v.at("input_utf8").as_string());
    EXPECT_EQ(hash_hex(keccak256(std::string_view(input))), v.at("hash").as_string()) << "input: " << input;
  }
}

TEST(Keccak, MatchesCastOnRandomInput) {
  for (int i = 0; i < kIterations; ++i) {
    const Bytes data = random_vector(random_below(300));
    EXPECT_EQ(hash_hex(keccak256(ByteView(data))), cast({"keccak", to_hex(data)})) << to_hex(data);
  }
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hash_hex(sha256(as_bytes(""))), "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hash_hex(sha256(as_bytes("abc"))), "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// --- addresses ----------------------------------------------------------------------------

TEST(Address, SharedVectors) {
  const json::value vectors = testing::load_eth_vectors();
  for (const json::value& v : testing::eth_vector_list(vectors, "eip55_checksum")) {
    auto address = Address::parse(v.at("lower").as_string());
    ASSERT_TRUE(address) << address.error().message;
    EXPECT_EQ(address->to_checksum(), v.at("checksummed").as_string());
    EXPECT_EQ(address->to_lower_hex(), v.at("lower").as_string());
    auto again = Address::parse(v.at("checksummed").as_string());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(*again, *address);
  }
  for (const json::value& v : testing::eth_vector_list(vectors, "private_key_to_address")) {
    const PrivateKey key = key_from_hex(v.at("private_key").as_string());
    EXPECT_EQ(key.address().to_checksum(), v.at("address").as_string());
  }
}

TEST(Address, ChecksumMatchesCast) {
  for (int i = 0; i < kIterations; ++i) {
    const std::string lower = random_address_lower();
    auto address = Address::parse(lower);
    ASSERT_TRUE(address) << address.error().message;
    EXPECT_EQ(address->to_checksum(), cast({"to-check-sum-address", lower}));
  }
}

TEST(Address, FromPrivateKeyMatchesCast) {
  for (int i = 0; i < kIterations; ++i) {
    const PrivateKey key = PrivateKey::generate();
    EXPECT_EQ(key.address().to_checksum(), cast({"wallet", "address", "--private-key", to_hex(key.bytes())}));
  }
}

TEST(Address, ParseAcceptsUniformCaseAndRejectsBadChecksum) {
  const std::string checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
  std::string upper = checksummed;
  std::transform(upper.begin() + 2, upper.end(), upper.begin() + 2, [](char c) { return static_cast<char>(std::toupper(c)); });
  EXPECT_TRUE(Address::parse(upper));
  EXPECT_TRUE(Address::parse("0X5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"));

  std::string wrong = checksummed;
  wrong[3] = 'A';  // 'a' -> 'A' breaks the checksum but keeps mixed case
  auto r = Address::parse(wrong);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("checksum"), std::string::npos);

  EXPECT_FALSE(Address::parse("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"));    // no 0x
  EXPECT_FALSE(Address::parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea"));    // 19 bytes
  EXPECT_FALSE(Address::parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00"));  // 21 bytes
  EXPECT_FALSE(Address::parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg"));  // bad digit
  EXPECT_FALSE(Address::parse(""));

  EXPECT_TRUE(Address().is_zero());
  EXPECT_FALSE(Address::parse(checksummed)->is_zero());
}

// --- keys and signatures ------------------------------------------------------------------

TEST(PrivateKey, RejectsInvalidKeys) {
  const auto expect_invalid = [](std::string_view hex) {
    auto key = PrivateKey::from_hex(hex);
    ASSERT_FALSE(key) << hex;
    EXPECT_EQ(key.error().code, ErrorCode::kInvalidArgument);
  };
  expect_invalid("0x" + std::string(64, '0'));                                            // zero
  expect_invalid("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");  // n
  expect_invalid("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142");  // n + 1
  expect_invalid("0x" + std::string(64, 'f'));
  expect_invalid("0x" + std::string(62, '1'));  // 31 bytes
  expect_invalid("0x" + std::string(66, '1'));  // 33 bytes
  expect_invalid("0x" + std::string(63, '1'));  // odd length
  expect_invalid("0x" + std::string(63, '1') + "z");
  expect_invalid("");
  EXPECT_TRUE(PrivateKey::from_hex("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"));  // n - 1
  EXPECT_TRUE(PrivateKey::from_hex("0x" + std::string(63, '0') + "1"));
}

TEST(PrivateKey, PublicKeyRecoversToSameAddress) {
  const PrivateKey key = PrivateKey::generate();
  EXPECT_EQ(address_from_public_key(key.public_key()), key.address());
  const Hash32 digest = random_hash();
  const Signature sig = key.sign_digest(digest);
  auto pub = recover_public_key(digest, sig);
  ASSERT_TRUE(pub) << pub.error().message;
  EXPECT_EQ(*pub, key.public_key());
  auto address = recover_address(digest, sig);
  ASSERT_TRUE(address);
  EXPECT_EQ(*address, key.address());
  // A different digest recovers some other address.
  Hash32 other = digest;
  other[0] ^= 1;
  auto wrong = recover_address(other, sig);
  EXPECT_TRUE(!wrong || *wrong != key.address());
}

TEST(PersonalSign, SharedVectors) {
  const json::value vectors = testing::load_eth_vectors();
  for (const json::value& v : testing::eth_vector_list(vectors, "eip191_personal_sign")) {
    const PrivateKey key = key_from_hex(v.at("private_key").as_string());
    const std::string message(v.at("message_utf8").as_string());
    EXPECT_EQ(hash_hex(personal_message_hash(message)), v.at("message_hash").as_string());
    const Signature sig = personal_sign(key, message);
    EXPECT_EQ(sig.to_hex(), v.at("signature").as_string());
    auto parsed = Signature::parse(v.at("signature").as_string());
    ASSERT_TRUE(parsed) << parsed.error().message;
    auto signer = recover_personal_signer(message, *parsed);
    ASSERT_TRUE(signer) << signer.error().message;
    EXPECT_EQ(*signer, key.address());
  }
}

TEST(PersonalSign, MatchesCastSignAndVerify) {
  for (int i = 0; i < kIterations; ++i) {
    const PrivateKey key = PrivateKey::generate();
    // cast hex-decodes messages that start with 0x, so keep the first character a letter.
    const std::string message = "m" + random_text(random_below(80));
    const Signature sig = personal_sign(key, message);
    EXPECT_EQ(sig.to_hex(), cast({"wallet", "sign", "--private-key", to_hex(key.bytes()), message})) << message;
    const std::string verdict =
        cast({"wallet", "verify", "--address", key.address().to_checksum(), message, sig.to_hex()});
    // cast exits 0 even when validation fails, so read its verdict.
    EXPECT_NE(verdict.find("Validation succeeded"), std::string::npos) << verdict;
    auto signer = recover_personal_signer(message, sig);
    ASSERT_TRUE(signer);
    EXPECT_EQ(*signer, key.address());
  }
}

TEST(Signature, ParseNormalisesV) {
  const PrivateKey key = key_from_hex(kAnvilKey0);
  const Signature sig = personal_sign(key, "v test");
  Bytes raw(sig.rsv.begin(), sig.rsv.end());
  raw[64] = static_cast<std::uint8_t>(raw[64] - 27);
  auto from_01 = Signature::from_bytes(raw);
  ASSERT_TRUE(from_01) << from_01.error().message;
  EXPECT_EQ(from_01->rsv, sig.rsv);
  EXPECT_EQ(from_01->recovery_id(), sig.rsv[64] - 27);
}

TEST(Signature, RejectsMalformedAndMalleable) {
  const PrivateKey key = key_from_hex(kAnvilKey0);
  const Signature sig = personal_sign(key, "malleability");
  const auto expect_invalid = [](const Bytes& raw, std::string_view what) {
    auto r = Signature::from_bytes(raw);
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << what;
  };

  // High s: s' = n - s with the other recovery id is the same signature, mirrored (EIP-2).
  static constexpr std::array<std::uint8_t, 32> kOrder = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
      0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
  Bytes high(sig.rsv.begin(), sig.rsv.end());
  int borrow = 0;
  for (std::size_t i = 32; i-- > 0;) {
    int d = kOrder[i] - sig.rsv[32 + i] - borrow;
    borrow = d < 0 ? 1 : 0;
    high[32 + i] = static_cast<std::uint8_t>(d + (borrow != 0 ? 256 : 0));
  }
  high[64] = sig.rsv[64] == 27 ? 28 : 27;
  expect_invalid(high, "high s");
  auto high_text = Signature::parse(to_hex(high));
  ASSERT_FALSE(high_text);
  EXPECT_NE(high_text.error().message.find("high s"), std::string::npos);

  for (int v : {2, 26, 29, 35, 255}) {
    Bytes bad_v(sig.rsv.begin(), sig.rsv.end());
    bad_v[64] = static_cast<std::uint8_t>(v);
    expect_invalid(bad_v, "v = " + std::to_string(v));
  }
  Bytes zero_r(sig.rsv.begin(), sig.rsv.end());
  std::fill(zero_r.begin(), zero_r.begin() + 32, 0);
  expect_invalid(zero_r, "r = 0");
  Bytes zero_s(sig.rsv.begin(), sig.rsv.end());
  std::fill(zero_s.begin() + 32, zero_s.begin() + 64, 0);
  expect_invalid(zero_s, "s = 0");
  Bytes big_r(sig.rsv.begin(), sig.rsv.end());
  std::fill(big_r.begin(), big_r.begin() + 32, 0xff);
  expect_invalid(big_r, "r >= n");
  expect_invalid(Bytes(sig.rsv.begin(), sig.rsv.end() - 1), "64 bytes");
  expect_invalid(Bytes(66, 1), "66 bytes");
  EXPECT_FALSE(Signature::parse(sig.to_hex() + "z"));
  EXPECT_FALSE(Signature::parse("0xnothex"));

  // recover_* refuse a Signature whose fields were set by hand.
  Signature hand = sig;
  hand.rsv[64] = 31;
  EXPECT_FALSE(recover_address(random_hash(), hand));
}

// --- EIP-712 ------------------------------------------------------------------------------

constexpr std::string_view kMailTypedData = R"({
  "types": {
    "EIP712Domain": [
      {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
      {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
             {"name": "contents", "type": "string"}]
  },
  "primaryType": "Mail",
  "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
             "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
  "message": {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!"
  }
})";

TEST(Eip712, MailExampleFromTheEip) {
  const json::value typed = json::parse(kMailTypedData);
  const json::object& types = typed.at("types").as_object();
  auto encoded = eip712_encode_type(types, "Mail");
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_EQ(*encoded, "Mail(Person from,Person to,string contents)Person(string name,address wallet)");
  auto domain = eip712_hash_struct(types, "EIP712Domain", typed.at("domain"));
  ASSERT_TRUE(domain);
  EXPECT_EQ(hash_hex(*domain), "0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
  auto message = eip712_hash_struct(types, "Mail", typed.at("message"));
  ASSERT_TRUE(message);
  EXPECT_EQ(hash_hex(*message), "0xc52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e");
  auto digest = eip712_digest(typed);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(hash_hex(*digest), "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
}

TEST(Eip712, DependenciesAreSortedByName) {
  const json::value types = json::parse(R"({
    "Zoo": [{"name": "b", "type": "Beta[]"}, {"name": "a", "type": "Alpha"}],
    "Beta": [{"name": "a", "type": "Alpha[2]"}],
    "Alpha": [{"name": "x", "type": "uint8"}]})");
  auto encoded = eip712_encode_type(types.as_object(), "Zoo");
  ASSERT_TRUE(encoded) << encoded.error().message;
  EXPECT_EQ(*encoded, "Zoo(Beta[] b,Alpha a)Alpha(uint8 x)Beta(Alpha[2] a)");
}

// A schema that exercises every atomic kind, nested structs, fixed and dynamic arrays,
// arrays of structs and nested arrays, filled with random values.
json::value random_typed_data() {
  json::value typed = json::parse(R"({
    "types": {
      "EIP712Domain": [
        {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
        {"name": "salt", "type": "bytes32"}],
      "Order": [
        {"name": "maker", "type": "address"}, {"name": "items", "type": "Item[]"},
        {"name": "amounts", "type": "uint256[2]"}, {"name": "note", "type": "string"},
        {"name": "blob", "type": "bytes"}, {"name": "small", "type": "int8"},
        {"name": "grid", "type": "uint16[][]"}, {"name": "leaf", "type": "Leaf"},
        {"name": "active", "type": "bool"}],
      "Item": [
        {"name": "id", "type": "uint64"}, {"name": "tag", "type": "bytes4"},
        {"name": "flags", "type": "bool[]"}, {"name": "delta", "type": "int128"},
        {"name": "leaves", "type": "Leaf[1]"}],
      "Leaf": [{"name": "x", "type": "int256"}, {"name": "y", "type": "bytes32"}]
    },
    "primaryType": "Order"
  })");
  auto& root = typed.as_object();
  const auto random_uint = [](unsigned bytes) {
    Bytes raw = random_vector(random_below(bytes) + 1);
    return random_below(2) == 0 ? to_hex(raw) : std::to_string(random_below(1'000'000'000));
  };
  const auto random_int = [](unsigned bits) -> json::value {
    const std::int64_t bound = bits >= 64 ? 1'000'000'000'000LL : (std::int64_t{1} << (bits - 1));
    const std::int64_t v = static_cast<std::int64_t>(random_below(static_cast<std::uint64_t>(2 * bound))) - bound;
    if (random_below(2) == 0) return json::value(v);
    return json::value(std::to_string(v));
  };
  const auto leaf = [&] {
    return json::object{{"x", random_int(256)}, {"y", to_hex(random_vector(32))}};
  };
  root["domain"] = json::object{{"name", random_text(10)},
                                {"version", std::to_string(random_below(9))},
                                {"chainId", random_below(100000) + 1},
                                {"verifyingContract", Address(std::array<std::uint8_t, 20>{}).to_lower_hex()},
                                {"salt", to_hex(random_vector(32))}};
  json::array items;
  for (std::uint64_t i = 0, n = random_below(4); i < n; ++i) {
    json::array flags;
    for (std::uint64_t j = 0, m = random_below(4); j < m; ++j) flags.emplace_back(random_below(2) == 1);
    items.emplace_back(json::object{{"id", random_uint(8)},
                                    {"tag", to_hex(random_vector(4))},
                                    {"flags", std::move(flags)},
                                    {"delta", random_int(128)},
                                    {"leaves", json::array{leaf()}}});
  }
  json::array grid;
  for (std::uint64_t i = 0, n = random_below(3); i < n; ++i) {
    json::array row;
    for (std::uint64_t j = 0, m = random_below(4); j < m; ++j) row.emplace_back(random_below(65536));
    grid.emplace_back(std::move(row));
  }
  root["message"] = json::object{{"maker", Address::parse(random_address_lower())->to_checksum()},
                                 {"items", std::move(items)},
                                 {"amounts", json::array{random_uint(32), random_uint(32)}},
                                 {"note", random_text(random_below(40))},
                                 {"blob", to_hex(random_vector(random_below(70)))},
                                 {"small", random_int(8)},
                                 {"grid", std::move(grid)},
                                 {"leaf", leaf()},
                                 {"active", random_below(2) == 1}};
  return typed;
}

TEST(Eip712, MailSignatureMatchesCast) {
  const PrivateKey key = key_from_hex(kAnvilKey0);
  auto digest = eip712_digest(json::parse(kMailTypedData));
  ASSERT_TRUE(digest);
  EXPECT_EQ(key.sign_digest(*digest).to_hex(),
            cast({"wallet", "sign", "--private-key", std::string(kAnvilKey0), "--data", std::string(kMailTypedData)}));
}

TEST(Eip712, RandomTypedDataMatchesCast) {
  const std::string dir = testing::make_temp_dir("eip712");
  for (int i = 0; i < kIterations; ++i) {
    const PrivateKey key = PrivateKey::generate();
    const json::value typed = random_typed_data();
    const std::string text = json::serialize(typed);
    auto digest = eip712_digest(typed);
    ASSERT_TRUE(digest) << digest.error().message << "\n" << text;
    const std::string file = dir + "/typed-" + std::to_string(i) + ".json";
    std::ofstream(file) << text;
    EXPECT_EQ(key.sign_digest(*digest).to_hex(),
              cast({"wallet", "sign", "--private-key", to_hex(key.bytes()), "--data", "--from-file", file}))
        << text;
  }
  std::filesystem::remove_all(dir);
}

TEST(Eip712, IntegerEncodings) {
  const json::value types = json::parse(R"({"T": [{"name": "v", "type": "int16"}, {"name": "u", "type": "uint256"}]})");
  const auto hash = [&](std::string_view message) {
    return eip712_hash_struct(types.as_object(), "T", json::parse(message));
  };
  // The same numbers as JSON numbers, decimal strings and hex strings hash the same.
  auto a = hash(R"({"v": -2, "u": 255})");
  auto b = hash(R"({"v": "-2", "u": "0xff"})");
  auto c = hash(R"({"v": "-0x2", "u": "0xFF"})");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*a, *c);
  EXPECT_TRUE(hash(R"({"v": -32768, "u": 0})"));
  EXPECT_TRUE(hash(R"({"v": 32767, "u": "115792089237316195423570985008687907853269984665640564039457584007913129639935"})"));
  EXPECT_FALSE(hash(R"({"v": -32769, "u": 0})"));
  EXPECT_FALSE(hash(R"({"v": 32768, "u": 0})"));
  EXPECT_FALSE(hash(R"({"v": 0, "u": -1})"));
  EXPECT_FALSE(hash(R"({"v": 0, "u": "115792089237316195423570985008687907853269984665640564039457584007913129639936"})"));
  EXPECT_FALSE(hash(R"({"v": 0, "u": 1.5})"));
  EXPECT_FALSE(hash(R"({"v": 0, "u": "12a"})"));
  EXPECT_FALSE(hash(R"({"v": 0, "u": ""})"));
}

TEST(Eip712, RejectsBadTypedData) {
  const auto expect_invalid = [](std::string_view text, std::string_view needle) {
    auto r = eip712_digest(json::parse(text));
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  const std::string domain_types = R"("EIP712Domain": [{"name": "name", "type": "string"}])";
  const std::string head = R"({"primaryType": "M", "domain": {"name": "d"}, )";
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "Nope"}]}, "message": {"a": 1}})",
                 "unknown type");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "uint7"}]}, "message": {"a": 1}})",
                 "unknown type");
  expect_invalid(head + R"("types": {)" + domain_types + R"(}, "message": {}})", "unknown struct type");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "uint8"}]}, "message": {}})",
                 "missing field M.a");
  expect_invalid(head + R"("types": {)" + domain_types +
                     R"(, "M": [{"name": "n", "type": "N"}], "N": [{"name": "m", "type": "M[]"}]}, "message": {"n": {"m": []}}})",
                 "cyclic");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "m", "type": "M"}]}, "message": {}})",
                 "cyclic");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "uint8"}]}, "message": {"a": 256}})",
                 "out of range");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "uint8[2]"}]}, "message": {"a": [1]}})",
                 "1 items");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "address"}]}, "message": {"a": "0x12"}})",
                 "M.a");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "bytes4"}]}, "message": {"a": "0x1234"}})",
                 "exactly 4 bytes");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "bool"}]}, "message": {"a": "yes"}})",
                 "bool");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a", "type": "uint8[x]"}]}, "message": {"a": []}})",
                 "malformed array");
  expect_invalid(head + R"("types": {)" + domain_types + R"(, "M": [{"name": "a"}]}, "message": {"a": 1}})", "types.M");
  expect_invalid(R"({"primaryType": "M", "domain": {}, "types": {"M": []}, "message": {}})", "EIP712Domain");
  expect_invalid(R"({"primaryType": "M", "domain": {}, "message": {}})", "types");
  expect_invalid(R"([1, 2])", "object");
}

// --- keystores ----------------------------------------------------------------------------

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Keystore, RoundTripLight) {
  const PrivateKey key = PrivateKey::generate();
  const std::string text = keystore_encrypt(key, "correct horse", kLightScrypt);
  const json::value parsed = json::parse(text);
  EXPECT_EQ(parsed.at("version").as_int64(), 3);
  EXPECT_TRUE(std::regex_match(std::string(parsed.at("id").as_string()),
                               std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  auto back = keystore_decrypt(text, "correct horse");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->bytes(), key.bytes());
  auto address = keystore_address(text);
  ASSERT_TRUE(address) << address.error().message;
  EXPECT_EQ(*address, key.address());

  auto wrong = keystore_decrypt(text, "correct horse ");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(wrong.error().message, "wrong password");
}

TEST(Keystore, DefaultParamsRoundTripThroughCast) {
  const PrivateKey key = PrivateKey::generate();
  const std::string text = keystore_encrypt(key, "pw-default");
  EXPECT_EQ(json::parse(text).at("crypto").at("kdfparams").at("n").as_int64(), 262144);
  const std::string dir = testing::make_temp_dir("keystore");
  write_file(dir, "ours", text);
  EXPECT_EQ(cast({"wallet", "decrypt-keystore", "-k", dir, "--unsafe-password=pw-default", "ours"}),
            "ours's private key is: " + to_hex(key.bytes()));
  auto back = keystore_decrypt(text, "pw-default");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->bytes(), key.bytes());
  std::filesystem::remove_all(dir);
}

TEST(Keystore, OursDecryptWithCast) {
  const std::string dir = testing::make_temp_dir("keystore");
  for (int i = 0; i < kIterations; ++i) {
    const PrivateKey key = PrivateKey::generate();
    const std::string password = random_text(random_below(20) + 1);
    const std::string name = "k" + std::to_string(i);
    write_file(dir, name, keystore_encrypt(key, password, kLightScrypt));
    EXPECT_EQ(cast({"wallet", "decrypt-keystore", "-k", dir, "--unsafe-password=" + password, name}),
              name + "'s private key is: " + to_hex(key.bytes()))
        << "password: '" << password << "'";
  }
  std::filesystem::remove_all(dir);
}

TEST(Keystore, CastKeystoresDecryptWithUs) {
  const std::string dir = testing::make_temp_dir("keystore");
  for (int i = 0; i < kIterations; ++i) {
    const PrivateKey key = PrivateKey::generate();
    const std::string password = random_text(random_below(20) + 1);
    const std::string name = "c" + std::to_string(i);
    cast({"wallet", "import", "-k", dir, "--unsafe-password=" + password, "--private-key", to_hex(key.bytes()), name});
    std::ifstream in(dir + "/" + name);
    std::stringstream text;
    text << in.rdbuf();
    auto back = keystore_decrypt(text.str(), password);
    ASSERT_TRUE(back) << back.error().message << "\n" << text.str();
    EXPECT_EQ(back->bytes(), key.bytes());
    auto wrong = keystore_decrypt(text.str(), password + "x");
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code, ErrorCode::kUnauthenticated);
  }
  std::filesystem::remove_all(dir);
}

// The two test vectors from the Web3 Secret Storage definition (password "testpassword").
TEST(Keystore, Web3SecretStorageVectors) {
  constexpr std::string_view kExpected = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
  constexpr std::string_view kPbkdf2 = R"({"crypto": {"cipher": "aes-128-ctr",
    "cipherparams": {"iv": "6087dab2f9fdbbfaddc31a909735c1e6"},
    "ciphertext": "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
    "kdf": "pbkdf2",
    "kdfparams": {"c": 262144, "dklen": 32, "prf": "hmac-sha256",
                  "salt": "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},
    "mac": "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6", "version": 3})";
  constexpr std::string_view kScrypt = R"({"Crypto": {"cipher": "aes-128-ctr",
    "cipherparams": {"iv": "83dbcc02d8ccb40e466191a123791e0e"},
    "ciphertext": "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
    "kdf": "scrypt",
    "kdfparams": {"dklen": 32, "n": 262144, "p": 8, "r": 1,
                  "salt": "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19"},
    "mac": "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097"},
    "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6", "version": 3})";
  for (std::string_view text : {kPbkdf2, kScrypt}) {
    auto key = keystore_decrypt(text, "testpassword");
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(to_hex(key->bytes()), kExpected);
  }
  auto wrong = keystore_decrypt(kPbkdf2, "testpassword!");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kUnauthenticated);
}

// Applies `edit` to a fresh light keystore and expects kInvalidArgument naming `field`.
void expect_malformed(const std::function<void(json::object&)>& edit, std::string_view field) {
  static const std::string base = keystore_encrypt(key_from_hex(kAnvilKey0), "pw", kLightScrypt);
  json::value doc = json::parse(base);
  edit(doc.as_object());
  const std::string text = json::serialize(doc);
  auto parsed = parse_keystore(text);
  ASSERT_FALSE(parsed) << "accepted: " << text;
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find(field), std::string::npos) << parsed.error().message;
  auto decrypted = keystore_decrypt(text, "pw");
  ASSERT_FALSE(decrypted);
  EXPECT_EQ(decrypted.error().code, ErrorCode::kInvalidArgument);
}

json::object& crypto_of(json::object& o) { return o["crypto"].as_object(); }
json::object& kdfparams_of(json::object& o) { return crypto_of(o)["kdfparams"].as_object(); }

TEST(Keystore, RejectsMalformedFields) {
  expect_malformed([](json::object& o) { o.erase("version"); }, "version");
  expect_malformed([](json::object& o) { o["version"] = 1; }, "version");
  expect_malformed([](json::object& o) { o["version"] = "3"; }, "version");
  expect_malformed([](json::object& o) { o.erase("crypto"); }, "crypto");
  expect_malformed([](json::object& o) { o["crypto"] = "x"; }, "crypto");
  expect_malformed([](json::object& o) { crypto_of(o)["cipher"] = "aes-256-cbc"; }, "crypto.cipher");
  expect_malformed([](json::object& o) { crypto_of(o).erase("cipher"); }, "crypto.cipher");
  expect_malformed([](json::object& o) { crypto_of(o)["cipherparams"] = json::array{}; }, "crypto.cipherparams");
  expect_malformed([](json::object& o) { crypto_of(o)["cipherparams"] = json::object{{"iv", "00"}}; },
                   "crypto.cipherparams.iv");
  expect_malformed([](json::object& o) { crypto_of(o)["cipherparams"] = json::object{{"iv", 5}}; },
                   "crypto.cipherparams.iv");
  expect_malformed([](json::object& o) { crypto_of(o)["ciphertext"] = "zz"; }, "crypto.ciphertext");
  expect_malformed([](json::object& o) { crypto_of(o)["ciphertext"] = std::string(66, '0'); }, "crypto.ciphertext");
  expect_malformed([](json::object& o) { crypto_of(o)["mac"] = "0011"; }, "crypto.mac");
  expect_malformed([](json::object& o) { crypto_of(o).erase("mac"); }, "crypto.mac");
  expect_malformed([](json::object& o) { crypto_of(o)["kdf"] = "argon2"; }, "crypto.kdf");
  expect_malformed([](json::object& o) { crypto_of(o).erase("kdfparams"); }, "crypto.kdfparams");
  expect_malformed([](json::object& o) { kdfparams_of(o)["dklen"] = 16; }, "crypto.kdfparams.dklen");
  expect_malformed([](json::object& o) { kdfparams_of(o)["salt"] = ""; }, "crypto.kdfparams.salt");
  expect_malformed([](json::object& o) { kdfparams_of(o)["salt"] = "xyz"; }, "crypto.kdfparams.salt");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = 1ULL << 40; }, "crypto.kdfparams.n");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = 1U << 21; }, "crypto.kdfparams.n");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = 1000; }, "crypto.kdfparams.n");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = -4096; }, "crypto.kdfparams.n");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = 4096.5; }, "crypto.kdfparams.n");
  expect_malformed([](json::object& o) { kdfparams_of(o)["r"] = 0; }, "crypto.kdfparams.r");
  expect_malformed([](json::object& o) { kdfparams_of(o)["p"] = 1000000; }, "crypto.kdfparams.p");
  expect_malformed([](json::object& o) { kdfparams_of(o)["n"] = 1U << 20; kdfparams_of(o)["r"] = 32; },
                   "crypto.kdfparams");
  expect_malformed([](json::object& o) { o["address"] = "0x1234"; }, "address");
  expect_malformed(
      [](json::object& o) {
        crypto_of(o)["kdf"] = "pbkdf2";
        kdfparams_of(o) = json::object{{"c", 100'000'000}, {"dklen", 32}, {"prf", "hmac-sha256"}, {"salt", "00ff"}};
      },
      "crypto.kdfparams.c");
  expect_malformed(
      [](json::object& o) {
        crypto_of(o)["kdf"] = "pbkdf2";
        kdfparams_of(o) = json::object{{"c", 10}, {"dklen", 32}, {"prf", "hmac-sha1"}, {"salt", "00ff"}};
      },
      "crypto.kdfparams.prf");

  for (std::string_view text : {"", "{", "[]", "null", "{\"version\": 3}"}) {
    auto r = keystore_decrypt(text, "pw");
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << text;
  }
  EXPECT_FALSE(keystore_decrypt(std::string(100'000, ' '), "pw"));
}

TEST(Keystore, AcceptsCapitalisedCryptoAndChecksAddress) {
  const PrivateKey key = PrivateKey::generate();
  json::value doc = json::parse(keystore_encrypt(key, "pw", kLightScrypt));
  auto& root = doc.as_object();
  root["Crypto"] = root["crypto"];
  root.erase("crypto");
  auto back = keystore_decrypt(json::serialize(doc), "pw");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->bytes(), key.bytes());

  root["address"] = PrivateKey::generate().address().to_lower_hex();
  auto mismatch = keystore_decrypt(json::serialize(doc), "pw");
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(mismatch.error().message.find("address"), std::string::npos);

  root.erase("address");
  auto no_address = keystore_address(json::serialize(doc));
  ASSERT_FALSE(no_address);
  EXPECT_NE(no_address.error().message.find("address"), std::string::npos);
}

TEST(Keystore, EncryptRejectsAbsurdParams) {
  const PrivateKey key = PrivateKey::generate();
  EXPECT_THROW(keystore_encrypt(key, "pw", ScryptParams{1ULL << 30, 8, 1}), std::invalid_argument);
  EXPECT_THROW(keystore_encrypt(key, "pw", ScryptParams{1000, 8, 1}), std::invalid_argument);
}

// --- merkle -------------------------------------------------------------------------------

// Independent reference: the recursive definition over a level, straight from merkle.hpp.
Hash32 reference_root(std::vector<Hash32> level) {
  if (level.empty()) return Hash32{};
  while (level.size() > 1) {
    std::vector<Hash32> next;
    for (std::size_t i = 0; i < level.size(); i += 2) {
      if (i + 1 == level.size()) {
        next.push_back(level[i]);
      } else {
        Bytes data{0x01};
        const Hash32& lo = std::min(level[i], level[i + 1]);
        const Hash32& hi = std::max(level[i], level[i + 1]);
        data.insert(data.end(), lo.begin(), lo.end());
        data.insert(data.end(), hi.begin(), hi.end());
        next.push_back(keccak256(ByteView(data)));
      }
    }
    level = std::move(next);
  }
  return level.front();
}

std::vector<Hash32> make_leaves(std::size_t count) {
  std::vector<Hash32> leaves;
  for (std::size_t i = 0; i < count; ++i) leaves.push_back(merkle_leaf_hash(as_bytes("leaf-" + std::to_string(i))));
  return leaves;
}

TEST(Merkle, LeafAndNodeHashesMatchCast) {
  EXPECT_EQ(hash_hex(merkle_leaf_hash(as_bytes("abc"))), cast({"keccak", "0x00616263"}));
  const Hash32 a = random_hash();
  const Hash32 b = random_hash();
  const Hash32& lo = std::min(a, b);
  const Hash32& hi = std::max(a, b);
  EXPECT_EQ(hash_hex(merkle_node_hash(a, b)), cast({"keccak", "0x01" + to_hex(lo, false) + to_hex(hi, false)}));
  EXPECT_EQ(merkle_node_hash(a, b), merkle_node_hash(b, a));
}

TEST(Merkle, RootsForSmallAndLargeTrees) {
  EXPECT_EQ(MerkleTree({}).root(), Hash32{});
  EXPECT_EQ(MerkleTree({}).leaf_count(), 0U);
  EXPECT_FALSE(MerkleTree({}).proof(0));

  const auto l = make_leaves(5);
  EXPECT_EQ(MerkleTree({l[0]}).root(), l[0]);
  EXPECT_EQ(MerkleTree({l[0], l[1]}).root(), merkle_node_hash(l[0], l[1]));
  EXPECT_EQ(MerkleTree({l[0], l[1], l[2]}).root(), merkle_node_hash(merkle_node_hash(l[0], l[1]), l[2]));
  EXPECT_EQ(MerkleTree(l).root(),
            merkle_node_hash(merkle_node_hash(merkle_node_hash(l[0], l[1]), merkle_node_hash(l[2], l[3])), l[4]));

  for (std::size_t n : {0U, 1U, 2U, 3U, 5U, 100U}) {
    const auto leaves = make_leaves(n);
    const MerkleTree tree(leaves);
    EXPECT_EQ(tree.leaf_count(), n);
    EXPECT_EQ(tree.root(), reference_root(leaves)) << n << " leaves";
  }
}

TEST(Merkle, EveryProofVerifiesOnlyForItsLeaf) {
  for (std::size_t n : {1U, 2U, 3U, 5U, 100U}) {
    const auto leaves = make_leaves(n);
    const MerkleTree tree(leaves);
    for (std::size_t i = 0; i < n; ++i) {
      auto proof = tree.proof(i);
      ASSERT_TRUE(proof) << proof.error().message;
      EXPECT_TRUE(verify_merkle_proof(leaves[i], *proof, tree.root())) << n << " leaves, index " << i;
      if (n > 1) {
        const std::size_t other = (i + 1) % n;
        EXPECT_FALSE(verify_merkle_proof(leaves[other], *proof, tree.root())) << "proof " << i << " for leaf " << other;
      }
      if (!proof->empty()) {
        auto altered = *proof;
        altered[altered.size() / 2][7] ^= 0x40;
        EXPECT_FALSE(verify_merkle_proof(leaves[i], altered, tree.root()));
        auto truncated = *proof;
        truncated.pop_back();
        EXPECT_FALSE(verify_merkle_proof(leaves[i], truncated, tree.root()));
      }
    }
    auto out_of_range = tree.proof(n);
    ASSERT_FALSE(out_of_range);
    EXPECT_EQ(out_of_range.error().code, ErrorCode::kInvalidArgument);
  }
}

// --- random -------------------------------------------------------------------------------

TEST(Random, ShapesAndRanges) {
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string id = random_uuid();
    EXPECT_TRUE(std::regex_match(id, uuid)) << id;
    seen.insert(id);
    EXPECT_LT(random_below(7), 7U);
  }
  EXPECT_EQ(seen.size(), 100U);
  EXPECT_EQ(random_below(1), 0U);
  EXPECT_EQ(random_token().size(), 64U);
  EXPECT_EQ(random_token(5).size(), 10U);
  EXPECT_NE(random_hash(), random_hash());
}

}  // namespace
}  // namespace kaisar::crypto
