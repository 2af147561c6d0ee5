#include "eth/abi.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include "crypto/keccak.hpp"

namespace kaisar::eth {

namespace {

using Kind = AbiType::Kind;

// Bounds that keep hostile type strings from describing absurd static sizes.
constexpr std::size_t kMaxFixedArrayLength = 1U << 16;
constexpr std::size_t kMaxStaticSize = 1U << 24;

Error invalid(std::string message) { return Error{ErrorCode::kInvalidArgument, "abi: " + std::move(message)}; }

bool parse_decimal_size(std::string_view digits, std::size_t& out) noexcept {
  if (digits.empty() || digits.size() > 7 || digits[0] == '0') return false;
  out = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<std::size_t>(c - '0');
  }
  return true;
}

class TypeParser {
 public:
  explicit TypeParser(std::string_view text) : text_(text) {}

  Result<AbiType> parse_all() {
    auto type = parse_type(1);
    if (!type) return type;
    if (pos_ != text_.size()) return std::unexpected(invalid("unexpected text in type at offset " + std::to_string(pos_)));
    return type;
  }

  // Parses "(...)" as a parameter list (used for signatures).
  Result<AbiType> parse_tuple_only() {
    auto type = parse_tuple(1);
    if (!type) return type;
    if (pos_ != text_.size()) return std::unexpected(invalid("unexpected text after parameter list"));
    return type;
  }

 private:
  Result<AbiType> parse_type(std::size_t depth) {
    if (depth > kAbiMaxDepth) return std::unexpected(invalid("type nested more than 64 levels"));
    auto base = (pos_ < text_.size() && text_[pos_] == '(') ? parse_tuple(depth) : parse_elementary();
    if (!base) return base;
    AbiType type = std::move(*base);
    while (pos_ < text_.size() && text_[pos_] == '[') {
      if (++depth > kAbiMaxDepth) return std::unexpected(invalid("type nested more than 64 levels"));
      const std::size_t close = text_.find(']', pos_);
      if (close == std::string_view::npos) return std::unexpected(invalid("unclosed '[' in type"));
      const std::string_view digits = text_.substr(pos_ + 1, close - pos_ - 1);
      pos_ = close + 1;
      if (type.head_size() == 0) return std::unexpected(invalid("arrays of empty tuples are not supported"));
      AbiType array;
      array.components.push_back(std::move(type));
      if (digits.empty()) {
        array.kind = Kind::kArray;
      } else {
        std::size_t length = 0;
        if (!parse_decimal_size(digits, length) || length > kMaxFixedArrayLength) {
          return std::unexpected(invalid("bad fixed array length '" + std::string(digits) + "'"));
        }
        array.kind = Kind::kFixedArray;
        array.size = length;
        if (!array.is_dynamic() && array.head_size() > kMaxStaticSize) {
          return std::unexpected(invalid("fixed array type is too large"));
        }
      }
      type = std::move(array);
    }
    return type;
  }

  Result<AbiType> parse_tuple(std::size_t depth) {
    if (pos_ >= text_.size() || text_[pos_] != '(') return std::unexpected(invalid("expected '('"));
    ++pos_;
    AbiType tuple;
    tuple.kind = Kind::kTuple;
    if (pos_ < text_.size() && text_[pos_] == ')') {
      ++pos_;
      return tuple;
    }
    std::size_t static_size = 0;
    while (true) {
      auto member = parse_type(depth + 1);
      if (!member) return member;
      static_size += member->head_size();
      if (static_size > kMaxStaticSize) return std::unexpected(invalid("tuple type is too large"));
      tuple.components.push_back(std::move(*member));
      if (pos_ >= text_.size()) return std::unexpected(invalid("unclosed '(' in type"));
      const char c = text_[pos_++];
      if (c == ')') return tuple;
      if (c != ',') return std::unexpected(invalid("expected ',' or ')' in tuple type"));
    }
  }

