#include "onenode/events.hpp"

namespace kaisar::onenode {

void EventHub::subscribe(std::shared_ptr<net::SseStream> stream, std::string topic) {
  std::lock_guard lock(mutex_);
  streams_.push_back(Subscriber{stream, std::move(topic)});
}

void EventHub::publish(std::string_view event, std::string_view json_data, std::string_view topic) {
  std::vector<std::shared_ptr<net::SseStream>> live;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(streams_, [&](const Subscriber& sub) {
      auto s = sub.stream.lock();
      if (!s || s->closed()) return true;
      if (sub.topic == topic) live.push_back(std::move(s));
      return false;
    });
  }
  for (auto& s : live) s->send(event, json_data);
}

std::size_t EventHub::subscribers() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& sub : streams_) {
    if (auto s = sub.stream.lock(); s && !s->closed()) ++n;
  }
  return n;
}

void EventHub::close_all() {
  std::vector<std::shared_ptr<net::SseStream>> live;
  {
    std::lock_guard lock(mutex_);
    for (auto& sub : streams_) {
      if (auto s = sub.stream.lock()) live.push_back(std::move(s));
    }
    streams_.clear();
  }
  for (auto& s : live) s->close();
}

}  // namespace kaisar::onenode
