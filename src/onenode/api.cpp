#include "onenode/api.hpp"

#include <boost/json.hpp>

namespace kaisar::onenode {

Result<boost::json::object> parse_json_object(std::string_view body) noexcept {
  try {
    if (body.empty()) return fail(ErrorCode::kInvalidArgument, "request body must be a JSON object");
    boost::json::parse_options opts;
    opts.max_depth = 32;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec, {}, opts);
    if (ec) return fail(ErrorCode::kInvalidArgument, "request body is not valid JSON: " + ec.message());
    if (!v.is_object()) return fail(ErrorCode::kInvalidArgument, "request body must be a JSON object");
    return std::move(v.as_object());
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInvalidArgument, std::string("request body: ") + e.what());
  }
}

Result<std::string> require_string(const boost::json::object& o, std::string_view key, std::size_t max_len) {
  auto it = o.find(key);
  if (it == o.end()) return fail(ErrorCode::kInvalidArgument, "field \"" + std::string(key) + "\" is required");
  if (!it->value().is_string()) {
    return fail(ErrorCode::kInvalidArgument, "field \"" + std::string(key) + "\" must be a string");
  }
  const auto& s = it->value().get_string();
  if (s.size() > max_len) {
    return fail(ErrorCode::kInvalidArgument,
                "field \"" + std::string(key) + "\" is longer than " + std::to_string(max_len) + " bytes");
  }
  return std::string(s);
}

}  // namespace kaisar::onenode
