#include "net/admission.hpp"

#include <boost/asio/ip/address.hpp>

namespace kaisar::net {

namespace {

std::string_view noun(SlotKind kind) {
  switch (kind) {
    case SlotKind::kConnection: return "connections";
    case SlotKind::kSseStream: return "event streams";
    case SlotKind::kWebSocket: return "WebSockets";
  }
  return "connections";
}

std::size_t index(SlotKind kind) { return static_cast<std::size_t>(kind); }

}  // namespace

std::string Admission::address_key(std::string_view address) {
  boost::system::error_code ec;
  auto parsed = boost::asio::ip::make_address(address, ec);
  if (ec || !parsed.is_v6()) return std::string(address);
  auto v6 = parsed.to_v6();
  if (v6.is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

const Cap& Admission::cap(SlotKind kind) const {
  switch (kind) {
    case SlotKind::kConnection: return limits_.connections;
    case SlotKind::kSseStream: return limits_.sse_streams;
    case SlotKind::kWebSocket: return limits_.websockets;
  }
  return limits_.connections;
}

Response too_many_requests(std::string message) {
  Response response = Response::error(ErrorCode::kUnavailable, std::move(message));
  response.status = 429;
  return response;
}

std::expected<std::shared_ptr<Admission::Slot>, Response> Admission::admit(SlotKind kind, std::string_view address, bool privileged) {
  const Cap& c = cap(kind);
  const std::size_t reserve = limits_.reserve;
  std::string key = address_key(address);
  {
    std::lock_guard lock(mutex_);
    const std::size_t i = index(kind);
    if (c.per_address != 0) {
      auto it = by_address_.find(key);
      const std::size_t mine = it == by_address_.end() ? 0 : it->second[i];
      const std::size_t allowed = privileged ? c.per_address + reserve : c.per_address;
      if (mine >= allowed) {
        return std::unexpected(too_many_requests(
                    "too many " + std::string(noun(kind)) + " from " + key + " (at most " + std::to_string(allowed) +
                        " at once): close some before opening more"));
      }
    }
    if (c.total != 0) {
      const std::size_t allowed = privileged ? c.total : (c.total > reserve ? c.total - reserve : 0);
      if (totals_[i] >= allowed) {
        return std::unexpected(Response::error(ErrorCode::kUnavailable,
                    "this server holds its maximum of " + std::to_string(allowed) + " " + std::string(noun(kind)) +
                        (privileged ? "" : " for anonymous clients (signed-in requests still pass)") + ": retry later"));
      }
    }
    ++totals_[i];
    ++by_address_[key][i];
  }
  return std::make_shared<Slot>(shared_from_this(), kind, std::move(key));
}

void Admission::release(SlotKind kind, const std::string& key) {
  std::lock_guard lock(mutex_);
  const std::size_t i = index(kind);
  --totals_[i];
  auto it = by_address_.find(key);
  if (it == by_address_.end()) return;
  --it->second[i];
  if (it->second == Counts{}) by_address_.erase(it);
}

std::size_t Admission::open(SlotKind kind) const {
  std::lock_guard lock(mutex_);
  return totals_[index(kind)];
}

}  // namespace kaisar::net
