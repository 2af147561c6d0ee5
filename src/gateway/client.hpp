#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "crypto/secp256k1.hpp"
#include "gateway/tunnel.hpp"

namespace kaisar::gateway {

// Where an agent's tunnel goes: wss://host:port/ and the SHA-256 of the gateway's
// certificate to pin (OneNode hands both to its agents). Without a pin the certificate must
// be trusted by the system's CAs and name the host.
struct TunnelTarget {
  std::string url;
  std::string certificate_sha256;
  bool operator==(const TunnelTarget&) const = default;
};

// The agent's side: connects, checks the gateway's certificate, proves the node key and
// returns the tunnel, ready to run(). kUnauthenticated when the gateway refuses the node,
// kUnavailable when it cannot be reached or its certificate is not the pinned one.
boost::asio::awaitable<Result<std::shared_ptr<TunnelConnection>>> dial_tunnel(
    boost::asio::any_io_executor executor, TunnelTarget target, const crypto::PrivateKey& node_key,
    TunnelConnection::Resolver resolver, std::chrono::milliseconds timeout = std::chrono::milliseconds{10000});

// The TLS WebSocket alone (no authentication): for tests that play a hostile agent.
boost::asio::awaitable<Result<std::unique_ptr<TunnelSocket>>> connect_tunnel_socket(
    boost::asio::any_io_executor executor, const TunnelTarget& target, std::chrono::milliseconds timeout);

}  // namespace kaisar::gateway
