#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.hpp"

namespace kaisar::crypto {

// A 20-byte Ethereum account address. Prints in EIP-55 mixed-case checksum form.
class Address {
 public:
  Address() = default;
  explicit Address(const std::array<std::uint8_t, 20>& bytes) : bytes_(bytes) {}

  // Accepts "0x" + 40 hex digits. All-lower or all-upper is accepted as is; mixed case must
  // match the EIP-55 checksum (a mistyped address is an error, not a different account).
  static Result<Address> parse(std::string_view text) noexcept;

  std::string to_checksum() const;   // 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed
  std::string to_lower_hex() const;  // 0x5aaeb6...
  const std::array<std::uint8_t, 20>& bytes() const { return bytes_; }
  bool is_zero() const;

  auto operator<=>(const Address&) const = default;

 private:
  std::array<std::uint8_t, 20> bytes_{};
};

}  // namespace kaisar::crypto
