#include "provider/popw_worker.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"

namespace kaisar::provider {

namespace json = boost::json;

PopwWorker::PopwWorker(std::function<void(const json::object&)> send)
    : send_(std::move(send)), thread_([this] { loop(); }) {}

PopwWorker::~PopwWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PopwWorker::submit(const json::object& envelope) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= 16) return;  // a checker flooding us: the rest is dropped
    queue_.push_back(envelope);
  }
  cv_.notify_one();
}

void PopwWorker::loop() {
  for (;;) {
    json::object envelope;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      envelope = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string check_id = string_field(envelope, "check_id");
    const json::value* message = envelope.if_contains("message");
    if (check_id.empty() || check_id.size() > 80 || message == nullptr || !message->is_object()) continue;
    if (check_id != check_id_) {
      session_.reset();  // a new check: the last one's product and dataset go
      check_id_ = check_id;
    }
    json::object reply = session_.handle(message->get_object());
    send_(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", std::move(reply)}});
  }
}

}  // namespace kaisar::provider