  Result<AbiType> parse_elementary() {
    std::size_t end = pos_;
    while (end < text_.size() && std::isalnum(static_cast<unsigned char>(text_[end])) != 0) ++end;
    const std::string_view word = text_.substr(pos_, end - pos_);
    pos_ = end;
    AbiType type;
    std::size_t n = 0;
    auto sized = [&](std::string_view prefix) {
      return word.size() > prefix.size() && word.substr(0, prefix.size()) == prefix &&
             parse_decimal_size(word.substr(prefix.size()), n);
    };
    if (word == "address") {
      type.kind = Kind::kAddress;
    } else if (word == "bool") {
      type.kind = Kind::kBool;
    } else if (word == "bytes") {
      type.kind = Kind::kBytes;
    } else if (word == "string") {
      type.kind = Kind::kString;
    } else if (word == "uint" || word == "int") {
      type.kind = word == "uint" ? Kind::kUint : Kind::kInt;
      type.size = 256;
    } else if ((sized("uint") || sized("int")) && n % 8 == 0 && n >= 8 && n <= 256) {
      type.kind = word[0] == 'u' ? Kind::kUint : Kind::kInt;
      type.size = n;
    } else if (sized("bytes") && n >= 1 && n <= 32) {
      type.kind = Kind::kFixedBytes;
      type.size = n;
    } else {
      return std::unexpected(invalid("unknown type '" + std::string(word) + "'"));
    }
    return type;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

std::size_t padded32(std::size_t n) noexcept { return (n + 31) / 32 * 32; }

void append_word(Bytes& out, const Uint256& v) {
  const auto be = v.to_be32();
  out.insert(out.end(), be.begin(), be.end());
}

// True when bits [bits, 256) of the word are a sign extension of bit bits-1.
bool is_sign_extended(const Uint256& word, std::size_t bits) noexcept {
  const bool negative = word.bit(static_cast<unsigned>(bits - 1));
  for (std::size_t i = bits; i < 256; ++i) {
    if (word.bit(static_cast<unsigned>(i)) != negative) return false;
  }
  return true;
}

// ---- encoding ----

Result<void> encode_value(Bytes& out, const AbiType& type, const AbiValue& value);

Result<void> encode_sequence(Bytes& out, const std::vector<const AbiType*>& types, const AbiValue::List& values) {
  if (types.size() != values.size()) {
    return std::unexpected(invalid("expected " + std::to_string(types.size()) + " values, got " +
                                   std::to_string(values.size())));
  }
  std::size_t head_total = 0;
  for (const AbiType* t : types) head_total += t->head_size();
  Bytes head;
  Bytes tail;
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (types[i]->is_dynamic()) {
      append_word(head, Uint256(static_cast<std::uint64_t>(head_total + tail.size())));
      auto r = encode_value(tail, *types[i], values[i]);
      if (!r) return r;
    } else {
      auto r = encode_value(head, *types[i], values[i]);
      if (!r) return r;
    }
  }
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), tail.begin(), tail.end());
  return {};
}

void append_padded(Bytes& out, ByteView data) {
  out.insert(out.end(), data.begin(), data.end());
  out.resize(out.size() + padded32(data.size()) - data.size(), 0);
}

