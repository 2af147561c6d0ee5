#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "provider/identity.hpp"

namespace kaisar::checker {

struct CheckerOptions {
  std::string onenode_url;  // https://host[:port] of OneNode (http:// on loopback)
  bool insecure_dev = false;  // plain http:// off this machine (private dev networks only)
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // Fault injection for tests: sign the opposite of every verdict.
  bool dishonest = false;
};

// The checker agent (docs/checkers.md): keeps one channel to OneNode, authenticated with
// its node key and the owner's checker binding; runs each assigned check against the
// provider through OneNode (the seed, the audit rows and the memory walks are drawn here,
// after the provider has committed), times it, judges it and signs an EIP-712 attestation.
// Second opinions ("verify") are judged from the evidence OneNode relayed. Reconnects with
// backoff and jitter.
class Checker {
 public:
  Checker(CheckerOptions options, provider::ProviderIdentity identity);
  ~Checker();
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Blocks until stop().
  void run();
  void stop();

  std::function<void(const std::string&)> log;
  bool online() const { return online_.load(); }
  std::uint64_t attested() const { return attested_.load(); }
  std::uint64_t refused() const { return refused_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> online_{false};
  std::atomic<std::uint64_t> sessions_{0};  // times the channel came up
  std::atomic<std::uint64_t> attested_{0};
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace kaisar::checker
