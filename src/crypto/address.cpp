#include "crypto/address.hpp"

#include <algorithm>

#include "crypto/keccak.hpp"

namespace kaisar::crypto {

namespace {

bool is_lower_hex_letter(char c) { return c >= 'a' && c <= 'f'; }
bool is_upper_hex_letter(char c) { return c >= 'A' && c <= 'F'; }

// EIP-55: a letter is upper case iff the matching nibble of keccak256(lower-hex) is >= 8.
std::string checksum_digits(const std::string& lower_digits) {
  const Hash32 hash = keccak256(std::string_view(lower_digits));
  std::string out = lower_digits;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint8_t byte = hash[i / 2];
    const int nibble = (i % 2 == 0) ? (byte >> 4) : (byte & 0x0f);
    if (is_lower_hex_letter(out[i]) && nibble >= 8) out[i] = static_cast<char>(out[i] - 'a' + 'A');
  }
  return out;
}

}  // namespace

Result<Address> Address::parse(std::string_view text) noexcept {
  if (text.size() != 42 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) {
    return fail(ErrorCode::kInvalidArgument, "address must be 0x followed by 40 hex digits");
  }
  const std::string_view digits = text.substr(2);
  auto bytes = from_hex_fixed<20>(digits);
  if (!bytes) return fail(ErrorCode::kInvalidArgument, "address is not valid hex: " + bytes.error().message);
  const bool has_lower = std::any_of(digits.begin(), digits.end(), is_lower_hex_letter);
  const bool has_upper = std::any_of(digits.begin(), digits.end(), is_upper_hex_letter);
  Address address(*bytes);
  if (has_lower && has_upper) {
    const std::string expected = address.to_checksum();
    if (std::string_view(expected).substr(2) != digits) {
      return fail(ErrorCode::kInvalidArgument,
                  "address has mixed case but an invalid EIP-55 checksum (expected " + expected + ")");
    }
  }
  return address;
}

std::string Address::to_checksum() const {
  return "0x" + checksum_digits(kaisar::to_hex(bytes_, false));
}

std::string Address::to_lower_hex() const { return kaisar::to_hex(bytes_); }

bool Address::is_zero() const {
  return std::all_of(bytes_.begin(), bytes_.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace kaisar::crypto
