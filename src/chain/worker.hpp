#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace kaisar::chain {

// Runs a round of work on its own thread every `interval`, or sooner when woken; stop()
// (or destruction) waits for the round in progress to finish.
class PeriodicWorker {
 public:
  PeriodicWorker() = default;
  ~PeriodicWorker() { stop(); }
  PeriodicWorker(const PeriodicWorker&) = delete;
  PeriodicWorker& operator=(const PeriodicWorker&) = delete;

  void start(std::chrono::milliseconds interval, std::function<void()> round) {
    if (thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stopping_ = false;
    }
    thread_ = std::thread([this, interval, round = std::move(round)] {
      std::unique_lock lock(mutex_);
      while (!stopping_) {
        woken_ = false;
        lock.unlock();
        round();
        lock.lock();
        cv_.wait_for(lock, interval, [this] { return stopping_ || woken_; });
      }
    });
  }

  void wake() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    cv_.notify_all();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kaisar::chain
