#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace kaisar::provider {

// Every lease network's bridge is named kz-<12 hex>; the host firewall matches lease traffic
// by this prefix, so one static table covers every lease, present and future.
inline constexpr std::string_view kLeaseBridgePrefix = "kz-";
inline constexpr std::string_view kFirewallTable = "kaisar";

// The nftables program for `table inet kaisar`: traffic that enters from a lease bridge
// reaches neither this host (any of its addresses: input), nor another lease, nor any
// internal range (kInternalIpv4/6: private, loopback, CGNAT, link-local and metadata), only
// the public internet; nothing from elsewhere opens a connection into a lease. Answers to
// connections the host opened (the published loopback ports) pass. Loading it replaces the
// table in one transaction.
std::string firewall_ruleset();

// Loads the ruleset with `nft -f -` (argv, no shell). Needs CAP_NET_ADMIN (root); the
// error says what nft answered.
Result<void> install_firewall();
// Removes the table (an operator retiring the machine; tests).
Result<void> remove_firewall();

}  // namespace kaisar::provider
