#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "onenode/gateway_link.hpp"

namespace kaisar::onenode {

// Whether a running lease's container answers, seen from outside: OneNode connects to one of
// the lease's public ports through the gateway, as a renter would (HTTP with the lease's
// token; TCP: bytes or an open connection, where a port whose container is gone is closed
// at once). A provider that reports `running` for a container that does not exist or does
// not answer is caught: after kMaxUnanswered probes in a row the lease is flagged, and a
// lease earns job time only while it answers (EpochBook::job_answering). Leases without
// exposed ports cannot be probed and earn no job time.
class LeaseProbe {
 public:
  static constexpr int kMaxUnanswered = 3;

  // One probe of host:port (blocking, at most `timeout`).
  static bool answers(const std::string& host, std::uint16_t port, bool tcp, const std::string& token,
                      std::chrono::milliseconds timeout);

  // Probes every lease in `running` that `exposure_of` finds exposed, one port each.
  void probe_all(const std::vector<std::string>& running,
                 const std::function<std::optional<Exposure>(const std::string&)>& exposure_of,
                 std::chrono::milliseconds timeout);
  // Records one probe's outcome (probe_all's, or a test's).
  void record(const std::string& lease_id, bool answered);
  // The lease answered at least once and not kMaxUnanswered times in a row since.
  bool answering(const std::string& lease_id) const;
  // Probes in a row without an answer (0 when it answers).
  int unanswered(const std::string& lease_id) const;

 private:
  struct State {
    bool answered_once = false;
    int unanswered = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::string, State> leases_;
};

}  // namespace kaisar::onenode
