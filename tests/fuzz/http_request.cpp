// Fuzzes the server's plain-HTTP request path: raw bytes through Beast's request parser
// (net::parse_http_request), the Router and net::dispatch into a JSON-echo handler, and the
// conversion of the answer into the Beast response the server writes.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/beast_message.hpp"
#include "net/request_parse.hpp"
#include "net/router.hpp"

namespace {

using kaisar::ErrorCode;
using kaisar::net::Request;
using kaisar::net::Response;
using kaisar::net::Router;

constexpr std::size_t kBodyLimit = 64 << 10;

Router make_router() {
  Router router;
  auto echo = [](Request& r) {
    boost::system::error_code ec;
    boost::json::value body = boost::json::parse(r.body, ec);
    if (ec) return Response::error(ErrorCode::kInvalidArgument, "body is not JSON: " + ec.message());
    boost::json::object out;
    out["id"] = r.path_params.at("id");
    out["q"] = r.query("q").value_or("");
    out["token"] = std::string(r.bearer_token().value_or(""));
    out["body"] = std::move(body);
    return Response::json(200, out);
  };
  router.add("POST", "/echo/{id}", echo);
  router.add("PUT", "/echo/{id}", echo);
  router.add("GET", "/items/{id}", [](Request& r) {
    return Response::text(200, r.path_params.at("id") + "|" + r.query("q").value_or("-"));
  });
  router.add("GET", "/items/mine", [](Request&) -> Response { throw std::runtime_error("handler failure"); });
  router.add_sse("/events", [](Request&, auto) { return std::optional<Response>{}; });
  router.add_websocket("/ws", [](Request&, auto) { return std::optional<Response>{}; });
  return router;
}

// Every error the server sends has the {"error":{"code","message"}} shape.
void check_error_body(const Response& response) {
  boost::system::error_code ec;
  auto value = boost::json::parse(response.body, ec);
  if (ec || !value.is_object()) std::abort();
  auto* error = value.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) std::abort();
  auto* code = error->as_object().if_contains("code");
  auto* message = error->as_object().if_contains("message");
  if (code == nullptr || !code->is_string() || message == nullptr || !message->is_string()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Router router = make_router();
  std::string_view raw(reinterpret_cast<const char*>(data), size);

  auto request = kaisar::net::parse_http_request(raw, kBodyLimit);
  if (!request) {
    if (request.error().message.empty()) std::abort();
    Response refusal = Response::error(request.error());
    if (refusal.status != 400 && refusal.status != 413 && refusal.status != 500) std::abort();
    check_error_body(refusal);
    return 0;
  }
  if (request->body.size() > kBodyLimit) std::abort();
  if (request->path.find('?') != std::string::npos && request->target.find("%3F") == std::string::npos &&
      request->target.find("%3f") == std::string::npos) {
    std::abort();  // the query must have been split off
  }

  const bool head = request->method == "HEAD";
  Response response = kaisar::net::dispatch(router, *request);
  if (response.status < 100 || response.status > 599) std::abort();
  if (response.status >= 400) check_error_body(response);

  const std::size_t body_size = response.body.size();
  auto message = kaisar::net::to_beast(std::move(response), true, head);
  if (message[boost::beast::http::field::server] != "kaisar") std::abort();
  if (message[boost::beast::http::field::content_type].empty()) std::abort();
  if (head && !message.body().empty()) std::abort();
  if (!head && message.body().size() != body_size && message.result_int() != 204 && message.result_int() != 304) {
    std::abort();
  }
  return 0;
}
