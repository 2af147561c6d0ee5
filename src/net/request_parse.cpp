#include "net/request_parse.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cctype>
#include <exception>

#include "net/beast_message.hpp"

namespace kaisar::net {

namespace http = boost::beast::http;

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool header_safe(std::string_view text) {
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

}  // namespace

void split_target(std::string_view target, std::string& path, std::string& query_string) {
  auto cut = target.find_first_of("?#");
  path = percent_decode(target.substr(0, cut), false);
  query_string.clear();
  if (cut != std::string_view::npos && target[cut] == '?') {
    std::string_view query = target.substr(cut + 1);
    query_string = std::string(query.substr(0, query.find('#')));
  }
}

Request to_request(BeastRequest& message, std::string remote_ip) {
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  split_target(request.target, request.path, request.query_string);
  request.headers.reserve(8);
  for (const auto& field : message) {
    request.headers.emplace_back(lower(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_ip = std::move(remote_ip);
  return request;
}

BeastResponse to_beast(Response&& response, bool keep_alive, bool head_request) {
  BeastResponse out;
  out.version(11);
  out.result(static_cast<unsigned>(response.status));
  out.reason(status_reason(response.status));
  bool has_content_type = false;
  for (auto& [name, value] : response.headers) {
    if (!header_safe(name) || !header_safe(value) || name.empty()) continue;
    std::string lname = lower(name);
    // Framing is ours to decide.
    if (lname == "content-length" || lname == "transfer-encoding" || lname == "connection") continue;
    if (lname == "content-type") has_content_type = true;
    out.insert(name, value);
  }
  if (!has_content_type) out.set(http::field::content_type, "text/plain; charset=utf-8");
  out.set(http::field::server, "kaisar");
  bool no_body = response.status < 200 || response.status == 204 || response.status == 304;
  if (no_body) response.body.clear();
  std::size_t length = response.body.size();
  if (!head_request) out.body() = std::move(response.body);
  if (!no_body) out.content_length(length);
  out.keep_alive(keep_alive);
  return out;
}

Result<Request> parse_http_request(std::string_view raw, std::size_t body_limit) noexcept {
  try {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(body_limit);
    boost::system::error_code ec;
    std::size_t offset = 0;
    while (!parser.is_done() && offset < raw.size()) {
      std::size_t used = parser.put(boost::asio::buffer(raw.data() + offset, raw.size() - offset), ec);
      if (ec == http::error::need_more) {
        ec = {};
        if (used == 0) break;
      }
      if (ec) break;
      offset += used;
    }
    if (!ec && !parser.is_done() && parser.got_some()) {
      parser.put_eof(ec);
    }
    if (ec == http::error::body_limit) {
      return fail(ErrorCode::kPayloadTooLarge, "request body exceeds " + std::to_string(body_limit) + " bytes");
    }
    if (ec) return fail(ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message());
    if (!parser.is_done()) return fail(ErrorCode::kInvalidArgument, "incomplete HTTP request");
    BeastRequest message = parser.release();
    return to_request(message, {});
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, e.what());
  }
}

Response dispatch(const Router::Match& match, Request& request) {
  if (match.route == nullptr) {
    if (match.status == 405) {
      Response r = Response::error(ErrorCode::kInvalidArgument,
                                   "method " + request.method + " not allowed for " + request.path);
      r.status = 405;
      r.headers.emplace_back("allow", match.allow);
      return r;
    }
    return Response::error(ErrorCode::kNotFound, "no route for " + request.method + " " + request.path);
  }
  switch (match.route->kind) {
    case Router::Route::Kind::kHttp:
      break;
    case Router::Route::Kind::kWebSocket: {
      Response r = Response::error(ErrorCode::kInvalidArgument, request.path + " needs a WebSocket upgrade");
      r.status = 426;
      r.headers.emplace_back("upgrade", "websocket");
      return r;
    }
    case Router::Route::Kind::kSse:
      return Response::error(ErrorCode::kInternal, request.path + " is an event stream");
  }
  try {
    return match.route->http(request);
  } catch (const std::exception& e) {
    return Response::error(ErrorCode::kInternal, std::string("handler failed: ") + e.what());
  } catch (...) {
    return Response::error(ErrorCode::kInternal, "handler failed");
  }
}

Response dispatch(const Router& router, Request& request) {
  Router::Match match = router.match(request);
  return dispatch(match, request);
}

}  // namespace kaisar::net
