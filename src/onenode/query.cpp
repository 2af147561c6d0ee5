#include "onenode/query.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iterator>

#include "core/words.hpp"

namespace kaisar::onenode {

namespace {

constexpr std::size_t kMaxConditions = 32;
constexpr std::size_t kMaxValues = 32;
constexpr std::size_t kMaxValueBytes = 128;

constexpr FieldInfo kFields[] = {
    {"gpu_name", FieldType::kString, "GPU model, e.g. RTX_4090, H100 (words of the NVML name)"},
    {"num_gpus", FieldType::kNumber, "free GPUs in the offer"},
    {"gpu_ram", FieldType::kNumber, "memory per GPU, GiB"},
    {"gpu_total_ram", FieldType::kNumber, "memory of all offered GPUs, GiB"},
    {"cpu_cores", FieldType::kNumber, "free CPU cores"},
    {"cpu_name", FieldType::kString, "CPU model"},
    {"ram", FieldType::kNumber, "free memory, GiB"},
    {"disk", FieldType::kNumber, "free disk, GiB"},
    {"price_hour", FieldType::kNumber, "price of the whole offer per hour, in tokens"},
    {"gpu_price_hour", FieldType::kNumber, "price per GPU per hour, in tokens"},
    {"reliability", FieldType::kNumber, "share of the last 30 days the provider was online, 0 to 1"},
    {"country", FieldType::kString, "ISO country code from GeoIP, or the declared region's country"},
    {"region", FieldType::kString, "the provider's declared region"},
    {"verified", FieldType::kBool, "passed Proof of Physical Work checks"},
    {"perf", FieldType::kNumber, "measured int8 TOPS of the offered GPUs"},
    {"perf_per_price", FieldType::kNumber, "measured TOPS per token per hour"},
    {"driver_version", FieldType::kString, "NVIDIA driver version"},
    {"provider", FieldType::kString, "provider id (node address)"},
};

static_assert(std::size(kFields) == kOfferFieldCount);
static_assert(kFields[kNumGpus].name == "num_gpus" && kFields[kPriceHour].name == "price_hour" &&
              kFields[kProvider].name == "provider" && kFields[kRam].name == "ram");

std::string normalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(c == '_' ? ' ' : static_cast<char>(std::tolower(c)));
  }
  return out;
}

const FieldInfo* find_field(std::string_view name) {
  for (const FieldInfo& f : kFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string field_names() {
  std::string out;
  for (const FieldInfo& f : kFields) {
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  return out;
}

Error at(std::size_t position, const std::string& message) {
  return Error{ErrorCode::kInvalidArgument, "at position " + std::to_string(position) + ": " + message};
}

std::string shown(std::string_view text, std::size_t i) {
  if (i >= text.size()) return "the end of the query";
  std::string s(text.substr(i, 12));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return "'" + s + (text.size() - i > 12 ? "…'" : "'");
}

bool ident_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::islower(u) || std::isdigit(u) || c == '_';
}

bool value_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f && c != ',' && c != '"' && c != '=' && c != '<' && c != '>' && c != '!';
}

std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  const std::string n = normalize(s);
  if (n == "true" || n == "1" || n == "yes") return true;
  if (n == "false" || n == "0" || n == "no") return false;
  return std::nullopt;
}

bool compare_number(double a, CompareOp op, double b) {
  switch (op) {
    case CompareOp::kEq: return a == b;
    case CompareOp::kNe: return a != b;
    case CompareOp::kLt: return a < b;
    case CompareOp::kLe: return a <= b;
    case CompareOp::kGt: return a > b;
    case CompareOp::kGe: return a >= b;
  }
  return false;
}

}  // namespace

std::span<const FieldInfo> offer_fields() { return kFields; }

