#include "gateway/address_counts.hpp"

namespace kaisar::gateway {

std::string address_group(const boost::asio::ip::address& address) {
  if (address.is_v4()) return address.to_string();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

AddressCounts::AddressCounts(std::size_t per_address, std::size_t total) : state_(std::make_shared<State>()) {
  state_->per_address = per_address;
  state_->max_total = total;
}

std::shared_ptr<void> AddressCounts::take(const std::string& group) {
  State& s = *state_;
  auto& of_group = s.by_group[group];
  if (of_group >= s.per_address || s.total >= s.max_total) {
    if (of_group == 0) s.by_group.erase(group);
    return nullptr;
  }
  ++of_group;
  ++s.total;
  return std::make_shared<Ticket>(state_, group);
}

AddressCounts::Ticket::~Ticket() {
  --state->total;
  auto it = state->by_group.find(group);
  if (it != state->by_group.end() && --it->second == 0) state->by_group.erase(it);
}

}  // namespace kaisar::gateway
