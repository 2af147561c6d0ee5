#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"

namespace kaisar::onenode {

// The offer search language, in the spirit of `vastai search offers`:
//   gpu_name=RTX_4090 num_gpus>=2 gpu_ram>=24 price_hour<=1.5 reliability>=0.98 country=DE,FR verified=true
// Conditions are separated by spaces and all must hold. Operators: = != < <= > >=.
// Strings compare without case, '_' stands for a space, "double quotes" allow spaces,
// and a comma-separated list after = or != means any of / none of.

enum class FieldType { kNumber, kString, kBool };

struct FieldInfo {
  std::string_view name;
  FieldType type;
  std::string_view help;
};

// The fields offers can be searched and sorted by, in this order (offer_fields()[i]).
enum OfferField : std::size_t {
  kGpuName, kNumGpus, kGpuRam, kGpuTotalRam, kCpuCores, kCpuName, kRam, kDisk, kPriceHour, kGpuPriceHour,
  kReliability, kCountry, kRegion, kVerified, kPerf, kPerfPerPrice, kDriverVersion, kProvider,
  kOfferFieldCount
};
std::span<const FieldInfo> offer_fields();

using FieldValue = std::variant<double, std::string, bool>;

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe };

struct Condition {
  std::string field;
  std::size_t field_index = 0;  // into offer_fields()
  FieldType type = FieldType::kNumber;
  CompareOp op = CompareOp::kEq;
  std::vector<FieldValue> values;  // several only for = and != on strings
  std::size_t position = 0;        // where the condition starts in the query (0-based)
  std::vector<std::vector<std::string>> words;  // each string value's lower-case words
};

// Whether `value` (null: the thing has no such value) satisfies `c`. Allocates nothing.
bool condition_holds(const Condition& c, const FieldValue* value);

// Reads one field of the thing being matched; empty when it has no such value.
using FieldReader = std::function<std::optional<FieldValue>(std::string_view field)>;

struct Query {
  std::vector<Condition> conditions;
  // A missing value matches nothing but != conditions.
  bool matches(const FieldReader& read) const;
  // The same, reading values by field index: `read(i)` returns the value of
  // offer_fields()[i] or null. For hot loops (a search over every provider).
  template <class Read>
  bool matches_at(Read&& read) const {
    for (const Condition& c : conditions) {
      if (!condition_holds(c, read(c.field_index))) return false;
    }
    return true;
  }
};

inline constexpr std::size_t kMaxQueryBytes = 2048;

// Errors are kInvalidArgument with "at position N: expected …, found …".
Result<Query> parse_query(std::string_view text);

struct SortKey {
  std::string field;
  std::size_t field_index = 0;  // into offer_fields()
  bool descending = false;
};

// "price_hour" (ascending), "-reliability" (descending), several separated by commas.
Result<std::vector<SortKey>> parse_sort(std::string_view text);

// Orders `a` before `b` by the keys (missing values last).
bool sort_before(const std::vector<SortKey>& keys, const FieldReader& a, const FieldReader& b);
// How one key orders two values (null: missing, always last): <0, 0 or >0.
int compare_for_sort(const SortKey& key, const FieldValue* a, const FieldValue* b);

}  // namespace kaisar::onenode