Result<void> encode_value(Bytes& out, const AbiType& type, const AbiValue& value) {
  const std::string name = type.canonical();
  auto mismatch = [&] { return std::unexpected(invalid("value does not match type " + name)); };
  switch (type.kind) {
    case Kind::kUint:
    case Kind::kInt: {
      const auto* word = std::get_if<Uint256>(&value.value);
      if (word == nullptr) return mismatch();
      if (type.kind == Kind::kUint ? word->bit_length() > type.size : !is_sign_extended(*word, type.size)) {
        return std::unexpected(invalid("value out of range for " + name));
      }
      append_word(out, *word);
      return {};
    }
    case Kind::kAddress: {
      const auto* address = std::get_if<crypto::Address>(&value.value);
      if (address == nullptr) return mismatch();
      out.resize(out.size() + 12, 0);
      out.insert(out.end(), address->bytes().begin(), address->bytes().end());
      return {};
    }
    case Kind::kBool: {
      const auto* b = std::get_if<bool>(&value.value);
      if (b == nullptr) return mismatch();
      append_word(out, Uint256(*b ? 1U : 0U));
      return {};
    }
    case Kind::kFixedBytes: {
      const auto* b = std::get_if<Bytes>(&value.value);
      if (b == nullptr || b->size() != type.size) return mismatch();
      append_padded(out, *b);
      return {};
    }
    case Kind::kBytes:
    case Kind::kString: {
      ByteView data;
      if (type.kind == Kind::kBytes) {
        const auto* b = std::get_if<Bytes>(&value.value);
        if (b == nullptr) return mismatch();
        data = *b;
      } else {
        const auto* s = std::get_if<std::string>(&value.value);
        if (s == nullptr) return mismatch();
        data = as_bytes(*s);
      }
      append_word(out, Uint256(static_cast<std::uint64_t>(data.size())));
      append_padded(out, data);
      return {};
    }
    case Kind::kArray:
    case Kind::kFixedArray:
    case Kind::kTuple: {
      const auto* items = std::get_if<AbiValue::List>(&value.value);
      if (items == nullptr) return mismatch();
      std::vector<const AbiType*> types;
      if (type.kind == Kind::kTuple) {
        for (const AbiType& c : type.components) types.push_back(&c);
      } else {
        if (type.kind == Kind::kFixedArray && items->size() != type.size) return mismatch();
        types.assign(items->size(), &type.components[0]);
      }
      if (type.kind == Kind::kArray) append_word(out, Uint256(static_cast<std::uint64_t>(items->size())));
      return encode_sequence(out, types, *items);
    }
  }
  return mismatch();
}

// ---- decoding ----

class Decoder {
 public:
  explicit Decoder(std::size_t budget) : budget_(budget) {}

  // `region` starts at the head of the sequence; offsets are relative to it.
  Result<AbiValue::List> sequence(const std::vector<const AbiType*>& types, ByteView region) {
    AbiValue::List values;
    values.reserve(types.size());
    std::size_t pos = 0;
    for (const AbiType* t : types) {
      const std::size_t head = t->head_size();
      if (head > region.size() - pos) return std::unexpected(invalid("data too short"));
      if (t->is_dynamic()) {
        auto offset = read_size(region.subspan(pos, 32), "offset");
        if (!offset) return std::unexpected(offset.error());
        if (*offset > region.size()) return std::unexpected(invalid("offset points past the end of data"));
        auto v = value(*t, region.subspan(*offset));
        if (!v) return std::unexpected(v.error());
        values.push_back(std::move(*v));
      } else {
        auto v = value(*t, region.subspan(pos, head));
        if (!v) return std::unexpected(v.error());
        values.push_back(std::move(*v));
      }
      pos += head;
    }
    return values;
  }

