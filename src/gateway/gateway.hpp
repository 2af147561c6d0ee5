#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "crypto/address.hpp"
#include "store/database.hpp"

namespace kaisar::gateway {

struct GatewayOptions {
  std::string listen_host = "127.0.0.1";  // where the tunnel port and the public ports listen
  std::uint16_t tunnel_port = 0;          // agents dial wss://public_host:tunnel_port/ (0: any free)
  std::string public_host;                // how renters and agents reach this host (default: listen_host)
  // Public ports for leases: first..last; both 0: any free port the system gives.
  std::uint16_t first_port = 0;
  std::uint16_t last_port = 0;
  std::chrono::seconds cool_down{300};  // a lease's ports rest this long before another lease gets them
  // TLS certificate and key (PEM); a self-signed pair is made here when neither exists.
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  std::filesystem::path secret;  // the key of lease access tokens (made when missing)
  std::size_t max_tunnels = 10000;
  std::chrono::seconds idle_timeout{20};  // a tunnel silent this long (WebSocket pings unanswered) is dead
  // Before authentication: a tunnel connection must finish TLS, WebSocket and its signed
  // hello, and a client of an HTTP port send its first request head, within this time.
  std::chrono::seconds handshake_timeout{10};
  std::size_t max_handshakes = 256;              // tunnel connections not yet authenticated, in all
  std::size_t max_handshakes_per_address = 16;   // … from one IPv4 address or IPv6 /64
  std::size_t max_connections_per_address = 64;  // to one public port of a lease, from one address
  std::size_t max_connections_per_lease = 1024;  // to all public ports of a lease
  // Memory held for a lease's connections (each holds at most a flow-control window, 256 KiB)
  // and for all, tunnel queues included: past it the connection holding the most for a slow
  // reader is reset, and public sockets are not read while the total is over.
  std::size_t max_buffered_per_lease = 32u << 20;
  std::size_t max_buffered = 512u << 20;
  std::function<void(const std::string&)> log;  // one line per tunnel up/down
};

// The gateway ("VPN service"): providers' agents keep an outbound TLS WebSocket tunnel to it,
// authenticated by their node key; for each exposed port of a running lease it listens on
// a public port and relays each connection through the lease's provider's tunnel to the
// container. HTTP ports need the lease's access token unless public; raw TCP ports (SSH)
// rely on the service's own authentication. Runs its own thread. Thread-safe.
class Gateway {
 public:
  // Whether this address may open a tunnel (a registered provider). Called on the gateway's
  // thread: it must not wait for locks that are held while calling the gateway.
  using Authorizer = std::function<bool(const crypto::Address& provider)>;

  // `db` (optional) keeps allocations across restarts in the table gateway_ports
  // (migration_sql()); without it a restart forgets them.
  static Result<std::unique_ptr<Gateway>> start(GatewayOptions options, Authorizer authorize, store::Database* db = nullptr);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;
  void stop();

  std::uint16_t tunnel_port() const;
  // wss://public_host:tunnel_port/ and the certificate's SHA-256 that agents pin.
  std::string tunnel_url() const;
  const std::string& certificate_sha256() const;
  const std::string& public_host() const;

  struct Port {
    std::uint16_t container_port = 0;
    bool tcp = false;          // raw TCP (no token check); else HTTP
    bool open_to_all = false;  // HTTP without the token
  };
  struct Endpoint {
    Port port;
    std::uint16_t public_port = 0;
  };
  // Listens for the lease's ports (again, after a restart: the same public ports). Idempotent.
  Result<std::vector<Endpoint>> expose(const std::string& lease_id, const crypto::Address& provider,
                                       const std::vector<Port>& ports);
  // What the lease has exposed now (empty once withdrawn).
  std::vector<Endpoint> endpoints(const std::string& lease_id) const;
  // The lease ended: its ports stop accepting, its connections close, its public ports cool down.
  void withdraw(const std::string& lease_id);
  // The token HTTP ports of the lease need in every request (Authorization: Bearer,
  // X-Kaisar-Token, a kaisar_token cookie or query parameter; taken out before the container).
  std::string access_token(const std::string& lease_id) const;

  bool connected(const crypto::Address& provider) const;
  std::size_t tunnels() const;
  // Bytes received from tunnels and waiting for slow clients (what the budgets bound).
  std::size_t buffered_bytes() const;
  // Closes a provider's tunnel (the agent reconnects). For operators and tests.
  void disconnect(const crypto::Address& provider);

  static const char* migration_sql();

 private:
  struct Impl;
  explicit Gateway(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kaisar::gateway
