#pragma once

#include <boost/json/object.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "popw/session.hpp"

namespace kaisar::provider {

// Answers checkers' Proof of Physical Work messages on a thread of its own (the work takes
// seconds and all cores; the control channel must stay responsive meanwhile). One check at
// a time: a message for another check id starts over. Replies go to `send` as "popw"
// envelopes.
class PopwWorker {
 public:
  explicit PopwWorker(std::function<void(const boost::json::object&)> send);
  ~PopwWorker();
  PopwWorker(const PopwWorker&) = delete;
  PopwWorker& operator=(const PopwWorker&) = delete;

  // A "popw" envelope from OneNode. Thread-safe; returns at once.
  void submit(const boost::json::object& envelope);

 private:
  void loop();

  std::function<void(const boost::json::object&)> send_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<boost::json::object> queue_;
  bool stopping_ = false;
  std::string check_id_;
  popw::ProverSession session_;
  std::thread thread_;  // last: started when the rest is ready
};

}  // namespace kaisar::provider
