#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace kaisar::eth {

// An unsigned 256-bit integer for token amounts, gas prices and ABI words. Arithmetic is
// explicit about overflow: checked_* fail, the operators wrap modulo 2^256 (as the EVM does).
class Uint256 {
 public:
  constexpr Uint256() = default;
  constexpr Uint256(std::uint64_t value) : limbs_{value, 0, 0, 0} {}  // NOLINT: implicit on purpose

  // Decimal digits only, no sign, no leading '+'; fails past 2^256 - 1.
  static Result<Uint256> from_decimal(std::string_view text) noexcept;
  // "0x" followed by 1..64 hex digits (leading zeros allowed).
  static Result<Uint256> from_hex(std::string_view text) noexcept;
  // 0x-hex or decimal.
  static Result<Uint256> parse(std::string_view text) noexcept;
  static Uint256 from_be32(const std::array<std::uint8_t, 32>& bytes) noexcept;
  // Up to 32 big-endian bytes (leading zeros allowed).
  static Result<Uint256> from_be_bytes(ByteView bytes) noexcept;

  std::array<std::uint8_t, 32> to_be32() const noexcept;
  // Big-endian without leading zero bytes; zero is the empty string (RLP's integer form).
  Bytes to_minimal_be() const;
  std::string to_decimal() const;
  std::string to_hex() const;  // "0x" + minimal digits, "0x0" for zero

  bool is_zero() const noexcept { return (limbs_[0] | limbs_[1] | limbs_[2] | limbs_[3]) == 0; }
  bool fits_u64() const noexcept { return (limbs_[1] | limbs_[2] | limbs_[3]) == 0; }
  std::uint64_t low_u64() const noexcept { return limbs_[0]; }
  // Number of significant bits (0 for zero).
  unsigned bit_length() const noexcept;
  bool bit(unsigned index) const noexcept { return ((limbs_[index / 64] >> (index % 64)) & 1U) != 0; }

  static Result<Uint256> checked_add(const Uint256& a, const Uint256& b) noexcept;
  static Result<Uint256> checked_sub(const Uint256& a, const Uint256& b) noexcept;
  static Result<Uint256> checked_mul(const Uint256& a, std::uint64_t b) noexcept;

  friend Uint256 operator+(const Uint256& a, const Uint256& b) noexcept;
  friend Uint256 operator-(const Uint256& a, const Uint256& b) noexcept;
  friend Uint256 operator*(const Uint256& a, std::uint64_t b) noexcept;
  friend Uint256 operator~(const Uint256& a) noexcept;

  // Division by a non-zero small divisor; returns the remainder.
  std::uint64_t divmod_small(std::uint64_t divisor) noexcept;

  friend bool operator==(const Uint256& a, const Uint256& b) noexcept = default;
  friend std::strong_ordering operator<=>(const Uint256& a, const Uint256& b) noexcept;

 private:
  std::array<std::uint64_t, 4> limbs_{};  // little-endian limbs
};

}  // namespace kaisar::eth
