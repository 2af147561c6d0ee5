#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "net/server.hpp"
#include "onenode/metrics.hpp"
#include "onenode/registry.hpp"

namespace kaisar::onenode {

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
};

}  // namespace kaisar::onenode
