#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.hpp"

namespace kaisar::net {

class SseStream;
class WebSocketSession;

using HttpHandler = std::function<Response(Request&)>;
// Called once the request is known to be an SSE subscription. Return a Response to refuse
// (e.g. 401); return nullopt to accept: the server then sends the SSE headers and the
// stream stays open until the client leaves or the server stops.
using SseHandler = std::function<std::optional<Response>(Request&, std::shared_ptr<SseStream>)>;
// Called for a WebSocket upgrade request before the handshake is answered. Return a
// Response to refuse the upgrade; nullopt to accept (install the session's callbacks here).
using WebSocketHandler = std::function<std::optional<Response>(Request&, std::shared_ptr<WebSocketSession>)>;

// Routes by method and path pattern. Patterns are literal segments and "{name}"
// placeholders that match one non-empty segment: "/api/v1/providers/{id}".
class Router {
 public:
  void add(std::string method, std::string pattern, HttpHandler handler);
  void add_sse(std::string pattern, SseHandler handler);        // GET
  void add_websocket(std::string pattern, WebSocketHandler handler);  // GET + Upgrade

  struct Route {
    enum class Kind { kHttp, kSse, kWebSocket } kind = Kind::kHttp;
    std::string method;
    std::string pattern;
    HttpHandler http;
    SseHandler sse;
    WebSocketHandler websocket;
  };

  struct Match {
    const Route* route = nullptr;  // null: see status
    int status = 404;              // 404 no such path, 405 path exists for other methods
    std::string allow;             // for 405: "GET, POST"
  };
  // Fills request.path_params on success.
  Match match(Request& request) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace kaisar::net
