#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "crypto/address.hpp"
#include "net/server.hpp"
#include "onenode/metrics.hpp"
#include "onenode/registry.hpp"

namespace kaisar::onenode {

// A node's hello on an agent's or a checker's channel: the node key's EIP-191 signature of
// the channel's one-time nonce, and the owner wallet's binding of that node key.
struct NodeHello {
  crypto::Address node;
  crypto::Address owner;
  std::string issued_at;          // of the binding
  std::string binding_signature;  // 0x-hex, as sent
};
// The binding text the owner signs (protocol::binding_message for providers,
// protocol::checker_binding_message for checkers).
using BindingText = std::string (*)(std::string_view node, std::string_view owner, std::string_view issued_at);
// kInvalidArgument for a malformed hello, kUnauthenticated for a signature that is not the
// node key's or the owner's `binding_name` ("binding", "checker binding").
Result<NodeHello> verify_node_hello(const boost::json::object& hello, std::string_view nonce, BindingText binding_text,
                                    std::string_view binding_name);

// The agents' control channel (protocol in core/protocol.hpp): authenticates each
// WebSocket session with the node key, then takes heartbeats on it.
class ControlChannel {
 public:
  ControlChannel(ProviderRegistry& registry, Metrics& metrics, std::chrono::seconds heartbeat_interval,
                 std::chrono::seconds handshake_timeout = std::chrono::seconds{10});
  std::optional<net::Response> accept(net::Request& request, std::shared_ptr<net::WebSocketSession> session);
  // Closes sessions that did not authenticate within the handshake timeout.
  void sweep();
  std::size_t connected() const { return connected_.load(std::memory_order_relaxed); }

  // Sends `text` to the provider's authenticated session; false when it has none.
  bool send_to(const std::string& provider_id, const std::string& text);
  // To every authenticated agent.
  void broadcast(const std::string& text);
  bool has_session(const std::string& provider_id);
  // Called (on a server thread) when a provider's agent authenticated, and for each
  // lease_status message it sends (provider id, the message).
  std::function<void(const std::string&)> on_agent_online;
  // Where the agent's tunnel goes ({"url", "certificate_sha256"}), sent in the welcome;
  // null without a gateway. Set before agents connect.
  std::function<boost::json::value()> gateway;
  // Called when a provider's current session closes (not when a newer one replaced it).
  std::function<void(const std::string&)> on_agent_offline;
  // The provider's leases that should have a container (sent in the welcome, so that the
  // agent removes any other container it labelled).
  std::function<std::vector<std::string>(const std::string&)> live_leases;
  std::function<void(const std::string&, const boost::json::object&)> on_lease_status;
  std::function<void(const std::string&, const boost::json::object&)> on_lease_usage;
  // A Proof of Physical Work answer ("popw" envelope) from the provider's agent.
  std::function<void(const std::string&, const boost::json::object&)> on_popw;

  // Concurrent log streams: per renter and per lease (so that one renter cannot take every
  // slot), and in all.
  struct LogStreamLimits {
    std::size_t per_renter = 8;
    std::size_t per_lease = 4;
    std::size_t total = 1000;
  };
  LogStreamLimits log_limits;  // set before serving

  // Asks the provider's agent for a lease's output and relays it to `stream` ("log" events
  // with the text, then "end"). Else the refusal: 429 past the renter's or the lease's cap,
  // 503 past the total or when the provider is not connected.
  std::optional<net::Response> stream_logs(const std::string& provider_id, const std::string& renter, const std::string& lease_id,
                           bool follow, std::shared_ptr<net::SseStream> stream);

 private:
  struct Pending {
    std::weak_ptr<net::WebSocketSession> session;
    std::shared_ptr<void> state;
    std::chrono::steady_clock::time_point deadline;
  };
  ProviderRegistry& registry_;
  std::chrono::seconds heartbeat_interval_;
  std::chrono::seconds handshake_timeout_;
  std::atomic<std::uint64_t>& rejected_;
  std::atomic<std::size_t> connected_{0};
  std::mutex pending_mutex_;
  std::vector<Pending> pending_;
  struct LogRequest {
    std::string provider_id;
    std::weak_ptr<net::SseStream> stream;
    std::string renter;
    std::string lease_id;
  };
  void relay_log(const std::string& provider_id, const boost::json::object& message, bool end);
  std::mutex logs_mutex_;
  std::map<std::string, LogRequest> log_requests_;  // by request id
  std::mutex sessions_mutex_;
  std::map<std::string, std::weak_ptr<net::WebSocketSession>> sessions_;  // by lower-case provider id
};

}  // namespace kaisar::onenode
