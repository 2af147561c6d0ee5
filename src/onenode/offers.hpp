#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "onenode/leases.hpp"
#include "onenode/query.hpp"

namespace kaisar::onenode {

// An offer per online provider that has set prices: what is free right now (a GPU is free
// or leased, never shared) and what it costs per hour. `providers` is the registry's list.
boost::json::array build_offers(const boost::json::array& providers);

// Replaces each online provider's "available" with its hardware less what leases hold.
void apply_reservations(boost::json::array& providers, const std::map<std::string, Reserved>& held);

// Reads an offer's searchable fields (see offer_fields()).
std::optional<FieldValue> offer_field(const boost::json::object& offer, std::string_view field);

// GET /api/v1/offers: filter by `query`, order by `sort` (default: cheapest first).
Result<boost::json::array> search_offers(const boost::json::array& providers, std::string_view query,
                                         std::string_view sort);

}  // namespace kaisar::onenode
