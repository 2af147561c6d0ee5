#include "crypto/eip712.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "crypto/address.hpp"
#include "crypto/keccak.hpp"

namespace kaisar::crypto {

namespace json = boost::json;

namespace {

// Bounds recursion on attacker-supplied type graphs and values (a chain of thousands of
// struct types would otherwise overflow the stack).
constexpr int kMaxDepth = 64;

using Word = std::array<std::uint8_t, 32>;

struct Field {
  std::string_view name;
  std::string_view type;
};

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
  });
}

std::optional<unsigned> parse_unsigned(std::string_view digits) {
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc{} || ptr != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// "T[3]" -> {"T", 3}; "T[]" -> {"T", nullopt}. Fails for a type without array suffix or a
// malformed one.
struct ArrayType {
  std::string_view element;
  std::optional<std::size_t> length;
};
std::optional<ArrayType> parse_array(std::string_view type) {
  if (type.empty() || type.back() != ']') return std::nullopt;
  const auto open = type.rfind('[');
  if (open == std::string_view::npos || open == 0) return std::nullopt;
  ArrayType out{type.substr(0, open), std::nullopt};
  const std::string_view inside = type.substr(open + 1, type.size() - open - 2);
  if (!inside.empty()) {
    auto n = parse_unsigned(inside);
    if (!n) return std::nullopt;
    out.length = *n;
  }
  return out;
}

// Size in bits of uintN/intN (N = 8..256, multiple of 8), or bytes of bytesN (1..32).
std::optional<unsigned> suffix_size(std::string_view type, std::string_view prefix, unsigned step, unsigned max) {
  if (!type.starts_with(prefix)) return std::nullopt;
  auto n = parse_unsigned(type.substr(prefix.size()));
  if (!n || *n == 0 || *n > max || *n % step != 0) return std::nullopt;
  return n;
}

bool is_atomic(std::string_view type) {
  return type == "address" || type == "bool" || type == "string" || type == "bytes" ||
         suffix_size(type, "bytes", 1, 32) || suffix_size(type, "uint", 8, 256) || suffix_size(type, "int", 8, 256);
}

std::unexpected<Error> invalid(std::string message) { return fail(ErrorCode::kInvalidArgument, std::move(message)); }

std::unexpected<Error> in_context(std::string_view context, const Error& error) {
  return fail(error.code, std::string(context) + ": " + error.message);
}

// --- integers: 256-bit big-endian magnitude plus sign -------------------------------------

struct BigInt {
  Word magnitude{};
  bool negative = false;
};

// magnitude = magnitude * base + digit; false on overflow past 256 bits.
bool mul_add(Word& m, unsigned base, unsigned digit) {
  unsigned carry = digit;
  for (std::size_t i = m.size(); i-- > 0;) {
    const unsigned v = m[i] * base + carry;
    m[i] = static_cast<std::uint8_t>(v & 0xff);
    carry = v >> 8;
  }
  return carry == 0;
}

unsigned bit_length(const Word& m) {
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] != 0) {
      unsigned bits = 0;
      for (unsigned b = m[i]; b != 0; b >>= 1) ++bits;
      return static_cast<unsigned>((m.size() - i - 1) * 8) + bits;
    }
  }
  return 0;
}

Result<BigInt> parse_integer(const json::value& value) {
  BigInt out;
  if (const auto* u = value.if_uint64()) {
    std::uint64_t v = *u;
    for (std::size_t i = 32; i-- > 24;) {
      out.magnitude[i] = static_cast<std::uint8_t>(v & 0xff);
      v >>= 8;
    }
    return out;
  }
  if (const auto* s = value.if_int64()) {
    out.negative = *s < 0;
    // Negate in unsigned arithmetic so INT64_MIN is fine.
    std::uint64_t v = out.negative ? 0 - static_cast<std::uint64_t>(*s) : static_cast<std::uint64_t>(*s);
    for (std::size_t i = 32; i-- > 24;) {
      out.magnitude[i] = static_cast<std::uint8_t>(v & 0xff);
      v >>= 8;
    }
    return out;
  }
  const auto* str = value.if_string();
  if (str == nullptr) return invalid("integer must be a JSON integer or a decimal / 0x-hex string");
  std::string_view text(*str);
  if (text.starts_with('-')) {
    out.negative = true;
    text.remove_prefix(1);
  }
  unsigned base = 10;
  if (text.starts_with("0x") || text.starts_with("0X")) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty()) return invalid("integer string has no digits");
  for (char c : text) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return invalid("integer string has an invalid digit");
    }
    if (!mul_add(out.magnitude, base, digit)) return invalid("integer does not fit in 256 bits");
  }
  if (bit_length(out.magnitude) == 0) out.negative = false;
  return out;
}

