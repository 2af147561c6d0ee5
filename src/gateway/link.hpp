#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "crypto/address.hpp"
#include "gateway/gateway.hpp"

// The link between OneNode and a `kaisar gateway` process (docs/gateway.md, "A gateway of
// its own"): a WebSocket the gateway dials to OneNode's /api/v1/gateway/link with a shared
// token, carrying JSON messages:
//
//   gateway → OneNode  {"type":"hello","tunnel":{"url","certificate_sha256"},"public_host"}
//   OneNode → gateway  {"type":"providers","online":[id…]}   {"type":"provider","id","online"}
//   OneNode → gateway  {"type":"expose","lease_id","provider","ports":[{"port","tcp","open"}…]}
//   OneNode → gateway  {"type":"withdraw","lease_id"}
//   OneNode → gateway  {"type":"synced","leases":[id…]}   (after re-sending what it wants; the rest ended)
//   gateway → OneNode  {"type":"exposed","lease_id","endpoints":[{"port","public_port","tcp","open"}…],"access_token"}
//   gateway → OneNode  {"type":"expose_failed","lease_id","message"}
namespace kaisar::gateway {

inline constexpr std::string_view kLinkPath = "/api/v1/gateway/link";

boost::json::object expose_message(const std::string& lease_id, const std::string& provider, const std::vector<Gateway::Port>& ports);
struct ExposeRequest {
  std::string lease_id;
  crypto::Address provider;
  std::vector<Gateway::Port> ports;
};
Result<ExposeRequest> parse_expose(const boost::json::object& message);

boost::json::object exposed_message(const std::string& lease_id, const std::vector<Gateway::Endpoint>& endpoints,
                                    const std::string& access_token);
struct Exposed {
  std::string lease_id;
  std::vector<Gateway::Endpoint> endpoints;
  std::string access_token;
};
Result<Exposed> parse_exposed(const boost::json::object& message);

// A lease id as the gateway takes it: 1 to 64 of [A-Za-z0-9_-].
bool lease_id_ok(std::string_view id);

struct LinkOptions {
  std::string onenode_url;  // http(s)://… of OneNode
  std::string token;        // the link token OneNode was given
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  std::function<void(const std::string&)> log;
};

// Providers OneNode says are online: who may open a tunnel. Thread-safe (a leaf lock).
class OnlineProviders {
 public:
  bool contains(const crypto::Address& provider) const;
  void replace(std::vector<std::string> ids);  // lower-case hex
  void update(const std::string& id, bool online);

 private:
  mutable std::mutex mutex_;
  std::set<std::string> ids_;
};

// `kaisar gateway`: a Gateway (started with `online` as its authorizer) whose leases come
// from OneNode over the link. run() keeps the link up, reconnecting with backoff, until stop().
class LinkedGateway {
 public:
  LinkedGateway(LinkOptions options, Gateway& gateway, std::shared_ptr<OnlineProviders> online);
  ~LinkedGateway();
  LinkedGateway(const LinkedGateway&) = delete;
  LinkedGateway& operator=(const LinkedGateway&) = delete;

  void run();
  void stop();
  std::uint64_t links() const { return links_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> links_{0};
};

}  // namespace kaisar::gateway