  Result<AbiValue> value(const AbiType& type, ByteView at) {
    switch (type.kind) {
      case Kind::kUint:
      case Kind::kInt: {
        auto word = read_word(at);
        if (!word) return std::unexpected(word.error());
        const bool ok = type.kind == Kind::kUint ? word->bit_length() <= type.size : is_sign_extended(*word, type.size);
        if (!ok) return std::unexpected(invalid("dirty high bits in " + type.canonical()));
        return AbiValue::uint(*word);
      }
      case Kind::kAddress: {
        auto word = read_word(at);
        if (!word) return std::unexpected(word.error());
        if (word->bit_length() > 160) return std::unexpected(invalid("dirty high bits in address"));
        std::array<std::uint8_t, 20> raw{};
        std::copy(at.begin() + 12, at.begin() + 32, raw.begin());
        return AbiValue::address(crypto::Address(raw));
      }
      case Kind::kBool: {
        auto word = read_word(at);
        if (!word) return std::unexpected(word.error());
        if (word->bit_length() > 1) return std::unexpected(invalid("bool is neither 0 nor 1"));
        return AbiValue::boolean(!word->is_zero());
      }
      case Kind::kFixedBytes: {
        auto word = read_word(at);
        if (!word) return std::unexpected(word.error());
        if (!std::all_of(at.begin() + static_cast<std::ptrdiff_t>(type.size), at.begin() + 32,
                         [](std::uint8_t b) { return b == 0; })) {
          return std::unexpected(invalid("dirty low bytes in " + type.canonical()));
        }
        return AbiValue::bytes(Bytes(at.begin(), at.begin() + static_cast<std::ptrdiff_t>(type.size)));
      }
      case Kind::kBytes:
      case Kind::kString: {
        auto length = read_size(at, "length");
        if (!length) return std::unexpected(length.error());
        const ByteView rest = at.subspan(32);
        if (*length > rest.size() || padded32(*length) > rest.size()) {
          return std::unexpected(invalid("length runs past the end of data"));
        }
        auto spent = spend(padded32(*length));
        if (!spent) return std::unexpected(spent.error());
        const ByteView padding = rest.subspan(*length, padded32(*length) - *length);
        if (!std::all_of(padding.begin(), padding.end(), [](std::uint8_t b) { return b == 0; })) {
          return std::unexpected(invalid("non-zero padding after " + type.canonical()));
        }
        const ByteView content = rest.subspan(0, *length);
        if (type.kind == Kind::kBytes) return AbiValue::bytes(Bytes(content.begin(), content.end()));
        return AbiValue::string(std::string(as_string(content)));
      }
      case Kind::kArray:
      case Kind::kFixedArray:
      case Kind::kTuple: {
        std::vector<const AbiType*> types;
        ByteView region = at;
        if (type.kind == Kind::kTuple) {
          for (const AbiType& c : type.components) types.push_back(&c);
        } else {
          std::size_t count = type.size;
          if (type.kind == Kind::kArray) {
            auto length = read_size(at, "array length");
            if (!length) return std::unexpected(length.error());
            region = at.subspan(32);
            // Every element takes at least its head in the data: bounds the allocation.
            if (*length > region.size() / type.components[0].head_size()) {
              return std::unexpected(invalid("array length runs past the end of data"));
            }
            count = *length;
          }
          types.assign(count, &type.components[0]);
        }
        auto items = sequence(types, region);
        if (!items) return std::unexpected(items.error());
        return AbiValue::list(std::move(*items));
      }
    }
    return std::unexpected(invalid("unknown type"));
  }

 private:
  Result<void> spend(std::size_t bytes) {
    if (bytes > budget_) return std::unexpected(invalid("data decodes to more than its size (overlapping offsets)"));
    budget_ -= bytes;
    return {};
  }

  Result<Uint256> read_word(ByteView at) {
    if (at.size() < 32) return std::unexpected(invalid("data too short"));
    auto spent = spend(32);
    if (!spent) return std::unexpected(spent.error());
    std::array<std::uint8_t, 32> word{};
    std::copy(at.begin(), at.begin() + 32, word.begin());
    return Uint256::from_be32(word);
  }

  Result<std::size_t> read_size(ByteView at, const char* what) {
    auto word = read_word(at);
    if (!word) return std::unexpected(word.error());
    if (word->bit_length() > 32) return std::unexpected(invalid(std::string(what) + " is too large"));
    return static_cast<std::size_t>(word->low_u64());
  }

  std::size_t budget_;
};

// Splits an event's parameters into the indexed and the non-indexed ones.
struct EventParts {
  AbiSignature signature;
  std::vector<std::size_t> indexed_positions;
  AbiType data_params;
};

