#include "onenode/events.hpp"

namespace kaisar::onenode {

void EventHub::subscribe(std::shared_ptr<net::SseStream> stream) {
  std::lock_guard lock(mutex_);
  streams_.push_back(stream);
}

void EventHub::publish(std::string_view event, std::string_view json_data) {
  std::vector<std::shared_ptr<net::SseStream>> live;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(streams_, [&](const std::weak_ptr<net::SseStream>& w) {
      auto s = w.lock();
      if (!s || s->closed()) return true;
      live.push_back(std::move(s));
      return false;
    });
  }
  for (auto& s : live) s->send(event, json_data);
}

std::size_t EventHub::subscribers() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& w : streams_) {
    if (auto s = w.lock(); s && !s->closed()) ++n;
  }
  return n;
}

void EventHub::close_all() {
  std::vector<std::shared_ptr<net::SseStream>> live;
  {
    std::lock_guard lock(mutex_);
    for (auto& w : streams_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
    streams_.clear();
  }
  for (auto& s : live) s->close();
}

}  // namespace kaisar::onenode
