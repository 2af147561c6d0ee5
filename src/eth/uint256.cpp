#include "eth/uint256.hpp"

#include <algorithm>

namespace kaisar::eth {

namespace {

using u128 = unsigned __int128;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// a + b, with the carry out of the top limb.
Uint256 add_with_carry(const Uint256& a, const Uint256& b, bool& carry_out) noexcept {
  const auto ab = a.to_be32();
  const auto bb = b.to_be32();
  std::array<std::uint8_t, 32> out{};
  unsigned carry = 0;
  for (std::size_t i = 32; i-- > 0;) {
    const unsigned sum = unsigned{ab[i]} + unsigned{bb[i]} + carry;
    out[i] = static_cast<std::uint8_t>(sum & 0xff);
    carry = sum >> 8;
  }
  carry_out = carry != 0;
  return Uint256::from_be32(out);
}

Uint256 mul_with_overflow(const Uint256& a, std::uint64_t b, bool& overflow) noexcept {
  const auto ab = a.to_be32();
  std::array<std::uint64_t, 4> limbs{};
  for (std::size_t limb = 0; limb < 4; ++limb) {
    std::uint64_t v = 0;
    for (std::size_t k = 0; k < 8; ++k) v = (v << 8) | ab[32 - 8 * (limb + 1) + k];
    limbs[limb] = v;
  }
  std::uint64_t carry = 0;
  for (auto& limb : limbs) {
    const u128 product = static_cast<u128>(limb) * b + carry;
    limb = static_cast<std::uint64_t>(product);
    carry = static_cast<std::uint64_t>(product >> 64);
  }
  overflow = carry != 0;
  std::array<std::uint8_t, 32> out{};
  for (std::size_t limb = 0; limb < 4; ++limb) {
    for (std::size_t k = 0; k < 8; ++k) {
      out[31 - (8 * limb + k)] = static_cast<std::uint8_t>(limbs[limb] >> (8 * k));
    }
  }
  return Uint256::from_be32(out);
}

}  // namespace

Result<Uint256> Uint256::from_decimal(std::string_view text) noexcept {
  if (text.empty()) return fail(ErrorCode::kInvalidArgument, "empty decimal number");
  Uint256 value;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return fail(ErrorCode::kInvalidArgument, "invalid decimal digit in '" + std::string(text) + "'");
    }
    bool overflow = false;
    value = mul_with_overflow(value, 10, overflow);
    bool carry = false;
    if (!overflow) value = add_with_carry(value, Uint256(static_cast<std::uint64_t>(c - '0')), carry);
    if (overflow || carry) {
      return fail(ErrorCode::kInvalidArgument, "decimal number does not fit in 256 bits");
    }
  }
  return value;
}

Result<Uint256> Uint256::from_hex(std::string_view text) noexcept {
  if (text.size() < 3 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) {
    return fail(ErrorCode::kInvalidArgument, "hex number must be 0x followed by digits");
  }
  const std::string_view digits = text.substr(2);
  const std::size_t first = digits.find_first_not_of('0');
  const std::string_view significant = first == std::string_view::npos ? std::string_view{} : digits.substr(first);
  if (significant.size() > 64) return fail(ErrorCode::kInvalidArgument, "hex number does not fit in 256 bits");
  Uint256 value;
  for (char c : digits) {
    const int v = hex_value(c);
    if (v < 0) return fail(ErrorCode::kInvalidArgument, "invalid hex digit in '" + std::string(text) + "'");
  }
  std::size_t nibble = 0;
  for (std::size_t i = significant.size(); i-- > 0; ++nibble) {
    const auto v = static_cast<std::uint64_t>(hex_value(significant[i]));
    value.limbs_[nibble / 16] |= v << (4 * (nibble % 16));
  }
  return value;
}

Result<Uint256> Uint256::parse(std::string_view text) noexcept {
  if (text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) return from_hex(text);
  return from_decimal(text);
}

Uint256 Uint256::from_be32(const std::array<std::uint8_t, 32>& bytes) noexcept {
  Uint256 value;
  for (std::size_t i = 0; i < 32; ++i) {
    const std::size_t byte_index = 31 - i;  // 0 = least significant
    value.limbs_[byte_index / 8] |= static_cast<std::uint64_t>(bytes[i]) << (8 * (byte_index % 8));
  }
  return value;
}

