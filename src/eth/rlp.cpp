#include "eth/rlp.hpp"

#include <algorithm>

namespace kaisar::eth {

namespace {

void append_length(Bytes& out, std::uint8_t short_base, std::size_t length) {
  if (length < 56) {
    out.push_back(static_cast<std::uint8_t>(short_base + length));
    return;
  }
  const Bytes be = Uint256(static_cast<std::uint64_t>(length)).to_minimal_be();
  out.push_back(static_cast<std::uint8_t>(short_base + 55 + be.size()));
  out.insert(out.end(), be.begin(), be.end());
}

void encode_into(Bytes& out, const RlpItem& item) {
  if (!item.is_list()) {
    rlp_append_bytes(out, item.as_bytes());
    return;
  }
  Bytes payload;
  for (const RlpItem& child : item.as_list()) encode_into(payload, child);
  rlp_append_list_header(out, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

struct Header {
  bool is_list = false;
  std::size_t header_size = 0;
  std::size_t payload_size = 0;
};

// Reads the header at the start of `input` and checks the payload fits in it.
Result<Header> read_header(ByteView input) noexcept {
  if (input.empty()) return fail(ErrorCode::kInvalidArgument, "rlp: unexpected end of input");
  const std::uint8_t prefix = input[0];
  Header h;
  if (prefix < 0x80) {
    h.header_size = 0;
    h.payload_size = 1;
    return h;
  }
  std::uint8_t short_base = 0x80;
  if (prefix >= 0xc0) {
    h.is_list = true;
    short_base = 0xc0;
  }
  const std::size_t code = static_cast<std::size_t>(prefix - short_base);
  if (code < 56) {
    h.header_size = 1;
    h.payload_size = code;
    if (!h.is_list && code == 1) {
      if (input.size() < 2) return fail(ErrorCode::kInvalidArgument, "rlp: length runs past the end of input");
      if (input[1] < 0x80) return fail(ErrorCode::kInvalidArgument, "rlp: single byte below 0x80 must encode itself");
    }
  } else {
    const std::size_t length_of_length = code - 55;  // 1..8
    if (input.size() < 1 + length_of_length) {
      return fail(ErrorCode::kInvalidArgument, "rlp: length runs past the end of input");
    }
    if (input[1] == 0) return fail(ErrorCode::kInvalidArgument, "rlp: length has leading zero bytes");
    std::size_t length = 0;
    for (std::size_t i = 0; i < length_of_length; ++i) length = (length << 8) | input[1 + i];
    if (length < 56) return fail(ErrorCode::kInvalidArgument, "rlp: long form used for a length below 56");
    h.header_size = 1 + length_of_length;
    h.payload_size = length;
  }
  if (h.payload_size > input.size() - h.header_size) {
    return fail(ErrorCode::kInvalidArgument, "rlp: length runs past the end of input");
  }
  return h;
}

// Decodes one item at the start of `input`; `consumed` is set to its encoded size.
Result<RlpItem> decode_one(ByteView input, std::size_t depth, std::size_t& consumed) noexcept {
  auto header = read_header(input);
  if (!header) return std::unexpected(header.error());
  consumed = header->header_size + header->payload_size;
  ByteView payload = input.subspan(header->header_size, header->payload_size);
  if (!header->is_list) return RlpItem::bytes(Bytes(payload.begin(), payload.end()));
  if (depth >= kRlpMaxDepth) return fail(ErrorCode::kInvalidArgument, "rlp: lists nested too deeply");
  RlpItem::List items;
  while (!payload.empty()) {
    std::size_t used = 0;
    auto child = decode_one(payload, depth + 1, used);
    if (!child) return child;
    items.push_back(std::move(*child));
    payload = payload.subspan(used);
  }
  return RlpItem::list(std::move(items));
}

}  // namespace

void rlp_append_bytes(Bytes& out, ByteView payload) {
  if (payload.size() == 1 && payload[0] < 0x80) {
    out.push_back(payload[0]);
    return;
  }
  append_length(out, 0x80, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

void rlp_append_list_header(Bytes& out, std::size_t payload_length) { append_length(out, 0xc0, payload_length); }

Bytes rlp_encode(const RlpItem& item) {
  Bytes out;
  encode_into(out, item);
  return out;
}

Result<RlpItem> rlp_decode(ByteView input) noexcept {
  std::size_t consumed = 0;
  auto item = decode_one(input, 0, consumed);
  if (!item) return item;
  if (consumed != input.size()) return fail(ErrorCode::kInvalidArgument, "rlp: trailing bytes after the item");
  return item;
}

Result<Uint256> rlp_to_uint256(const RlpItem& item) noexcept {
  if (item.is_list()) return fail(ErrorCode::kInvalidArgument, "rlp: expected an integer, got a list");
  const Bytes& b = item.as_bytes();
  if (!b.empty() && b[0] == 0) return fail(ErrorCode::kInvalidArgument, "rlp: integer has leading zero bytes");
  if (b.size() > 32) return fail(ErrorCode::kInvalidArgument, "rlp: integer longer than 32 bytes");
  return Uint256::from_be_bytes(b);
}

Result<std::uint64_t> rlp_to_u64(const RlpItem& item) noexcept {
  auto v = rlp_to_uint256(item);
  if (!v) return std::unexpected(v.error());
  if (!v->fits_u64()) return fail(ErrorCode::kInvalidArgument, "rlp: integer does not fit in 64 bits");
  return v->low_u64();
}

}  // namespace kaisar::eth
