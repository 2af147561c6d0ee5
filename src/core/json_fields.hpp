#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace kaisar {

// The string at `key` of a message object; empty when it is missing or not a string.
inline std::string string_field(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// The whole number at `key`; 0 when it is missing, negative or not an integer.
inline std::uint64_t uint_field(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

// A message from a peer as a JSON object; `from` names the peer in the error.
inline Result<boost::json::object> parse_json_message(std::string_view text, std::string_view from) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) {
    return fail(ErrorCode::kInvalidArgument, std::string(from) + " sent a message that is not a JSON object");
  }
  return std::move(v.as_object());
}

}  // namespace kaisar
