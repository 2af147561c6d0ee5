#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace kaisar::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;        // "GET", "POST", ... (upper case)
  std::string target;        // as received: "/api/v1/offers?q=x"
  std::string path;          // percent-decoded path without the query: "/api/v1/offers"
  std::string query_string;  // raw, without '?'
  Headers headers;           // names lower-cased
  std::string body;
  std::string remote_ip;     // peer address, e.g. "127.0.0.1"
  std::unordered_map<std::string, std::string> path_params;  // filled by the router

  std::optional<std::string_view> header(std::string_view lower_name) const;
  // Percent-decoded value of the first `key=` in the query string.
  std::optional<std::string> query(std::string_view key) const;
  // The token of "Authorization: Bearer <token>".
  std::optional<std::string_view> bearer_token() const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  static Response json(int status, const boost::json::value& value);
  static Response text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
  // {"error":{"code","message"}} with the status error_http_status() gives.
  static Response error(const Error& err);
  static Response error(ErrorCode code, std::string message) { return error(Error{code, std::move(message)}); }
};

int error_http_status(ErrorCode code) noexcept;
std::string_view status_reason(int status) noexcept;

}  // namespace kaisar::net
