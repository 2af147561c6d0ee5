#pragma once

#include <boost/json/value.hpp>
#include <string_view>

#include "core/error.hpp"
#include "net/http.hpp"

namespace kaisar::onenode {

// Parses a request body as a JSON object; errors say what is wrong (400).
Result<boost::json::object> parse_json_object(std::string_view body) noexcept;
// A required string field.
Result<std::string> require_string(const boost::json::object& o, std::string_view key, std::size_t max_len = 8192);

}  // namespace kaisar::onenode
