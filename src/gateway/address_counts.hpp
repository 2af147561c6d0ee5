#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

namespace kaisar::gateway {

// Where a connection comes from, for per-address caps: the IPv4 address, or the /64 of an
// IPv6 one (one host usually holds a whole /64, so counting single IPv6 addresses would cap
// nothing).
std::string address_group(const boost::asio::ip::address& address);

// Connections counted per address group and in all, each held by a ticket: a cap cannot be
// dodged by a connection that ends some way nobody counted, and tickets may outlive this
// object. Not thread-safe (the gateway's thread).
class AddressCounts {
 public:
  AddressCounts(std::size_t per_address, std::size_t total);

  // A ticket while both caps have room (the count drops when the last copy goes); null when not.
  std::shared_ptr<void> take(const std::string& group);
  std::size_t total() const { return state_->total; }

 private:
  struct State {
    std::size_t per_address = 0;
    std::size_t max_total = 0;
    std::size_t total = 0;
    std::map<std::string, std::size_t> by_group;
  };
  // Gives its slot back when destroyed; keeps the state alive until then.
  struct Ticket {
    Ticket(std::shared_ptr<State> s, std::string g) : state(std::move(s)), group(std::move(g)) {}
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    std::shared_ptr<State> state;
    std::string group;
  };
  std::shared_ptr<State> state_;
};

}  // namespace kaisar::gateway
