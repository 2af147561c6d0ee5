#include "popw/message.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <string>

namespace kaisar::popw {

namespace json = boost::json;

namespace {

Error invalid(std::string message) { return Error(ErrorCode::kInvalidArgument, std::move(message)); }

std::string join(std::string_view where, std::string_view key) { return std::string(where) + "." + std::string(key); }

Result<const json::object*> as_object(const json::value& v, std::string_view where) {
  if (!v.is_object()) return std::unexpected(invalid(std::string(where) + ": expected a JSON object"));
  return &v.get_object();
}

Result<const json::value*> field(const json::object& o, std::string_view where, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::unexpected(invalid(join(where, key) + " is missing"));
  return v;
}

Result<std::uint64_t> uint_value(const json::value& v, const std::string& name, std::uint64_t max) {
  std::uint64_t out = 0;
  if (v.is_uint64()) {
    out = v.get_uint64();
  } else if (v.is_int64() && v.get_int64() >= 0) {
    out = static_cast<std::uint64_t>(v.get_int64());
  } else {
    return std::unexpected(invalid(name + " must be a non-negative integer"));
  }
  if (out > max) return std::unexpected(invalid(name + " must be at most " + std::to_string(max)));
  return out;
}

Result<std::uint64_t> uint_field(const json::object& o, std::string_view where, std::string_view key,
                                 std::uint64_t max) {
  auto v = field(o, where, key);
  if (!v) return std::unexpected(v.error());
  return uint_value(**v, join(where, key), max);
}

// "0x" and exactly 64 hex digits.
Result<Hash32> hash_value(const json::value& v, const std::string& name) {
  if (!v.is_string() || v.get_string().size() != 66 || !v.get_string().starts_with("0x")) {
    return std::unexpected(invalid(name + " must be 0x and 64 hex digits"));
  }
  auto h = from_hex_fixed<32>(std::string_view(v.get_string()));
  if (!h) return std::unexpected(invalid(name + " must be 0x and 64 hex digits"));
  return *h;
}

Result<Hash32> hash_field(const json::object& o, std::string_view where, std::string_view key) {
  auto v = field(o, where, key);
  if (!v) return std::unexpected(v.error());
  return hash_value(**v, join(where, key));
}

Result<const json::array*> array_field(const json::object& o, std::string_view where, std::string_view key,
                                       std::size_t max) {
  auto v = field(o, where, key);
  if (!v) return std::unexpected(v.error());
  const std::string name = join(where, key);
  if (!(*v)->is_array()) return std::unexpected(invalid(name + " must be an array"));
  const json::array& a = (*v)->get_array();
  if (a.empty() || a.size() > max) {
    return std::unexpected(invalid(name + " must hold 1 to " + std::to_string(max) + " entries, got " +
                                   std::to_string(a.size())));
  }
  return &a;
}

std::string hash_hex(const Hash32& h) { return to_hex(h); }

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(ByteView bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t left = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t group = std::uint32_t{bytes[i]} << 16;
    if (left > 1) group |= std::uint32_t{bytes[i + 1]} << 8;
    if (left > 2) group |= bytes[i + 2];
    out.push_back(kAlphabet[(group >> 18) & 63]);
    out.push_back(kAlphabet[(group >> 12) & 63]);
    out.push_back(left > 1 ? kAlphabet[(group >> 6) & 63] : '=');
    out.push_back(left > 2 ? kAlphabet[group & 63] : '=');
  }
  return out;
}

Result<Bytes> base64_decode(std::string_view text) {
  static const std::array<std::int8_t, 256> values = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    return t;
  }();
  if (text.size() % 4 != 0) return fail(ErrorCode::kInvalidArgument, "base64 length must be a multiple of 4");
  Bytes out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t pad = !last ? 0 : (text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0);
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const bool padding = k >= 4 - pad;
      const std::int8_t v = padding ? 0 : values[static_cast<unsigned char>(text[i + k])];
      if (v < 0) return fail(ErrorCode::kInvalidArgument, "base64 has an invalid character");
      group = (group << 6) | static_cast<std::uint32_t>(v);
    }
    // Bits under the padding must be zero, so that each byte string has one encoding.
    if ((pad == 1 && (group & 0xff) != 0) || (pad == 2 && (group & 0xffff) != 0)) {
      return fail(ErrorCode::kInvalidArgument, "base64 is not canonical");
    }
    out.push_back(static_cast<std::uint8_t>(group >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(group >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(group));
  }
  return out;
}

Result<json::value> parse_message(std::string_view text) noexcept {
  if (text.size() > kMaxMessageBytes) {
    return fail(ErrorCode::kInvalidArgument,
                "message is larger than " + std::to_string(kMaxMessageBytes) + " bytes");
  }
  json::parse_options options;
  options.max_depth = 16;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, {}, options);
  if (ec) return fail(ErrorCode::kInvalidArgument, "message is not valid JSON: " + ec.message());
  return v;
}

