#include "onenode/verified.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

VerifiedResources verified_resources(const json::value& verification) {
  VerifiedResources out;
  if (!verification.is_object()) return out;
  const json::object& v = verification.get_object();
  const json::value* verified = v.if_contains("verified");
  const bool passed = verified != nullptr && verified->is_bool() && verified->get_bool();
  out.checked = true;
  out.failed = !passed;
  if (!passed) return out;
  if (const json::value* tops = v.if_contains("tops"); tops != nullptr && tops->is_number()) {
    out.tops = tops->to_number<double>();
  }
  const json::value* memory_passed = v.if_contains("memory_passed");
  if (memory_passed != nullptr && memory_passed->is_bool() && memory_passed->get_bool()) {
    out.memory_bytes = uint_field(v, "memory_bytes");
  }
  return out;
}

}  // namespace kaisar::onenode
