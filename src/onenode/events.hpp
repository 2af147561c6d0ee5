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
  // A subscriber with a topic gets only the events published with that topic (one lease's
  // events); one without gets everything published without a topic.
  void subscribe(std::shared_ptr<net::SseStream> stream, std::string topic = {});
  void publish(std::string_view event, std::string_view json_data, std::string_view topic = {});
  std::size_t subscribers() const;
  void close_all();

 private:
  mutable std::mutex mutex_;
  struct Subscriber {
    std::weak_ptr<net::SseStream> stream;
    std::string topic;
  };
  std::vector<Subscriber> streams_;
};

}  // namespace kaisar::onenode
