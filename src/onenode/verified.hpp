#pragma once

#include <boost/json/value.hpp>

#include <cstdint>

namespace kaisar::onenode {

// What Proof of Physical Work checks measured of a provider, from its stored verification
// (CheckService::set_verification). Rewards and offers count these, not the agent's claims:
// memory only up to what a passed memory phase filled, disk not at all (no check measures
// it yet).
struct VerifiedResources {
  bool checked = false;  // a check has finished
  bool failed = false;   // ... and the last one failed
  double tops = 0;       // int8 TOPS the last passed check measured
  std::uint64_t memory_bytes = 0;
  std::uint64_t disk_bytes = 0;
};

// `verification`: the provider's verification object, or null before its first check.
VerifiedResources verified_resources(const boost::json::value& verification);

}  // namespace kaisar::onenode