Result<EventParts> split_event(std::string_view signature, const std::vector<bool>& indexed) {
  auto parsed = AbiSignature::parse(signature);
  if (!parsed) return std::unexpected(parsed.error());
  EventParts parts{std::move(*parsed), {}, AbiType{}};
  const auto& params = parts.signature.params.components;
  if (indexed.size() != params.size()) return std::unexpected(invalid("indexed flags do not match the parameters"));
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (indexed[i]) {
      parts.indexed_positions.push_back(i);
    } else {
      parts.data_params.components.push_back(params[i]);
    }
  }
  if (parts.indexed_positions.size() > 3) return std::unexpected(invalid("an event has at most 3 indexed parameters"));
  return parts;
}

}  // namespace

bool AbiType::is_dynamic() const noexcept {
  switch (kind) {
    case Kind::kBytes:
    case Kind::kString:
    case Kind::kArray:
      return true;
    case Kind::kFixedArray:
      return components[0].is_dynamic();
    case Kind::kTuple:
      return std::any_of(components.begin(), components.end(), [](const AbiType& c) { return c.is_dynamic(); });
    default:
      return false;
  }
}

std::size_t AbiType::head_size() const noexcept {
  if (is_dynamic()) return 32;
  if (kind == Kind::kFixedArray) return size * components[0].head_size();
  if (kind == Kind::kTuple) {
    std::size_t total = 0;
    for (const AbiType& c : components) total += c.head_size();
    return total;
  }
  return 32;
}

std::string AbiType::canonical() const {
  switch (kind) {
    case Kind::kUint: return "uint" + std::to_string(size);
    case Kind::kInt: return "int" + std::to_string(size);
    case Kind::kAddress: return "address";
    case Kind::kBool: return "bool";
    case Kind::kFixedBytes: return "bytes" + std::to_string(size);
    case Kind::kBytes: return "bytes";
    case Kind::kString: return "string";
    case Kind::kArray: return components[0].canonical() + "[]";
    case Kind::kFixedArray: return components[0].canonical() + "[" + std::to_string(size) + "]";
    case Kind::kTuple: {
      std::string out = "(";
      for (std::size_t i = 0; i < components.size(); ++i) {
        if (i > 0) out += ",";
        out += components[i].canonical();
      }
      return out + ")";
    }
  }
  return {};
}

Result<AbiType> AbiType::parse(std::string_view text) noexcept { return TypeParser(text).parse_all(); }

Result<AbiSignature> AbiSignature::parse(std::string_view text) noexcept {
  const std::size_t open = text.find('(');
  if (open == std::string_view::npos || open == 0) return std::unexpected(invalid("signature must be name(types)"));
  const std::string_view name = text.substr(0, open);
  const auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '$'; };
  if (!std::all_of(name.begin(), name.end(), ident) || std::isdigit(static_cast<unsigned char>(name[0])) != 0) {
    return std::unexpected(invalid("bad function name '" + std::string(name) + "'"));
  }
  auto params = TypeParser(text.substr(open)).parse_tuple_only();
  if (!params) return std::unexpected(params.error());
  return AbiSignature{std::string(name), std::move(*params)};
}

Result<Uint256> parse_int256(std::string_view decimal) noexcept {
  const bool negative = !decimal.empty() && decimal[0] == '-';
  auto magnitude = Uint256::from_decimal(negative ? decimal.substr(1) : decimal);
  if (!magnitude) return magnitude;
  // |int256| is at most 2^255 (negative) or 2^255 - 1 (positive).
  const unsigned bits = magnitude->bit_length();
  if (!negative) {
    if (bits > 255) return fail(ErrorCode::kInvalidArgument, "value does not fit in int256");
    return magnitude;
  }
  const Uint256 word = Uint256(0) - *magnitude;
  if (!magnitude->is_zero() && !word.bit(255)) return fail(ErrorCode::kInvalidArgument, "value does not fit in int256");
  return word;
}

std::string int256_to_decimal(const Uint256& word) {
  if (!word.bit(255)) return word.to_decimal();
  return "-" + (Uint256(0) - word).to_decimal();
}

std::array<std::uint8_t, 4> function_selector(std::string_view signature) noexcept {
  const Hash32 hash = crypto::keccak256(signature);
  return {hash[0], hash[1], hash[2], hash[3]};
}

