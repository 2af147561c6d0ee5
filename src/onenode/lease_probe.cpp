#include "onenode/lease_probe.hpp"

#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <functional>
#include <set>

namespace kaisar::onenode {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// The gateway's own refusals (502 no container, 503 too many, 504) are not answers.
bool container_status(std::string_view head) {
  if (!head.starts_with("HTTP/1.")) return false;
  const auto space = head.find(' ');
  if (space == std::string_view::npos || head.size() < space + 4) return false;
  const std::string_view code = head.substr(space + 1, 3);
  return code != "502" && code != "503" && code != "504";
}

}  // namespace

bool LeaseProbe::answers(const std::string& host, std::uint16_t port, bool tcp_port, const std::string& token,
                         std::chrono::milliseconds timeout) {
  asio::io_context io;
  tcp::socket socket(io);
  bool answered = false;
  bool over = false;
  std::string head;
  std::array<char, 512> buffer{};
  std::string request;
  asio::steady_timer deadline(io, timeout);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    // Still open without a word: a TCP service waiting for its client (ssh waits for
    // nothing, but a database does) answers; an HTTP port that says nothing does not.
    if (!over && tcp_port && socket.is_open()) answered = true;
    over = true;
    boost::system::error_code ignored;
    socket.close(ignored);
  });
  std::function<void()> read_more = [&] {
    socket.async_read_some(asio::buffer(buffer), [&](boost::system::error_code ec, std::size_t n) {
      if (over) return;
      if (ec) {  // closed at once: the gateway found no container behind the port
        over = true;
        deadline.cancel();
        return;
      }
      head.append(buffer.data(), n);
      if (tcp_port || head.find("\r\n") != std::string::npos || head.size() > 256) {
        answered = tcp_port || container_status(head);
        over = true;
        deadline.cancel();
        boost::system::error_code ignored;
        socket.close(ignored);
        return;
      }
      read_more();
    });
  };
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto found = resolver.resolve(host, std::to_string(port), ec);
  if (ec || found.empty()) return false;
  asio::async_connect(socket, found, [&](boost::system::error_code c, const tcp::endpoint&) {
    if (c || over) {  // nothing listens: no answer
      deadline.cancel();
      return;
    }
    if (tcp_port) return read_more();
    request = "GET / HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + token + "\r\nConnection: close\r\n\r\n";
    asio::async_write(socket, asio::buffer(request), [&](boost::system::error_code w, std::size_t) {
      if (w || over) {
        deadline.cancel();
        return;
      }
      read_more();
    });
  });
  io.run();
  return answered;
}

void LeaseProbe::probe_all(const std::vector<std::string>& running,
                           const std::function<std::optional<Exposure>(const std::string&)>& exposure_of,
                           std::chrono::milliseconds timeout) {
  {
    // Ended leases are forgotten.
    const std::set<std::string> live(running.begin(), running.end());
    std::lock_guard lock(mutex_);
    std::erase_if(leases_, [&](const auto& e) { return !live.contains(e.first); });
  }
  for (const auto& id : running) {
    const auto exposure = exposure_of(id);
    if (!exposure || exposure->endpoints.empty()) continue;
    const auto& endpoint = exposure->endpoints.front();
    const bool answered = answers(exposure->public_host, endpoint.public_port, endpoint.port.tcp,
                                  exposure->access_token, timeout);
    record(id, answered);
  }
}

void LeaseProbe::record(const std::string& lease_id, bool answered) {
  std::lock_guard lock(mutex_);
  State& s = leases_[lease_id];
  if (answered) {
    s.answered_once = true;
    s.unanswered = 0;
    return;
  }
  if (++s.unanswered == kMaxUnanswered) {
    spdlog::warn("leases: lease {} is running by its provider's word but its container does not answer "
                 "({} probes in a row): it earns no job time",
                 lease_id, kMaxUnanswered);
  }
}

bool LeaseProbe::answering(const std::string& lease_id) const {
  std::lock_guard lock(mutex_);
  auto it = leases_.find(lease_id);
  return it != leases_.end() && it->second.answered_once && it->second.unanswered < kMaxUnanswered;
}

int LeaseProbe::unanswered(const std::string& lease_id) const {
  std::lock_guard lock(mutex_);
  auto it = leases_.find(lease_id);
  return it == leases_.end() ? 0 : it->second.unanswered;
}

}  // namespace kaisar::onenode