bool condition_holds(const Condition& c, const FieldValue* value) {
  if (value == nullptr) return c.op == CompareOp::kNe;
  switch (c.type) {
    case FieldType::kNumber: {
      const double* v = std::get_if<double>(value);
      return v != nullptr && compare_number(*v, c.op, std::get<double>(c.values.front()));
    }
    case FieldType::kBool: {
      const bool* v = std::get_if<bool>(value);
      if (v == nullptr) return false;
      const bool eq = *v == std::get<bool>(c.values.front());
      return c.op == CompareOp::kEq ? eq : !eq;
    }
    case FieldType::kString: {
      const std::string* v = std::get_if<std::string>(value);
      if (v == nullptr) return false;
      bool any = false;
      for (const auto& wanted : c.words) any = any || has_words(*v, wanted);
      return c.op == CompareOp::kEq ? any : !any;
    }
  }
  return false;
}

bool Query::matches(const FieldReader& read) const {
  for (const Condition& c : conditions) {
    const auto value = read(c.field);
    if (!condition_holds(c, value ? &*value : nullptr)) return false;
  }
  return true;
}

Result<Query> parse_query(std::string_view text) {
  if (text.size() > kMaxQueryBytes) {
    return fail(ErrorCode::kInvalidArgument, "the query is longer than 2048 bytes");
  }
  Query q;
  std::size_t i = 0;
  auto skip_spaces = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  while (true) {
    skip_spaces();
    if (i >= text.size()) break;
    if (q.conditions.size() == kMaxConditions) return std::unexpected(at(i, "more than 32 conditions"));
    Condition c;
    c.position = i;
    const std::size_t name_start = i;
    while (i < text.size() && ident_char(text[i])) ++i;
    if (i == name_start) {
      return std::unexpected(at(i, "expected a field name (" + field_names() + "), found " + shown(text, i)));
    }
    c.field = std::string(text.substr(name_start, i - name_start));
    const FieldInfo* info = find_field(c.field);
    if (info == nullptr) {
      return std::unexpected(at(name_start, "unknown field '" + c.field + "'; fields are " + field_names()));
    }
    c.type = info->type;
    c.field_index = static_cast<std::size_t>(info - kFields);
    skip_spaces();
    const std::size_t op_start = i;
    auto next_is = [&](std::string_view s) { return text.substr(i, s.size()) == s; };
    if (next_is("!=")) { c.op = CompareOp::kNe; i += 2; }
    else if (next_is("<=")) { c.op = CompareOp::kLe; i += 2; }
    else if (next_is(">=")) { c.op = CompareOp::kGe; i += 2; }
    else if (next_is("==")) { c.op = CompareOp::kEq; i += 2; }
    else if (next_is("=")) { c.op = CompareOp::kEq; i += 1; }
    else if (next_is("<")) { c.op = CompareOp::kLt; i += 1; }
    else if (next_is(">")) { c.op = CompareOp::kGt; i += 1; }
    else {
      return std::unexpected(
          at(i, "expected an operator (=, !=, <, <=, >, >=) after '" + c.field + "', found " + shown(text, i)));
    }
    if (c.type != FieldType::kNumber && c.op != CompareOp::kEq && c.op != CompareOp::kNe) {
      return std::unexpected(at(op_start, "'" + c.field + "' takes only = or !="));
    }
    skip_spaces();
    while (true) {
      const std::size_t value_start = i;
      std::string raw;
      if (i < text.size() && text[i] == '"') {
        const std::size_t close = text.find('"', i + 1);
        if (close == std::string_view::npos) return std::unexpected(at(i, "unterminated \"quoted value\""));
        raw = std::string(text.substr(i + 1, close - i - 1));
        for (char ch : raw) {
          if (static_cast<unsigned char>(ch) < 0x20) return std::unexpected(at(i, "control character in a value"));
        }
        i = close + 1;
      } else {
        while (i < text.size() && value_char(text[i])) ++i;
        if (i == value_start) {
          return std::unexpected(at(i, "expected a value for '" + c.field + "', found " + shown(text, i)));
        }
        raw = std::string(text.substr(value_start, i - value_start));
      }
      if (raw.size() > kMaxValueBytes) return std::unexpected(at(value_start, "a value is longer than 128 bytes"));
      switch (c.type) {
        case FieldType::kNumber: {
          auto n = parse_number(raw);
          if (!n) return std::unexpected(at(value_start, "'" + c.field + "' needs a number, found '" + raw + "'"));
          c.values.emplace_back(*n);
          break;
        }
        case FieldType::kBool: {
          auto b = parse_bool(raw);
          if (!b) return std::unexpected(at(value_start, "'" + c.field + "' needs true or false, found '" + raw + "'"));
          c.values.emplace_back(*b);
          break;
        }
        case FieldType::kString:
          c.words.push_back(lower_words(raw));
          c.values.emplace_back(std::move(raw));
          break;
      }
      if (i < text.size() && text[i] == ',') {
        if (c.type != FieldType::kString) return std::unexpected(at(i, "only text fields take a list of values"));
        if (c.values.size() == kMaxValues) return std::unexpected(at(i, "more than 32 values in a list"));
        ++i;
        continue;
      }
      break;
    }
    if (i < text.size() && text[i] != ' ' && text[i] != '\t') {
      return std::unexpected(at(i, "expected a space before the next condition, found " + shown(text, i)));
    }
    q.conditions.push_back(std::move(c));
  }
  return q;
}

