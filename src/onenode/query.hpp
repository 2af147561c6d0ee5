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

// The fields offers can be searched and sorted by.
std::span<const FieldInfo> offer_fields();

using FieldValue = std::variant<double, std::string, bool>;

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe };

struct Condition {
  std::string field;
  FieldType type = FieldType::kNumber;
  CompareOp op = CompareOp::kEq;
  std::vector<FieldValue> values;  // several only for = and != on strings
  std::size_t position = 0;        // where the condition starts in the query (0-based)
};

// Reads one field of the thing being matched; empty when it has no such value.
using FieldReader = std::function<std::optional<FieldValue>(std::string_view field)>;

struct Query {
  std::vector<Condition> conditions;
  // A missing value matches nothing but != conditions.
  bool matches(const FieldReader& read) const;
};

inline constexpr std::size_t kMaxQueryBytes = 2048;

// Errors are kInvalidArgument with "at position N: expected …, found …".
Result<Query> parse_query(std::string_view text);

struct SortKey {
  std::string field;
  bool descending = false;
};

// "price_hour" (ascending), "-reliability" (descending), several separated by commas.
Result<std::vector<SortKey>> parse_sort(std::string_view text);

// Orders `a` before `b` by the keys (missing values last).
bool sort_before(const std::vector<SortKey>& keys, const FieldReader& a, const FieldReader& b);

}  // namespace kaisar::onenode