Result<Word> encode_integer(const json::value& value, unsigned bits, bool is_signed) {
  auto parsed = parse_integer(value);
  if (!parsed) return std::unexpected(parsed.error());
  const unsigned len = bit_length(parsed->magnitude);
  const std::string type = (is_signed ? "int" : "uint") + std::to_string(bits);
  if (!is_signed) {
    if (parsed->negative) return invalid("negative value for " + type);
    if (len > bits) return invalid("value out of range for " + type);
    return parsed->magnitude;
  }
  // intN holds -2^(N-1) .. 2^(N-1)-1; 2^(N-1) itself has bit length N and is only allowed negative.
  bool fits = len < bits;
  if (!fits && parsed->negative && len == bits) {
    Word power{};
    power[31 - (bits - 1) / 8] = static_cast<std::uint8_t>(1U << ((bits - 1) % 8));
    fits = parsed->magnitude == power;
  }
  if (!fits) return invalid("value out of range for " + type);
  Word out = parsed->magnitude;
  if (parsed->negative) {
    // Two's complement over 256 bits: invert and add one.
    unsigned carry = 1;
    for (std::size_t i = out.size(); i-- > 0;) {
      const unsigned v = static_cast<std::uint8_t>(~out[i]) + carry;
      out[i] = static_cast<std::uint8_t>(v & 0xff);
      carry = v >> 8;
    }
  }
  return out;
}

Result<Bytes> parse_hex_bytes(const json::value& value) {
  const auto* str = value.if_string();
  if (str == nullptr) return invalid("bytes must be a 0x-hex string");
  const std::string_view text(*str);
  if (!text.starts_with("0x") && !text.starts_with("0X")) return invalid("bytes must be a 0x-hex string");
  return kaisar::from_hex(text);
}

// --- types and structs --------------------------------------------------------------------

class Encoder {
 public:
  explicit Encoder(const json::object& types) : types_(types) {}

  Result<std::vector<Field>> fields(std::string_view name) const {
    const json::value* def = types_.if_contains(name);
    if (def == nullptr) return invalid("unknown struct type '" + std::string(name) + "'");
    const json::array* arr = def->if_array();
    if (arr == nullptr) return invalid("types." + std::string(name) + " must be an array of {name, type}");
    std::vector<Field> out;
    out.reserve(arr->size());
    for (const json::value& entry : *arr) {
      const json::object* obj = entry.if_object();
      const json::value* field_name = obj ? obj->if_contains("name") : nullptr;
      const json::value* field_type = obj ? obj->if_contains("type") : nullptr;
      if (field_name == nullptr || field_type == nullptr || !field_name->is_string() || !field_type->is_string()) {
        return invalid("types." + std::string(name) + " has an entry without string 'name' and 'type'");
      }
      const std::string_view fname(field_name->get_string());
      const std::string_view ftype(field_type->get_string());
      if (!is_identifier(fname)) return invalid("types." + std::string(name) + " has an invalid field name");
      out.push_back({fname, ftype});
    }
    return out;
  }

