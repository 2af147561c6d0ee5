#include "gateway/link.hpp"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "core/json_fields.hpp"
#include "gateway/frame.hpp"
#include "net/client.hpp"
#include "net/redial.hpp"

namespace kaisar::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::optional<std::uint16_t> port_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_int64() || v->get_int64() < 1 || v->get_int64() > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v->get_int64());
}

bool flag_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

}  // namespace

bool lease_id_ok(std::string_view id) {
  if (id.empty() || id.size() > kMaxLeaseId) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

json::object expose_message(const std::string& lease_id, const std::string& provider, const std::vector<Gateway::Port>& ports) {
  json::array list;
  for (const auto& p : ports) list.push_back(json::object{{"port", p.container_port}, {"tcp", p.tcp}, {"open", p.open_to_all}});
  return json::object{{"type", "expose"}, {"lease_id", lease_id}, {"provider", provider}, {"ports", std::move(list)}};
}

Result<ExposeRequest> parse_expose(const json::object& message) {
  ExposeRequest r;
  r.lease_id = string_field(message, "lease_id");
  if (!lease_id_ok(r.lease_id)) return fail(ErrorCode::kInvalidArgument, "expose: bad lease_id");
  auto provider = crypto::Address::parse(string_field(message, "provider"));
  if (!provider) return fail(ErrorCode::kInvalidArgument, "expose: bad provider");
  r.provider = *provider;
  const json::value* ports = message.if_contains("ports");
  if (ports == nullptr || !ports->is_array() || ports->get_array().size() > 32) {
    return fail(ErrorCode::kInvalidArgument, "expose: ports must be an array of at most 32");
  }
  for (const auto& p : ports->get_array()) {
    if (!p.is_object()) return fail(ErrorCode::kInvalidArgument, "expose: bad port");
    auto port = port_of(p.get_object(), "port");
    if (!port) return fail(ErrorCode::kInvalidArgument, "expose: bad port");
    r.ports.push_back(Gateway::Port{*port, flag_of(p.get_object(), "tcp"), flag_of(p.get_object(), "open")});
  }
  return r;
}

json::object exposed_message(const std::string& lease_id, const std::vector<Gateway::Endpoint>& endpoints,
                             const std::string& access_token) {
  json::array list;
  for (const auto& e : endpoints) {
    list.push_back(json::object{{"port", e.port.container_port},
                                {"public_port", e.public_port},
                                {"tcp", e.port.tcp},
                                {"open", e.port.open_to_all}});
  }
  return json::object{{"type", "exposed"}, {"lease_id", lease_id}, {"endpoints", std::move(list)}, {"access_token", access_token}};
}

Result<Exposed> parse_exposed(const json::object& message) {
  Exposed r;
  r.lease_id = string_field(message, "lease_id");
  r.access_token = string_field(message, "access_token");
  if (!lease_id_ok(r.lease_id) || r.access_token.size() > 128) return fail(ErrorCode::kInvalidArgument, "exposed: bad lease_id or token");
  const json::value* endpoints = message.if_contains("endpoints");
  if (endpoints == nullptr || !endpoints->is_array() || endpoints->get_array().size() > 32) {
    return fail(ErrorCode::kInvalidArgument, "exposed: endpoints must be an array of at most 32");
  }
  for (const auto& e : endpoints->get_array()) {
    if (!e.is_object()) return fail(ErrorCode::kInvalidArgument, "exposed: bad endpoint");
    auto port = port_of(e.get_object(), "port");
    auto public_port = port_of(e.get_object(), "public_port");
    if (!port || !public_port) return fail(ErrorCode::kInvalidArgument, "exposed: bad endpoint");
    r.endpoints.push_back(
        Gateway::Endpoint{Gateway::Port{*port, flag_of(e.get_object(), "tcp"), flag_of(e.get_object(), "open")}, *public_port});
  }
  return r;
}

bool OnlineProviders::contains(const crypto::Address& provider) const {
  std::lock_guard lock(mutex_);
  return ids_.contains(provider.to_lower_hex());
}

void OnlineProviders::replace(std::vector<std::string> ids) {
  std::lock_guard lock(mutex_);
  ids_ = std::set<std::string>(std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
}

void OnlineProviders::update(const std::string& id, bool online) {
  std::lock_guard lock(mutex_);
  if (online) ids_.insert(id);
  else ids_.erase(id);
}

struct LinkedGateway::Impl {
  Impl(LinkOptions o, Gateway& g, std::shared_ptr<OnlineProviders> p) : options(std::move(o)), gateway(g), online(std::move(p)) {}
  LinkOptions options;
  Gateway& gateway;
  std::shared_ptr<OnlineProviders> online;
  asio::io_context io{1};
  asio::steady_timer wake{io};
  std::shared_ptr<net::WebSocketClient> client;
  bool stopping = false;
  // Leases exposed for OneNode: withdrawn when OneNode, once linked again, no longer asks.
  std::set<std::string> exposed;

  void say(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // One message from OneNode; the answer (if any) goes back on the link.
  void handle(const json::object& m) {
    const std::string type = string_field(m, "type");
    if (type == "providers") {
      std::vector<std::string> ids;
      if (const json::value* list = m.if_contains("online"); list != nullptr && list->is_array()) {
        for (const auto& id : list->get_array()) {
          if (id.is_string() && id.get_string().size() == 42) ids.emplace_back(id.get_string());
        }
      }
      online->replace(std::move(ids));
    } else if (type == "provider") {
      const std::string id = string_field(m, "id");
      if (id.size() == 42) online->update(id, flag_of(m, "online"));
    } else if (type == "expose") {
      auto request = parse_expose(m);
      if (!request) {
        say("OneNode sent a bad expose: " + request.error().message);
        return;
      }
      auto endpoints = gateway.expose(request->lease_id, request->provider, request->ports);
      exposed.insert(request->lease_id);
      if (!endpoints) {
        client->send(json::serialize(json::object{
            {"type", "expose_failed"}, {"lease_id", request->lease_id}, {"message", endpoints.error().message}}));
        return;
      }
      client->send(json::serialize(exposed_message(request->lease_id, *endpoints, gateway.access_token(request->lease_id))));
    } else if (type == "synced") {
      // Everything OneNode still wants has been sent again: the rest ended meanwhile.
      std::set<std::string> keep;
      if (const json::value* list = m.if_contains("leases"); list != nullptr && list->is_array()) {
        for (const auto& id : list->get_array()) {
          if (id.is_string()) keep.emplace(id.get_string());
        }
      }
      for (auto it = exposed.begin(); it != exposed.end();) {
        if (keep.contains(*it)) {
          ++it;
          continue;
        }
        gateway.withdraw(*it);
        it = exposed.erase(it);
      }
    } else if (type == "withdraw") {
      const std::string lease_id = string_field(m, "lease_id");
      if (!lease_id_ok(lease_id)) return;
      gateway.withdraw(lease_id);
      exposed.erase(lease_id);
    }
  }
};

LinkedGateway::LinkedGateway(LinkOptions options, Gateway& gateway, std::shared_ptr<OnlineProviders> online)
    : impl_(std::make_unique<Impl>(std::move(options), gateway, std::move(online))) {}

LinkedGateway::~LinkedGateway() { stop(); }

void LinkedGateway::run() {
  Impl& s = *impl_;
  auto session = [this, &s]() -> asio::awaitable<Result<void>> {
    net::Headers headers{{"authorization", "Bearer " + s.options.token}};
    const std::string url = net::websocket_url(s.options.onenode_url, kLinkPath);
    auto connected = co_await net::WebSocketClient::connect(s.io.get_executor(), url, headers);
    if (!connected) co_return std::unexpected(connected.error());
    s.client = *connected;
    if (s.stopping) co_return Result<void>{};
    s.client->send(json::serialize(json::object{
        {"type", "hello"},
        {"tunnel", json::object{{"url", s.gateway.tunnel_url()}, {"certificate_sha256", s.gateway.certificate_sha256()}}},
        {"public_host", s.gateway.public_host()}}));
    links_.fetch_add(1);
    s.say("linked to OneNode at " + s.options.onenode_url);
    for (;;) {
      auto text = co_await s.client->read();
      if (!text) co_return std::unexpected(text.error());
      boost::system::error_code ec;
      json::value v = json::parse(*text, ec);
      if (ec || !v.is_object()) continue;
      s.handle(v.get_object());
    }
  };
  auto redial = [this, &s, session]() -> asio::awaitable<void> {
    // Named first: GCC 12 mishandles temporaries in co_await expressions.
    const net::RedialOptions options{s.options.initial_backoff, s.options.max_backoff};
    auto stopping = [&s] { return s.stopping; };
    auto ups = [this] { return links_.load(); };
    auto down = [&s](const Result<void>& r, std::chrono::milliseconds delay) {
      if (s.client && s.client->is_open()) s.client->close();
      s.say("link to OneNode down (" + (r ? std::string("closed") : r.error().message) + "); retrying in " +
            std::to_string(delay.count()) + " ms");
    };
    co_await net::redial(s.wake, options, stopping, ups, session, down);
  };
  asio::co_spawn(s.io, redial(), asio::detached);
  s.io.run();
}

void LinkedGateway::stop() {
  Impl& s = *impl_;
  asio::post(s.io, [&s] {
    s.stopping = true;
    s.wake.cancel();
    if (s.client) s.client->close();
  });
}

}  // namespace kaisar::gateway
