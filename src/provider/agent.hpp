#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/hardware.hpp"
#include "provider/identity.hpp"

namespace kaisar::provider {

struct Prices {
  std::string gpu_hour = "0";
  std::string cpu_core_hour = "0";
  std::string ram_gb_hour = "0";
};

struct AgentOptions {
  std::string onenode_url;                 // https://host[:port] of OneNode (http:// on loopback)
  // Plain http:// to a OneNode off this machine (private dev networks only): OneNode can
  // make this agent run and remove containers, so its channel is TLS otherwise.
  bool insecure_dev = false;
  std::optional<std::string> region;       // declared region, e.g. "eu-west"
  // Prices in token base units (decimal): per GPU-hour, per CPU-core-hour, per GB-of-RAM-hour.
  // Without prices the provider registers but offers nothing for rent.
  std::optional<Prices> prices;
  // The Docker/Podman API socket that runs leases' containers; empty: this agent runs none.
  std::string engine_socket;
  // Where the demo image's root filesystem tarball is (imported when first needed).
  std::string demo_image_tar;
  // Local images (localhost/…) leases may run; every other image comes from a registry.
  std::set<std::string> local_images;
  // Refuse leases while the host firewall cannot be installed; false only for development.
  bool require_firewall = true;
  // The gateway tunnel's address and certificate pin; empty: as OneNode's welcome says.
  std::string gateway_url;
  std::string gateway_sha256;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  std::string agent_version = "kaisar-agent/0.1.0";
};

enum class AgentState { kConnecting, kOnline, kBackingOff, kStopped };

// Keeps one outbound control channel to OneNode: authenticates with the node key, sends
// heartbeats at the interval OneNode asks for, and reconnects with exponential backoff and
// jitter whenever the channel drops or goes silent.
class Agent {
 public:
  Agent(AgentOptions options, ProviderIdentity identity, Hardware hardware);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Blocks until stop(). Logs through `log` (one line each), if set.
  void run();
  // Thread-safe; makes run() return soon.
  void stop();

  std::function<void(const std::string&)> log;
  AgentState state() const { return state_.load(); }
  std::uint64_t heartbeats_acked() const { return acked_.load(); }
  std::uint64_t sessions() const { return sessions_.load(); }
  // Times the gateway tunnel came up, and whether it is up now.
  std::uint64_t tunnels() const { return tunnels_.load(); }
  bool tunnel_up() const { return tunnel_up_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<AgentState> state_{AgentState::kConnecting};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> sessions_{0};
  std::atomic<std::uint64_t> tunnels_{0};
  std::atomic<bool> tunnel_up_{false};
};

}  // namespace kaisar::provider
