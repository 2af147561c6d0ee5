#include "net/router.hpp"

#include <algorithm>

namespace kaisar::net {

namespace {

// Next '/'-separated segment of `rest` (which starts after a '/'), advancing `rest`.
std::string_view next_segment(std::string_view& rest, bool& more) {
  auto slash = rest.find('/');
  std::string_view segment = rest.substr(0, slash);
  more = slash != std::string_view::npos;
  rest = more ? rest.substr(slash + 1) : std::string_view{};
  return segment;
}

bool is_placeholder(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Matches `path` against `pattern`; on success fills params and counts literal segments,
// which decide between overlapping patterns ("/offers/mine" beats "/offers/{id}").
bool match_pattern(std::string_view pattern, std::string_view path,
                   std::unordered_map<std::string, std::string>* params, int& literals) {
  if (pattern.empty() || path.empty() || pattern.front() != '/' || path.front() != '/') return false;
  pattern.remove_prefix(1);
  path.remove_prefix(1);
  literals = 0;
  bool pattern_more = true;
  bool path_more = true;
  while (pattern_more && path_more) {
    std::string_view p = next_segment(pattern, pattern_more);
    std::string_view s = next_segment(path, path_more);
    if (is_placeholder(p)) {
      if (s.empty()) return false;
      if (params != nullptr) (*params)[std::string(p.substr(1, p.size() - 2))] = std::string(s);
    } else {
      if (p != s) return false;
      ++literals;
    }
  }
  return !pattern_more && !path_more;
}

void add_allowed(std::vector<std::string_view>& allowed, std::string_view method) {
  if (std::find(allowed.begin(), allowed.end(), method) == allowed.end()) allowed.push_back(method);
}

}  // namespace

void Router::add(std::string method, std::string pattern, HttpHandler handler) {
  Route route;
  route.kind = Route::Kind::kHttp;
  route.method = std::move(method);
  route.pattern = std::move(pattern);
  route.http = std::move(handler);
  routes_.push_back(std::move(route));
}

void Router::add_sse(std::string pattern, SseHandler handler) {
  Route route;
  route.kind = Route::Kind::kSse;
  route.method = "GET";
  route.pattern = std::move(pattern);
  route.sse = std::move(handler);
  routes_.push_back(std::move(route));
}

void Router::add_websocket(std::string pattern, WebSocketHandler handler) {
  Route route;
  route.kind = Route::Kind::kWebSocket;
  route.method = "GET";
  route.pattern = std::move(pattern);
  route.websocket = std::move(handler);
  routes_.push_back(std::move(route));
}

Router::Match Router::match(Request& request) const {
  Match result;
  const Route* best = nullptr;
  int best_literals = -1;
  bool best_exact = false;
  std::vector<std::string_view> allowed;
  for (const Route& route : routes_) {
    int literals = 0;
    if (!match_pattern(route.pattern, request.path, nullptr, literals)) continue;
    bool exact = route.method == request.method;
    // HEAD is served by the GET handler of plain routes; the server leaves out the body.
    bool head_as_get = request.method == "HEAD" && route.method == "GET" && route.kind == Route::Kind::kHttp;
    add_allowed(allowed, route.method);
    if (route.method == "GET" && route.kind == Route::Kind::kHttp) add_allowed(allowed, "HEAD");
    if (!exact && !head_as_get) continue;
    // Prefer more literal segments, then an exact method over HEAD-as-GET, then the first added.
    if (literals > best_literals || (literals == best_literals && exact && !best_exact)) {
      best = &route;
      best_literals = literals;
      best_exact = exact;
    }
  }
  if (best != nullptr) {
    request.path_params.clear();
    int literals = 0;
    match_pattern(best->pattern, request.path, &request.path_params, literals);
    result.route = best;
    result.status = 200;
    return result;
  }
  if (!allowed.empty()) {
    result.status = 405;
    for (std::size_t i = 0; i < allowed.size(); ++i) {
      if (i > 0) result.allow += ", ";
      result.allow += allowed[i];
    }
  }
  return result;
}

}  // namespace kaisar::net