  // Checks every referenced type exists and that the type graph has no cycle.
  Result<void> collect(std::string_view name, std::set<std::string, std::less<>>& done,
                       std::vector<std::string_view>& stack) const {
    if (stack.size() > kMaxDepth) return invalid("struct types are nested too deeply");
    if (!is_identifier(name)) return invalid("invalid struct type name '" + std::string(name) + "'");
    auto list = fields(name);
    if (!list) return std::unexpected(list.error());
    stack.push_back(name);
    for (const Field& f : *list) {
      std::string_view t = f.type;
      while (auto arr = parse_array(t)) t = arr->element;
      if (t.find_first_of("[]") != std::string_view::npos) {
        return invalid("malformed array type '" + std::string(f.type) + "' in " + std::string(name));
      }
      if (types_.contains(t)) {
        if (std::find(stack.begin(), stack.end(), t) != stack.end()) {
          return invalid("cyclic type reference: " + std::string(name) + " refers back to " + std::string(t));
        }
        if (!done.contains(t)) {
          auto r = collect(t, done, stack);
          if (!r) return r;
        }
      } else if (!is_atomic(t)) {
        return invalid("unknown type '" + std::string(f.type) + "' for field " + std::string(name) + "." +
                       std::string(f.name));
      }
    }
    stack.pop_back();
    done.emplace(name);
    return {};
  }

  Result<std::string> encode_type(std::string_view primary) const {
    std::set<std::string, std::less<>> deps;
    std::vector<std::string_view> stack;
    auto checked = collect(primary, deps, stack);
    if (!checked) return std::unexpected(checked.error());
    deps.erase(std::string(primary));
    std::string out = encode_one(primary);
    for (const std::string& dep : deps) out += encode_one(dep);
    return out;
  }

  Result<Hash32> type_hash(std::string_view name) {
    if (auto it = type_hashes_.find(name); it != type_hashes_.end()) return it->second;
    auto encoded = encode_type(name);
    if (!encoded) return std::unexpected(encoded.error());
    const Hash32 hash = keccak256(std::string_view(*encoded));
    type_hashes_.emplace(std::string(name), hash);
    return hash;
  }

  Result<Hash32> hash_struct(std::string_view name, const json::value& data, int depth) {
    if (depth > kMaxDepth) return invalid("typed data is nested too deeply");
    auto th = type_hash(name);
    if (!th) return std::unexpected(th.error());
    const json::object* obj = data.if_object();
    if (obj == nullptr) return invalid("value of type " + std::string(name) + " must be an object");
    auto list = fields(name);
    if (!list) return std::unexpected(list.error());
    Bytes buffer(th->begin(), th->end());
    for (const Field& f : *list) {
      const std::string context = std::string(name) + "." + std::string(f.name);
      const json::value* v = obj->if_contains(f.name);
      if (v == nullptr) return invalid("missing field " + context + " (" + std::string(f.type) + ")");
      auto word = encode_value(f.type, *v, depth + 1);
      if (!word) return in_context(context, word.error());
      buffer.insert(buffer.end(), word->begin(), word->end());
    }
    return keccak256(ByteView(buffer));
  }

 private:
  std::string encode_one(std::string_view name) const {
    std::string out(name);
    out += '(';
    bool first = true;
    const auto list = fields(name);  // validated by collect()
    for (const Field& f : *list) {
      if (!first) out += ',';
      first = false;
      out += f.type;
      out += ' ';
      out += f.name;
    }
    out += ')';
    return out;
  }