json::object to_json(const Challenge& m) {
  return {{"type", "challenge"}, {"seed", hash_hex(m.seed)}, {"n", m.n}};
}

json::object to_json(const Commit& m) {
  return {{"type", "commit"}, {"root", hash_hex(m.root)}, {"elapsed_us", m.elapsed.count()}};
}

json::object to_json(const AuditRequest& m) {
  json::array rows;
  for (auto r : m.rows) rows.push_back(r);
  return {{"type", "audit"}, {"rows", std::move(rows)}};
}

json::object to_json(const AuditAnswer& m) {
  json::array openings;
  for (const auto& o : m.openings) {
    Bytes raw;
    raw.reserve(4 * o.values.size());
    for (std::int32_t v : o.values) {
      const auto u = static_cast<std::uint32_t>(v);
      for (int b = 0; b < 4; ++b) raw.push_back(static_cast<std::uint8_t>(u >> (8 * b)));
    }
    json::array proof;
    for (const auto& h : o.proof) proof.push_back(json::string(hash_hex(h)));
    openings.push_back(json::object{{"row", o.row}, {"values", base64_encode(raw)}, {"proof", std::move(proof)}});
  }
  return {{"type", "openings"}, {"openings", std::move(openings)}};
}

json::object to_json(const MemoryFill& m) {
  return {{"type", "memory_fill"}, {"seed", hash_hex(m.seed)}, {"bytes", m.bytes}, {"cache_bytes", m.cache_bytes}};
}

json::object to_json(const MemoryQuery& m) {
  json::array starts;
  for (auto s : m.starts) starts.push_back(s);
  return {{"type", "memory_query"}, {"starts", std::move(starts)}, {"steps", m.steps}};
}

json::object to_json(const MemoryAnswer& m) {
  json::array digests;
  for (const auto& d : m.digests) digests.push_back(json::string(hash_hex(d)));
  return {{"type", "memory_answer"}, {"digests", std::move(digests)}};
}

Result<Challenge> challenge_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "challenge";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  Challenge m;
  auto seed = hash_field(**o, kWhere, "seed");
  if (!seed) return std::unexpected(seed.error());
  m.seed = *seed;
  auto n = uint_field(**o, kWhere, "n", kMaxN);
  if (!n) return std::unexpected(n.error());
  m.n = static_cast<std::uint32_t>(*n);
  if (auto ok = check_size(m.n); !ok) return std::unexpected(invalid("challenge.n: " + ok.error().message));
  return m;
}

Result<Commit> commit_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "commit";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  Commit m;
  auto root = hash_field(**o, kWhere, "root");
  if (!root) return std::unexpected(root.error());
  m.root = *root;
  auto us = uint_field(**o, kWhere, "elapsed_us", static_cast<std::uint64_t>(kMaxElapsed.count()));
  if (!us) return std::unexpected(us.error());
  m.elapsed = std::chrono::microseconds(static_cast<std::int64_t>(*us));
  return m;
}

Result<AuditRequest> audit_request_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "audit";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  auto rows = array_field(**o, kWhere, "rows", kMaxAuditRows);
  if (!rows) return std::unexpected(rows.error());
  AuditRequest m;
  m.rows.reserve((*rows)->size());
  for (std::size_t k = 0; k < (*rows)->size(); ++k) {
    auto row = uint_value((**rows)[k], "audit.rows[" + std::to_string(k) + "]", kMaxN - 1);
    if (!row) return std::unexpected(row.error());
    m.rows.push_back(static_cast<std::uint32_t>(*row));
  }
  std::vector<std::uint32_t> sorted = m.rows;
  std::sort(sorted.begin(), sorted.end());
  if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
    return std::unexpected(invalid("audit.rows: row " + std::to_string(*dup) + " is requested twice"));
  }
  return m;
}