Result<std::vector<SortKey>> parse_sort(std::string_view text) {
  std::vector<SortKey> keys;
  if (text.size() > 256) return fail(ErrorCode::kInvalidArgument, "sort is longer than 256 bytes");
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string_view part = text.substr(start, comma - start);
    SortKey key;
    if (!part.empty() && part.front() == '-') {
      key.descending = true;
      part.remove_prefix(1);
    } else if (!part.empty() && part.back() == '-') {
      key.descending = true;
      part.remove_suffix(1);
    }
    if (part.empty()) return fail(ErrorCode::kInvalidArgument, "sort: empty key at position " + std::to_string(start));
    if (find_field(part) == nullptr) {
      return fail(ErrorCode::kInvalidArgument, "sort: unknown field '" + std::string(part) + "'; fields are " + field_names());
    }
    key.field = std::string(part);
    key.field_index = static_cast<std::size_t>(find_field(part) - kFields);
    keys.push_back(std::move(key));
    if (keys.size() > 8) return fail(ErrorCode::kInvalidArgument, "sort: at most 8 keys");
    start = comma + 1;
    if (comma == text.size()) break;
  }
  return keys;
}

int compare_for_sort(const SortKey& key, const FieldValue* va, const FieldValue* vb) {
  if (va == nullptr && vb == nullptr) return 0;
  if (va == nullptr) return 1;  // missing values last, whatever the direction
  if (vb == nullptr) return -1;
  if (va->index() != vb->index()) return 0;
  int cmp = 0;
  if (const double* da = std::get_if<double>(va)) {
    const double db = std::get<double>(*vb);
    cmp = *da < db ? -1 : (*da > db ? 1 : 0);
  } else if (const bool* ba = std::get_if<bool>(va)) {
    cmp = static_cast<int>(*ba) - static_cast<int>(std::get<bool>(*vb));
  } else {
    cmp = normalize(std::get<std::string>(*va)).compare(normalize(std::get<std::string>(*vb)));
  }
  return key.descending ? -cmp : cmp;
}

bool sort_before(const std::vector<SortKey>& keys, const FieldReader& a, const FieldReader& b) {
  for (const SortKey& k : keys) {
    const auto va = a(k.field);
    const auto vb = b(k.field);
    const int cmp = compare_for_sort(k, va ? &*va : nullptr, vb ? &*vb : nullptr);
    if (cmp != 0) return cmp < 0;
  }
  return false;
}

}  // namespace kaisar::onenode