  Result<Word> encode_value(std::string_view type, const json::value& value, int depth) {
    if (depth > kMaxDepth) return invalid("typed data is nested too deeply");
    if (auto arr = parse_array(type)) {
      const json::array* items = value.if_array();
      if (items == nullptr) return invalid("value of type " + std::string(type) + " must be an array");
      if (arr->length && items->size() != *arr->length) {
        return invalid("array of type " + std::string(type) + " has " + std::to_string(items->size()) + " items");
      }
      Bytes buffer;
      buffer.reserve(items->size() * 32);
      for (std::size_t i = 0; i < items->size(); ++i) {
        auto word = encode_value(arr->element, (*items)[i], depth + 1);
        if (!word) return in_context("[" + std::to_string(i) + "]", word.error());
        buffer.insert(buffer.end(), word->begin(), word->end());
      }
      return keccak256(ByteView(buffer));
    }
    if (types_.contains(type)) {
      // eth_signTypedData_v4 encodes a null struct as 32 zero bytes.
      if (value.is_null()) return Word{};
      return hash_struct(type, value, depth + 1);
    }
    if (type == "string") {
      const auto* str = value.if_string();
      if (str == nullptr) return invalid("string value must be a JSON string");
      return keccak256(std::string_view(*str));
    }
    if (type == "bytes") {
      auto bytes = parse_hex_bytes(value);
      if (!bytes) return std::unexpected(bytes.error());
      return keccak256(ByteView(*bytes));
    }
    if (type == "bool") {
      const auto* b = value.if_bool();
      if (b == nullptr) return invalid("bool value must be true or false");
      Word out{};
      out[31] = *b ? 1 : 0;
      return out;
    }
    if (type == "address") {
      const auto* str = value.if_string();
      if (str == nullptr) return invalid("address value must be a string");
      auto address = Address::parse(*str);
      if (!address) return std::unexpected(address.error());
      Word out{};
      std::copy(address->bytes().begin(), address->bytes().end(), out.begin() + 12);
      return out;
    }
    if (auto n = suffix_size(type, "bytes", 1, 32)) {
      auto bytes = parse_hex_bytes(value);
      if (!bytes) return std::unexpected(bytes.error());
      if (bytes->size() != *n) {
        return invalid(std::string(type) + " value must be exactly " + std::to_string(*n) + " bytes");
      }
      Word out{};
      std::copy(bytes->begin(), bytes->end(), out.begin());
      return out;
    }
    if (auto bits = suffix_size(type, "uint", 8, 256)) return encode_integer(value, *bits, false);
    if (auto bits = suffix_size(type, "int", 8, 256)) return encode_integer(value, *bits, true);
    return invalid("unknown type '" + std::string(type) + "'");
  }

  const json::object& types_;
  std::map<std::string, Hash32, std::less<>> type_hashes_;
};

Result<Hash32> digest(const json::value& typed_data) {
  const json::object* root = typed_data.if_object();
  if (root == nullptr) return invalid("typed data must be a JSON object");
  const json::value* types = root->if_contains("types");
  if (types == nullptr || !types->is_object()) return invalid("typed data field 'types' must be an object");
  const json::value* primary = root->if_contains("primaryType");
  if (primary == nullptr || !primary->is_string()) return invalid("typed data field 'primaryType' must be a string");
  const json::value* domain = root->if_contains("domain");
  if (domain == nullptr || !domain->is_object()) return invalid("typed data field 'domain' must be an object");
  if (!types->get_object().contains("EIP712Domain")) return invalid("types must define EIP712Domain");

  Encoder encoder(types->get_object());
  auto domain_separator = encoder.hash_struct("EIP712Domain", *domain, 0);
  if (!domain_separator) return in_context("domain", domain_separator.error());

  Bytes buffer = {0x19, 0x01};
  buffer.insert(buffer.end(), domain_separator->begin(), domain_separator->end());
  const std::string_view primary_type(primary->get_string());
  // Signing the domain alone is allowed (v4): the digest then has no message part.
  if (primary_type != "EIP712Domain") {
    const json::value* message = root->if_contains("message");
    if (message == nullptr) return invalid("typed data field 'message' is missing");
    auto message_hash = encoder.hash_struct(primary_type, *message, 0);
    if (!message_hash) return in_context("message", message_hash.error());
    buffer.insert(buffer.end(), message_hash->begin(), message_hash->end());
  }
  return keccak256(ByteView(buffer));
}

}  // namespace

Result<Hash32> eip712_digest(const json::value& typed_data) noexcept {
  try {
    return digest(typed_data);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("EIP-712 hashing failed: ") + e.what());
  }
}

Result<Hash32> eip712_hash_struct(const json::object& types, std::string_view type_name,
                                  const json::value& data) noexcept {
  try {
    Encoder encoder(types);
    return encoder.hash_struct(type_name, data, 0);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("EIP-712 hashing failed: ") + e.what());
  }
}

Result<std::string> eip712_encode_type(const json::object& types, std::string_view type_name) noexcept {
  try {
    return Encoder(types).encode_type(type_name);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("EIP-712 type encoding failed: ") + e.what());
  }
}

}  // namespace kaisar::crypto