Result<Uint256> Uint256::from_be_bytes(ByteView bytes) noexcept {
  if (bytes.size() > 32) return fail(ErrorCode::kInvalidArgument, "integer longer than 32 bytes");
  std::array<std::uint8_t, 32> padded{};
  std::copy(bytes.begin(), bytes.end(), padded.begin() + static_cast<std::ptrdiff_t>(32 - bytes.size()));
  return from_be32(padded);
}

std::array<std::uint8_t, 32> Uint256::to_be32() const noexcept {
  std::array<std::uint8_t, 32> out{};
  for (std::size_t i = 0; i < 32; ++i) {
    const std::size_t byte_index = 31 - i;
    out[i] = static_cast<std::uint8_t>(limbs_[byte_index / 8] >> (8 * (byte_index % 8)));
  }
  return out;
}

Bytes Uint256::to_minimal_be() const {
  const auto be = to_be32();
  const auto first = std::find_if(be.begin(), be.end(), [](std::uint8_t b) { return b != 0; });
  return Bytes(first, be.end());
}

std::string Uint256::to_decimal() const {
  if (is_zero()) return "0";
  Uint256 rest = *this;
  std::string digits;
  while (!rest.is_zero()) digits.push_back(static_cast<char>('0' + rest.divmod_small(10)));
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string Uint256::to_hex() const {
  if (is_zero()) return "0x0";
  std::string hex = kaisar::to_hex(to_minimal_be(), false);
  if (hex.front() == '0') hex.erase(0, 1);
  return "0x" + hex;
}

unsigned Uint256::bit_length() const noexcept {
  for (std::size_t i = 4; i-- > 0;) {
    if (limbs_[i] != 0) {
      return static_cast<unsigned>(64 * i) + static_cast<unsigned>(64 - __builtin_clzll(limbs_[i]));
    }
  }
  return 0;
}

std::uint64_t Uint256::divmod_small(std::uint64_t divisor) noexcept {
  u128 remainder = 0;
  for (std::size_t i = 4; i-- > 0;) {
    const u128 current = (remainder << 64) | limbs_[i];
    limbs_[i] = static_cast<std::uint64_t>(current / divisor);
    remainder = current % divisor;
  }
  return static_cast<std::uint64_t>(remainder);
}

Result<Uint256> Uint256::checked_add(const Uint256& a, const Uint256& b) noexcept {
  bool carry = false;
  Uint256 sum = add_with_carry(a, b, carry);
  if (carry) return fail(ErrorCode::kInvalidArgument, "uint256 addition overflows");
  return sum;
}

Result<Uint256> Uint256::checked_sub(const Uint256& a, const Uint256& b) noexcept {
  if (a < b) return fail(ErrorCode::kInvalidArgument, "uint256 subtraction underflows");
  return a - b;
}

Result<Uint256> Uint256::checked_mul(const Uint256& a, std::uint64_t b) noexcept {
  bool overflow = false;
  Uint256 product = mul_with_overflow(a, b, overflow);
  if (overflow) return fail(ErrorCode::kInvalidArgument, "uint256 multiplication overflows");
  return product;
}

Uint256 operator+(const Uint256& a, const Uint256& b) noexcept {
  bool carry = false;
  return add_with_carry(a, b, carry);
}

Uint256 operator~(const Uint256& a) noexcept {
  Uint256 out;
  for (std::size_t i = 0; i < 4; ++i) out.limbs_[i] = ~a.limbs_[i];
  return out;
}

Uint256 operator-(const Uint256& a, const Uint256& b) noexcept {
  // Two's complement: a - b = a + ~b + 1 (mod 2^256).
  return a + ~b + Uint256(1);
}

Uint256 operator*(const Uint256& a, std::uint64_t b) noexcept {
  bool overflow = false;
  return mul_with_overflow(a, b, overflow);
}

std::strong_ordering operator<=>(const Uint256& a, const Uint256& b) noexcept {
  for (std::size_t i = 4; i-- > 0;) {
    if (a.limbs_[i] != b.limbs_[i]) return a.limbs_[i] <=> b.limbs_[i];
  }
  return std::strong_ordering::equal;
}

}  // namespace kaisar::eth
