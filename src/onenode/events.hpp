#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/server.hpp"

namespace kaisar::onenode {

// Fans events out to Server-Sent Events subscribers (GET /api/v1/events).
class EventHub {
 public:
  void subscribe(std::shared_ptr<net::SseStream> stream);
  void publish(std::string_view event, std::string_view json_data);
  std::size_t subscribers() const;
  void close_all();

 private:
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<net::SseStream>> streams_;
};

}  // namespace kaisar::onenode
