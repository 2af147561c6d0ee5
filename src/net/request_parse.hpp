#pragma once

// Private to net: the parts of the HTTP request path that need no socket, shared by the
// server and the fuzz target so that the fuzzed code is the code that serves requests.

#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "net/http.hpp"
#include "net/router.hpp"

namespace kaisar::net {

// %XX escapes decoded; malformed escapes are kept as they are. With plus_as_space, '+'
// becomes ' ' (form encoding, used for query strings only).
std::string percent_decode(std::string_view text, bool plus_as_space);

// Reverse of error_http_status for statuses a client receives.
ErrorCode error_code_for_status(int status) noexcept;

// Splits a request target into the decoded path and the raw query string.
void split_target(std::string_view target, std::string& path, std::string& query_string);

// Parses one complete raw HTTP/1.x request (head and body, Content-Length or chunked).
// kPayloadTooLarge past body_limit, kInvalidArgument for anything malformed or incomplete.
Result<Request> parse_http_request(std::string_view raw, std::size_t body_limit) noexcept;

// Runs the handler of an already matched plain-HTTP route: 404/405 JSON errors when
// nothing matched, 500 when the handler throws. SSE and WebSocket routes are answered
// with errors here; the server handles them itself before calling this.
Response dispatch(const Router::Match& match, Request& request);
Response dispatch(const Router& router, Request& request);

}  // namespace kaisar::net
