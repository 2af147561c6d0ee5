#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.hpp"
#include "net/http.hpp"

namespace kaisar::net {

// A cap on what a server holds open; 0: no cap.
struct Cap {
  std::size_t total = 0;
  std::size_t per_address = 0;
};

struct AdmissionLimits {
  Cap connections;  // TCP connections, streams and WebSockets included
  Cap sse_streams;
  Cap websockets;
  // Of every cap, globally and per address, this many slots are kept for privileged
  // requests (ServerOptions::privileged): anonymous peers get total − reserve and
  // per_address, privileged ones up to total and per_address + reserve.
  std::size_t reserve = 0;
};

enum class SlotKind { kConnection, kSseStream, kWebSocket };

// 429 with {"error":{"code":"unavailable","message":…}}: one client is over its share.
Response too_many_requests(std::string message);

// Counts what is open, by kind and by client address (IPv6 by /64, which one host usually
// holds), and says whether one more may open. Thread-safe.
class Admission : public std::enable_shared_from_this<Admission> {
 public:
  // One open thing; its place is given back when the last holder drops it.
  class Slot {
   public:
    Slot(std::shared_ptr<Admission> owner, SlotKind kind, std::string key)
        : owner_(std::move(owner)), kind_(kind), key_(std::move(key)) {}
    ~Slot() { owner_->release(kind_, key_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    std::shared_ptr<Admission> owner_;
    SlotKind kind_;
    std::string key_;
  };

  explicit Admission(AdmissionLimits limits) : limits_(limits) {}

  // One more `kind` from `address`, within the anonymous share or, when `privileged`, the
  // reserve too; else the answer: 429 past the address's cap, 503 past the global one
  // (code "unavailable"), the message saying which and what to do.
  std::expected<std::shared_ptr<Slot>, Response> admit(SlotKind kind, std::string_view address, bool privileged);
  std::size_t open(SlotKind kind) const;
  const AdmissionLimits& limits() const { return limits_; }

  // The address the per-address caps count by.
  static std::string address_key(std::string_view address);

 private:
  using Counts = std::array<std::size_t, 3>;
  void release(SlotKind kind, const std::string& key);
  const Cap& cap(SlotKind kind) const;

  AdmissionLimits limits_;
  mutable std::mutex mutex_;
  Counts totals_{};
  std::unordered_map<std::string, Counts> by_address_;
};

}  // namespace kaisar::net
