#include "onenode/metrics.hpp"

#include <fmt/format.h>

namespace kaisar::onenode {

std::atomic<std::uint64_t>& Metrics::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto& c = counters_[name];
  c.help = help;
  return c.value;
}

void Metrics::gauge(const std::string& name, const std::string& help, std::function<double()> read) {
  std::lock_guard lock(mutex_);
  gauges_[name] = Gauge{help, std::move(read)};
}

void Metrics::count_request(const std::string& method, const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[fmt::format("method=\"{}\",route=\"{}\",status=\"{}\"", method, route, status)];
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, c] : counters_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, c.help, name, name, c.value.load());
  }
  for (const auto& [name, g] : gauges_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, g.help, name, name, g.read());
  }
  out += "# HELP kaisar_http_requests_total HTTP responses by method, route and status.\n"
         "# TYPE kaisar_http_requests_total counter\n";
  for (const auto& [labels, n] : requests_) out += fmt::format("kaisar_http_requests_total{{{}}} {}\n", labels, n);
  return out;
}

}  // namespace kaisar::onenode
