#pragma once

#include <boost/json.hpp>
#include <string>
#include <string_view>

namespace kaisar {

// The string at `key` of a message object; empty when it is missing or not a string.
inline std::string string_field(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

}  // namespace kaisar
