#pragma once

#include <boost/json/object.hpp>

#include <memory>
#include <string>

#include "core/error.hpp"
#include "crypto/address.hpp"
#include "onenode/config.hpp"

namespace kaisar::onenode {

class ProviderRegistry;
class LeaseBook;
class Scheduler;

// The coordinator: REST API, agents' control channel, provider registry and uptime.
class OneNode {
 public:
  explicit OneNode(OneNodeConfig config);
  ~OneNode();
  OneNode(const OneNode&) = delete;
  OneNode& operator=(const OneNode&) = delete;

  // Opens the database (applying migrations), binds and starts serving. Returns the base
  // URL, e.g. "http://127.0.0.1:40123".
  Result<std::string> start();
  // Graceful: /readyz turns 503, in-flight requests finish, connections close, data is flushed.
  void stop();
  // The dev-chain faucet (see POST /api/v1/faucet); kNotFound when it is off.
  Result<boost::json::object> faucet(const crypto::Address& address);

  // The parts, for running OneNode inside another program (bench/scheduler registers
  // 100,000 providers through the registry instead of 100,000 agents). After start().
  ProviderRegistry& registry();
  LeaseBook& leases();
  const Scheduler& scheduler() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The OpenAPI 3 document served at /api/v1/openapi.json (docs/openapi.json, embedded).
std::string_view openapi_document();

}  // namespace kaisar::onenode
