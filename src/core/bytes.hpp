#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace kaisar {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using Hash32 = std::array<std::uint8_t, 32>;

// Lower-case hex; with_prefix adds "0x".
std::string to_hex(ByteView bytes, bool with_prefix = true);

// Accepts an optional 0x/0X prefix, either case, and an even number of digits.
Result<Bytes> from_hex(std::string_view text) noexcept;

// Exactly N bytes of hex (with optional 0x).
template <std::size_t N>
Result<std::array<std::uint8_t, N>> from_hex_fixed(std::string_view text) noexcept {
  auto bytes = from_hex(text);
  if (!bytes) return std::unexpected(bytes.error());
  if (bytes->size() != N) {
    return fail(ErrorCode::kInvalidArgument,
                "expected " + std::to_string(N) + " bytes of hex, got " + std::to_string(bytes->size()));
  }
  std::array<std::uint8_t, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = (*bytes)[i];
  return out;
}

inline ByteView as_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline std::string_view as_string(ByteView bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Constant-time comparison for secrets (MACs, token hashes).
bool equal_constant_time(ByteView a, ByteView b) noexcept;

}  // namespace kaisar