Result<AuditAnswer> audit_answer_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "openings";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  auto openings = array_field(**o, kWhere, "openings", kMaxAuditRows);
  if (!openings) return std::unexpected(openings.error());
  AuditAnswer m;
  m.openings.reserve((*openings)->size());
  for (std::size_t k = 0; k < (*openings)->size(); ++k) {
    const std::string where = "openings.openings[" + std::to_string(k) + "]";
    auto item = as_object((**openings)[k], where);
    if (!item) return std::unexpected(item.error());
    RowOpening opening;
    auto row = uint_field(**item, where, "row", kMaxN - 1);
    if (!row) return std::unexpected(row.error());
    opening.row = static_cast<std::uint32_t>(*row);

    auto values = field(**item, where, "values");
    if (!values) return std::unexpected(values.error());
    if (!(*values)->is_string()) return std::unexpected(invalid(join(where, "values") + " must be a base64 string"));
    const json::string& text = (*values)->get_string();
    if (text.size() > (std::size_t{kMaxN} * 4 + 2) / 3 * 4) {
      return std::unexpected(invalid(join(where, "values") + " holds more than " + std::to_string(kMaxN) + " values"));
    }
    auto raw = base64_decode(std::string_view(text));
    if (!raw) return std::unexpected(invalid(join(where, "values") + ": " + raw.error().message));
    if (raw->size() % 4 != 0 || !check_size(static_cast<std::uint32_t>(raw->size() / 4))) {
      return std::unexpected(invalid(join(where, "values") + " must hold n int32 values (n a multiple of " +
                                     std::to_string(kStepN) + " up to " + std::to_string(kMaxN) + "), got " +
                                     std::to_string(raw->size()) + " bytes"));
    }
    opening.values.resize(raw->size() / 4);
    for (std::size_t i = 0; i < opening.values.size(); ++i) {
      const std::uint32_t u = std::uint32_t{(*raw)[4 * i]} | std::uint32_t{(*raw)[4 * i + 1]} << 8 |
                              std::uint32_t{(*raw)[4 * i + 2]} << 16 | std::uint32_t{(*raw)[4 * i + 3]} << 24;
      opening.values[i] = static_cast<std::int32_t>(u);
    }

    auto proof = field(**item, where, "proof");
    if (!proof) return std::unexpected(proof.error());
    if (!(*proof)->is_array() || (*proof)->get_array().size() > kMaxProofLength) {
      return std::unexpected(invalid(join(where, "proof") + " must be an array of at most " +
                                     std::to_string(kMaxProofLength) + " hashes"));
    }
    const json::array& siblings = (*proof)->get_array();
    for (std::size_t s = 0; s < siblings.size(); ++s) {
      auto h = hash_value(siblings[s], join(where, "proof") + "[" + std::to_string(s) + "]");
      if (!h) return std::unexpected(h.error());
      opening.proof.push_back(*h);
    }
    m.openings.push_back(std::move(opening));
  }
  return m;
}

Result<MemoryFill> memory_fill_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "memory_fill";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  MemoryFill m;
  auto seed = hash_field(**o, kWhere, "seed");
  if (!seed) return std::unexpected(seed.error());
  m.seed = *seed;
  auto bytes = uint_field(**o, kWhere, "bytes", kMaxMemoryBytes);
  if (!bytes) return std::unexpected(bytes.error());
  m.bytes = *bytes;
  auto cache = uint_field(**o, kWhere, "cache_bytes", kMaxCacheBytes);
  if (!cache) return std::unexpected(cache.error());
  m.cache_bytes = *cache;
  if (auto ok = check_fill(m); !ok) return std::unexpected(invalid("memory_fill." + ok.error().message));
  return m;
}

Result<MemoryQuery> memory_query_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "memory_query";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  auto starts = array_field(**o, kWhere, "starts", kMaxWalks);
  if (!starts) return std::unexpected(starts.error());
  MemoryQuery m;
  m.starts.reserve((*starts)->size());
  constexpr std::uint64_t kMaxItem = kMaxMemoryBytes / kItemBytes - 1;
  for (std::size_t k = 0; k < (*starts)->size(); ++k) {
    auto s = uint_value((**starts)[k], "memory_query.starts[" + std::to_string(k) + "]", kMaxItem);
    if (!s) return std::unexpected(s.error());
    m.starts.push_back(*s);
  }
  auto steps = uint_field(**o, kWhere, "steps", kMaxSteps);
  if (!steps) return std::unexpected(steps.error());
  if (*steps == 0) return std::unexpected(invalid("memory_query.steps must be at least 1"));
  m.steps = static_cast<std::uint32_t>(*steps);
  return m;
}

Result<MemoryAnswer> memory_answer_from_json(const json::value& v) {
  constexpr std::string_view kWhere = "memory_answer";
  auto o = as_object(v, kWhere);
  if (!o) return std::unexpected(o.error());
  auto digests = array_field(**o, kWhere, "digests", kMaxWalks);
  if (!digests) return std::unexpected(digests.error());
  MemoryAnswer m;
  m.digests.reserve((*digests)->size());
  for (std::size_t k = 0; k < (*digests)->size(); ++k) {
    auto h = hash_value((**digests)[k], "memory_answer.digests[" + std::to_string(k) + "]");
    if (!h) return std::unexpected(h.error());
    m.digests.push_back(*h);
  }
  return m;
}

}  // namespace kaisar::popw