Hash32 event_topic0(std::string_view signature) noexcept { return crypto::keccak256(signature); }

Result<Bytes> abi_encode(const AbiType& params, const AbiValue& args) noexcept {
  if (params.kind != Kind::kTuple) return std::unexpected(invalid("argument list must be a tuple type"));
  Bytes out;
  auto r = encode_value(out, params, args);
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Bytes> abi_encode_call(std::string_view signature, const AbiValue& args) noexcept {
  auto parsed = AbiSignature::parse(signature);
  if (!parsed) return std::unexpected(parsed.error());
  auto encoded = abi_encode(parsed->params, args);
  if (!encoded) return encoded;
  const auto selector = function_selector(parsed->canonical());
  Bytes out(selector.begin(), selector.end());
  out.insert(out.end(), encoded->begin(), encoded->end());
  return out;
}

Result<AbiValue> abi_decode(const AbiType& params, ByteView data) noexcept {
  if (params.kind != Kind::kTuple) return std::unexpected(invalid("argument list must be a tuple type"));
  if (!params.is_dynamic() && data.size() != params.head_size()) {
    return std::unexpected(invalid("data is " + std::to_string(data.size()) + " bytes, expected " +
                                   std::to_string(params.head_size())));
  }
  return Decoder(data.size()).value(params, data);
}

Result<std::vector<Hash32>> encode_event_topics(std::string_view signature, const std::vector<bool>& indexed,
                                                const AbiValue::List& args) noexcept {
  auto parts = split_event(signature, indexed);
  if (!parts) return std::unexpected(parts.error());
  const auto& params = parts->signature.params.components;
  if (args.size() != params.size()) return std::unexpected(invalid("argument count does not match the event"));
  std::vector<Hash32> topics{event_topic0(parts->signature.canonical())};
  for (std::size_t i : parts->indexed_positions) {
    const AbiType& type = params[i];
    Bytes word;
    if (type.kind == Kind::kBytes || type.kind == Kind::kString) {
      // Dynamic byte strings are indexed by the hash of their contents.
      const Bytes* b = std::get_if<Bytes>(&args[i].value);
      const std::string* s = std::get_if<std::string>(&args[i].value);
      if ((type.kind == Kind::kBytes ? b == nullptr : s == nullptr)) {
        return std::unexpected(invalid("value does not match type " + type.canonical()));
      }
      topics.push_back(type.kind == Kind::kBytes ? crypto::keccak256(*b) : crypto::keccak256(std::string_view(*s)));
      continue;
    }
    if (type.is_dynamic() || type.head_size() != 32) {
      return std::unexpected(invalid("indexed " + type.canonical() + " is not supported"));
    }
    auto r = encode_value(word, type, args[i]);
    if (!r) return std::unexpected(r.error());
    Hash32 topic{};
    std::copy(word.begin(), word.end(), topic.begin());
    topics.push_back(topic);
  }
  return topics;
}

Result<Bytes> encode_event_data(std::string_view signature, const std::vector<bool>& indexed,
                                const AbiValue::List& args) noexcept {
  auto parts = split_event(signature, indexed);
  if (!parts) return std::unexpected(parts.error());
  if (args.size() != indexed.size()) return std::unexpected(invalid("argument count does not match the event"));
  AbiValue::List data_args;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (!indexed[i]) data_args.push_back(args[i]);
  }
  return abi_encode(parts->data_params, AbiValue::list(std::move(data_args)));
}

Result<AbiValue::List> decode_event_data(std::string_view signature, const std::vector<bool>& indexed,
                                         ByteView data) noexcept {
  auto parts = split_event(signature, indexed);
  if (!parts) return std::unexpected(parts.error());
  auto decoded = abi_decode(parts->data_params, data);
  if (!decoded) return std::unexpected(decoded.error());
  return std::get<AbiValue::List>(std::move(decoded->value));
}

}  // namespace kaisar::eth
