#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace kaisar::gateway {

// The gateway's public ports: each exposed port of a running lease gets one from the
// configured range; when the lease ends its ports rest for a cool-down before another
// lease may have them, so a renter's old address never reaches someone else's container.
// No I/O and no clock of its own: the caller passes the time, and restores what it stored.
class PortPool {
 public:
  using Clock = std::chrono::steady_clock;

  // Ports first..last (inclusive); kInvalidArgument for an empty or inverted range or port 0.
  static Result<PortPool> create(std::uint16_t first, std::uint16_t last, std::chrono::seconds cool_down);

  // A free port for (lease, container port); the same one again when it already has one.
  // kUnavailable when every port is taken or cooling down.
  Result<std::uint16_t> allocate(const std::string& lease_id, std::uint16_t container_port, Clock::time_point now);
  // The lease ended: its ports cool down from `now`. Returns them.
  std::vector<std::uint16_t> release(const std::string& lease_id, Clock::time_point now);
  // Which lease and container port a public port belongs to now.
  struct Owner {
    std::string lease_id;
    std::uint16_t container_port = 0;
  };
  std::optional<Owner> owner(std::uint16_t public_port) const;
  // Puts back an allocation read from storage after a restart (kConflict when taken).
  Result<void> restore(std::uint16_t public_port, const std::string& lease_id, std::uint16_t container_port);

  // One port back from its lease, resting like a released one (e.g. another program had it).
  void release_port(std::uint16_t public_port, Clock::time_point now);
  // Keeps a free port from being handed out until `until` (ports of leases that may come
  // back after a restart).
  void hold(std::uint16_t public_port, Clock::time_point until);

  std::size_t in_use() const { return owners_.size(); }

 private:
  PortPool(std::uint16_t first, std::uint16_t last, std::chrono::seconds cool_down)
      : first_(first), last_(last), cool_down_(cool_down), next_(first) {}

  std::uint16_t first_;
  std::uint16_t last_;
  std::chrono::seconds cool_down_;
  std::uint16_t next_;  // where the search for a free port starts (round robin)
  std::map<std::uint16_t, Owner> owners_;
  std::map<std::uint16_t, Clock::time_point> cooling_;  // port → free again at
};

// "FIRST-LAST" (1 <= FIRST <= LAST <= 65535); the error says what is expected.
Result<std::pair<std::uint16_t, std::uint16_t>> parse_port_range(std::string_view text);

}  // namespace kaisar::gateway
