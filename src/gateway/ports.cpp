#include "gateway/ports.hpp"

#include <algorithm>
#include <charconv>

namespace kaisar::gateway {

Result<std::pair<std::uint16_t, std::uint16_t>> parse_port_range(std::string_view text) {
  const auto dash = text.find('-');
  unsigned first = 0;
  unsigned last = 0;
  bool ok = dash != std::string_view::npos;
  if (ok) {
    auto a = std::from_chars(text.data(), text.data() + dash, first);
    auto b = std::from_chars(text.data() + dash + 1, text.data() + text.size(), last);
    ok = a.ec == std::errc{} && a.ptr == text.data() + dash && b.ec == std::errc{} && b.ptr == text.data() + text.size() &&
         first >= 1 && last <= 65535 && first <= last;
  }
  if (!ok) {
    return fail(ErrorCode::kInvalidArgument, "a port range is FIRST-LAST (e.g. 40000-40999), not '" + std::string(text) + "'");
  }
  return std::pair{static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)};
}

Result<PortPool> PortPool::create(std::uint16_t first, std::uint16_t last, std::chrono::seconds cool_down) {
  if (first == 0 || last < first) {
    return fail(ErrorCode::kInvalidArgument, "the gateway's port range must be FIRST-LAST with 1 <= FIRST <= LAST");
  }
  if (cool_down.count() < 0) return fail(ErrorCode::kInvalidArgument, "the cool-down cannot be negative");
  return PortPool(first, last, cool_down);
}

Result<std::uint16_t> PortPool::allocate(const std::string& lease_id, std::uint16_t container_port,
                                         Clock::time_point now) {
  for (const auto& [port, o] : owners_) {
    if (o.lease_id == lease_id && o.container_port == container_port) return port;
  }
  const std::uint32_t size = static_cast<std::uint32_t>(last_ - first_) + 1;
  // Round robin from the last port handed out, so a port just freed is the last one used
  // again even after its cool-down.
  for (std::uint32_t i = 0; i < size; ++i) {
    const auto port = static_cast<std::uint16_t>(first_ + (static_cast<std::uint32_t>(next_ - first_) + i) % size);
    if (owners_.contains(port)) continue;
    if (auto c = cooling_.find(port); c != cooling_.end()) {
      if (now < c->second) continue;
      cooling_.erase(c);
    }
    owners_[port] = Owner{lease_id, container_port};
    next_ = static_cast<std::uint16_t>(first_ + (static_cast<std::uint32_t>(port - first_) + 1) % size);
    return port;
  }
  return fail(ErrorCode::kUnavailable, "no public port is free on this gateway");
}

std::vector<std::uint16_t> PortPool::release(const std::string& lease_id, Clock::time_point now) {
  std::vector<std::uint16_t> freed;
  for (auto it = owners_.begin(); it != owners_.end();) {
    if (it->second.lease_id == lease_id) {
      freed.push_back(it->first);
      cooling_[it->first] = now + cool_down_;
      it = owners_.erase(it);
    } else {
      ++it;
    }
  }
  return freed;
}

std::optional<PortPool::Owner> PortPool::owner(std::uint16_t public_port) const {
  auto it = owners_.find(public_port);
  if (it == owners_.end()) return std::nullopt;
  return it->second;
}

void PortPool::release_port(std::uint16_t public_port, Clock::time_point now) {
  owners_.erase(public_port);
  if (public_port >= first_ && public_port <= last_) cooling_[public_port] = now + cool_down_;
}

void PortPool::hold(std::uint16_t public_port, Clock::time_point until) {
  if (public_port < first_ || public_port > last_ || owners_.contains(public_port)) return;
  auto& at = cooling_[public_port];
  at = std::max(at, until);
}

Result<void> PortPool::restore(std::uint16_t public_port, const std::string& lease_id, std::uint16_t container_port) {
  if (public_port < first_ || public_port > last_) {
    return fail(ErrorCode::kInvalidArgument, "port " + std::to_string(public_port) + " is outside the gateway's range");
  }
  if (auto it = owners_.find(public_port); it != owners_.end()) {
    if (it->second.lease_id == lease_id && it->second.container_port == container_port) return {};
    return fail(ErrorCode::kConflict, "port " + std::to_string(public_port) + " already belongs to another lease");
  }
  owners_[public_port] = Owner{lease_id, container_port};
  cooling_.erase(public_port);
  return {};
}

}  // namespace kaisar::gateway
