#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "eth/uint256.hpp"

namespace kaisar::eth {

// A Solidity ABI type, parsed from its canonical string ("(uint256,address[],(bytes,string))").
struct AbiType {
  enum class Kind { kUint, kInt, kAddress, kBool, kFixedBytes, kBytes, kString, kArray, kFixedArray, kTuple };

  Kind kind = Kind::kTuple;
  std::size_t size = 0;              // bits of uintN/intN, N of bytesN, k of T[k]
  std::vector<AbiType> components;   // the element of T[] / T[k], or the tuple's members

  // Types nest at most kAbiMaxDepth levels; "uint"/"int" are read as uint256/int256.
  static Result<AbiType> parse(std::string_view text) noexcept;

  bool is_dynamic() const noexcept;
  // Bytes this type takes in the head of an enclosing tuple (32 for dynamic types).
  std::size_t head_size() const noexcept;
  std::string canonical() const;
};

inline constexpr std::size_t kAbiMaxDepth = 64;

// A value matching an AbiType. uintN and intN hold the 256-bit word (intN in two's
// complement), bytesN and bytes hold their bytes, arrays and tuples hold a List.
struct AbiValue {
  using List = std::vector<AbiValue>;
  std::variant<Uint256, crypto::Address, bool, Bytes, std::string, List> value;

  static AbiValue uint(const Uint256& v) { return AbiValue{v}; }
  static AbiValue address(const crypto::Address& a) { return AbiValue{a}; }
  static AbiValue boolean(bool b) { return AbiValue{b}; }
  static AbiValue bytes(Bytes b) { return AbiValue{std::move(b)}; }
  static AbiValue string(std::string s) { return AbiValue{std::move(s)}; }
  static AbiValue list(List items) { return AbiValue{std::move(items)}; }

  friend bool operator==(const AbiValue&, const AbiValue&) = default;
};

// Signed integers as the two's complement word intN uses ("-5" <-> 2^256 - 5).
Result<Uint256> parse_int256(std::string_view decimal) noexcept;
std::string int256_to_decimal(const Uint256& word);

// A function or event signature "name(type,...)".
struct AbiSignature {
  std::string name;
  AbiType params;  // always a tuple
  std::string canonical() const { return name + params.canonical(); }
  static Result<AbiSignature> parse(std::string_view text) noexcept;
};

// First four bytes of keccak256 of the signature text, as given.
std::array<std::uint8_t, 4> function_selector(std::string_view signature) noexcept;

// Encoding of an argument list: `params` must be a tuple type and `args` a List.
Result<Bytes> abi_encode(const AbiType& params, const AbiValue& args) noexcept;
// Selector of the canonical signature followed by the encoded arguments.
Result<Bytes> abi_encode_call(std::string_view signature, const AbiValue& args) noexcept;

// Decodes an argument list of tuple type `params`, treating `data` as hostile: offsets and
// lengths are bounds-checked, padding and unused high bits must be zero (or sign bits for
// intN), and data that the encoding would reuse (overlapping offsets) beyond the input's
// own size is rejected. Static-only lists must fill `data` exactly.
Result<AbiValue> abi_decode(const AbiType& params, ByteView data) noexcept;

// Events: topic0 = keccak256(signature); indexed value types are topics, the rest is data.
Hash32 event_topic0(std::string_view signature) noexcept;
Result<std::vector<Hash32>> encode_event_topics(std::string_view signature, const std::vector<bool>& indexed,
                                                const AbiValue::List& args) noexcept;
Result<Bytes> encode_event_data(std::string_view signature, const std::vector<bool>& indexed,
                                const AbiValue::List& args) noexcept;
// The non-indexed arguments, in order, from a log's data.
Result<AbiValue::List> decode_event_data(std::string_view signature, const std::vector<bool>& indexed,
                                         ByteView data) noexcept;

}  // namespace kaisar::eth
