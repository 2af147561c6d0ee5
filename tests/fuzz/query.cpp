// The offer query language takes text from anyone: parse, evaluate and sort never crash,
// and a query that parses has at most 32 conditions, each with a value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "onenode/query.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaisar::onenode;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto q = parse_query(text);
  const FieldReader row = [](std::string_view field) -> std::optional<FieldValue> {
    if (field == "gpu_name") return FieldValue{std::string("NVIDIA GeForce RTX 4090")};
    if (field == "num_gpus") return FieldValue{2.0};
    if (field == "verified") return FieldValue{true};
    return std::nullopt;
  };
  if (q) {
    if (q->conditions.size() > 32) std::abort();
    for (const auto& c : q->conditions) {
      if (c.values.empty()) std::abort();
    }
    (void)q->matches(row);
  }
  if (auto keys = parse_sort(text)) (void)sort_before(*keys, row, row);
  return 0;
}
