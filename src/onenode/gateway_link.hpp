#pragma once

#include <boost/json.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crypto/address.hpp"
#include "gateway/gateway.hpp"
#include "net/http.hpp"
#include "net/server.hpp"

namespace kaisar::onenode {

// What a lease's ports look like from outside: the gateway's endpoints, host and token.
struct Exposure {
  std::vector<gateway::Gateway::Endpoint> endpoints;
  std::string public_host;
  std::string access_token;
};

// A `kaisar gateway` process linked to OneNode over a WebSocket (GET /api/v1/gateway/link,
// `Authorization: Bearer <link token>`; docs/gateway.md). OneNode tells it which providers
// may open tunnels and which leases' ports to expose; it answers with the public ports and
// the access token. One gateway at a time (a new link replaces the old). Thread-safe.
class RemoteGateway {
 public:
  // `online` lists the providers online now (lower-case ids), sent when a gateway links.
  RemoteGateway(std::string token, std::function<std::vector<std::string>()> online);

  // The WebSocket route's handler: refuses a wrong or missing token (401). Messages are
  // handled on the server's thread; a message from the gateway never blocks on OneNode.
  std::optional<net::Response> accept(net::Request& request, std::shared_ptr<net::WebSocketSession> session);

  void expose(const std::string& lease_id, const crypto::Address& provider, const std::vector<gateway::Gateway::Port>& ports);
  void withdraw(const std::string& lease_id);
  void provider_status(const std::string& provider_id, bool online);
  // The lease's endpoints once the gateway answered; nullopt before (or without exposure).
  std::optional<Exposure> exposure(const std::string& lease_id) const;
  // Whether the lease waits for the gateway's answer.
  bool exposing(const std::string& lease_id) const;
  // {"url","certificate_sha256"} of the linked gateway's tunnels; null while none linked yet.
  boost::json::value tunnel() const;
  bool linked() const;

  // Called (on the server's thread) when a gateway links with its tunnel address.
  std::function<void(const boost::json::value& tunnel)> on_tunnel;

 private:
  struct Wanted {
    std::string provider;
    std::vector<gateway::Gateway::Port> ports;
  };
  void send(const std::string& text);
  void handle(const std::shared_ptr<net::WebSocketSession>& session, std::string_view text);

  std::string token_;
  std::function<std::vector<std::string>()> online_;
  mutable std::mutex mutex_;
  std::weak_ptr<net::WebSocketSession> session_;
  boost::json::value tunnel_;
  std::string public_host_;
  std::map<std::string, Wanted> wanted_;
  std::map<std::string, Exposure> exposed_;
  std::set<std::string> failed_;
};

}  // namespace kaisar::onenode
