#include "onenode/gateway_link.hpp"

#include <openssl/crypto.h>

#include "gateway/link.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

RemoteGateway::RemoteGateway(std::string token, std::function<std::vector<std::string>()> online)
    : token_(std::move(token)), online_(std::move(online)) {}

std::optional<net::Response> RemoteGateway::accept(net::Request& request, std::shared_ptr<net::WebSocketSession> session) {
  auto given = request.bearer_token();
  if (!given || given->size() != token_.size() || token_.empty() ||
      CRYPTO_memcmp(given->data(), token_.data(), token_.size()) != 0) {
    return net::Response::error(ErrorCode::kUnauthenticated, "the gateway link needs Authorization: Bearer <link token>");
  }
  session->lift_message_limit();  // the link token is its credential
  std::weak_ptr<net::WebSocketSession> weak = session;
  session->on_message([this, weak](std::string_view text) {
    if (auto s = weak.lock()) handle(s, text);
  });
  session->on_close([this, weak] {
    std::lock_guard lock(mutex_);
    if (session_.lock() == weak.lock()) session_.reset();
  });
  return std::nullopt;
}

void RemoteGateway::handle(const std::shared_ptr<net::WebSocketSession>& session, std::string_view text) {
  if (text.size() > 64 * 1024) return;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return;
  const json::object& m = v.get_object();
  const json::value* type = m.if_contains("type");
  if (type == nullptr || !type->is_string()) return;
  if (type->get_string() == "hello") {
    const json::value* tunnel = m.if_contains("tunnel");
    const json::value* host = m.if_contains("public_host");
    if (tunnel == nullptr || !tunnel->is_object() || host == nullptr || !host->is_string()) return;
    json::value announced;
    std::shared_ptr<net::WebSocketSession> replaced;
    json::array online;
    for (auto& id : online_()) online.push_back(json::value(id));  // before our lock: the registry's is taken
    {
      std::lock_guard lock(mutex_);
      if (auto old = session_.lock(); old && old != session) replaced = old;
      session_ = session;
      tunnel_ = *tunnel;
      public_host_ = std::string(host->get_string());
      announced = tunnel_;
      // Sent under the lock (sending only queues), like expose() and withdraw(): the
      // gateway hears every change in the order it happened.
      session->send(json::serialize(json::object{{"type", "providers"}, {"online", std::move(online)}}));
      json::array leases;
      for (const auto& [id, w] : wanted_) {
        session->send(json::serialize(gateway::expose_message(id, w.provider, w.ports)));
        leases.push_back(json::value(id));
      }
      session->send(json::serialize(json::object{{"type", "synced"}, {"leases", std::move(leases)}}));
    }
    if (replaced) replaced->close("another gateway linked");
    if (on_tunnel) on_tunnel(announced);
    return;
  }
  if (type->get_string() == "exposed") {
    auto exposed = gateway::parse_exposed(m);
    if (!exposed) return;
    std::lock_guard lock(mutex_);
    if (!wanted_.contains(exposed->lease_id)) return;  // withdrawn meanwhile
    exposed_[exposed->lease_id] = Exposure{std::move(exposed->endpoints), public_host_, std::move(exposed->access_token)};
    return;
  }
  if (type->get_string() == "expose_failed") {
    const json::value* id = m.if_contains("lease_id");
    std::lock_guard lock(mutex_);
    if (id != nullptr && id->is_string()) failed_.insert(std::string(id->get_string()));
  }
}

// Callers hold mutex_: messages leave in the order the changes were made.
void RemoteGateway::send(const std::string& text) {
  if (auto s = session_.lock()) s->send(text);
}

void RemoteGateway::expose(const std::string& lease_id, const crypto::Address& provider,
                           const std::vector<gateway::Gateway::Port>& ports) {
  std::lock_guard lock(mutex_);
  wanted_[lease_id] = Wanted{provider.to_lower_hex(), ports};
  failed_.erase(lease_id);
  send(json::serialize(gateway::expose_message(lease_id, provider.to_lower_hex(), ports)));
}

void RemoteGateway::withdraw(const std::string& lease_id) {
  std::lock_guard lock(mutex_);
  if (wanted_.erase(lease_id) == 0) return;
  exposed_.erase(lease_id);
  failed_.erase(lease_id);
  send(json::serialize(json::object{{"type", "withdraw"}, {"lease_id", lease_id}}));
}

void RemoteGateway::provider_status(const std::string& provider_id, bool online) {
  std::lock_guard lock(mutex_);
  send(json::serialize(json::object{{"type", "provider"}, {"id", provider_id}, {"online", online}}));
}

std::optional<Exposure> RemoteGateway::exposure(const std::string& lease_id) const {
  std::lock_guard lock(mutex_);
  auto it = exposed_.find(lease_id);
  if (it == exposed_.end()) return std::nullopt;
  return it->second;
}

bool RemoteGateway::exposing(const std::string& lease_id) const {
  std::lock_guard lock(mutex_);
  return wanted_.contains(lease_id) && !exposed_.contains(lease_id) && !failed_.contains(lease_id) && !session_.expired();
}

json::value RemoteGateway::tunnel() const {
  std::lock_guard lock(mutex_);
  return tunnel_;
}

bool RemoteGateway::linked() const {
  std::lock_guard lock(mutex_);
  return !session_.expired();
}

}  // namespace kaisar::onenode
