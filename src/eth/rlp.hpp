#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "eth/uint256.hpp"

namespace kaisar::eth {

// An RLP item (Ethereum yellow paper, appendix B): a byte string or a list of items.
struct RlpItem {
  using List = std::vector<RlpItem>;
  std::variant<Bytes, List> value;

  static RlpItem bytes(Bytes b) { return RlpItem{std::move(b)}; }
  static RlpItem list(List items) { return RlpItem{std::move(items)}; }
  // An integer as RLP writes it: minimal big-endian, zero is the empty string.
  static RlpItem uint(const Uint256& v) { return RlpItem{v.to_minimal_be()}; }

  bool is_list() const noexcept { return std::holds_alternative<List>(value); }
  const Bytes& as_bytes() const { return std::get<Bytes>(value); }
  const List& as_list() const { return std::get<List>(value); }

  friend bool operator==(const RlpItem&, const RlpItem&) = default;
};

// Deeper lists than this are rejected by the decoder (and never produced by Ethereum).
inline constexpr std::size_t kRlpMaxDepth = 64;

Bytes rlp_encode(const RlpItem& item);
void rlp_append_bytes(Bytes& out, ByteView payload);
// Appends a list header for a payload of `payload_length` bytes (the caller appends it).
void rlp_append_list_header(Bytes& out, std::size_t payload_length);

// Strict decoding of exactly one item filling the whole input: canonical lengths only,
// no trailing bytes, nesting at most kRlpMaxDepth lists.
Result<RlpItem> rlp_decode(ByteView input) noexcept;

// Canonical RLP integers: a byte string without leading zeros (zero is empty).
Result<Uint256> rlp_to_uint256(const RlpItem& item) noexcept;
Result<std::uint64_t> rlp_to_u64(const RlpItem& item) noexcept;

}  // namespace kaisar::eth
