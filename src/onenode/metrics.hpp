#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace kaisar::onenode {

// Counters and gauges rendered in the Prometheus text exposition format (GET /metrics).
class Metrics {
 public:
  std::atomic<std::uint64_t>& counter(const std::string& name, const std::string& help);
  // A gauge whose value is read when /metrics is scraped.
  void gauge(const std::string& name, const std::string& help, std::function<double()> read);
  // Counts one HTTP response by method, route pattern and status.
  void count_request(const std::string& method, const std::string& route, int status);
  std::string render() const;

 private:
  struct Counter {
    std::string help;
    std::atomic<std::uint64_t> value{0};
  };
  struct Gauge {
    std::string help;
    std::function<double()> read;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Counter> counters_;
  std::map<std::string, Gauge> gauges_;
  std::map<std::string, std::uint64_t> requests_;  // label set → count
};

}  // namespace kaisar::onenode
