// A lease's port answers, or the container behind it is gone: LeaseProbe against real
// sockets on loopback, as the gateway leaves them (HTTP answered or refused, TCP closed at
// once or held open).
#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <thread>

#include "onenode/lease_probe.hpp"

namespace kaisar::onenode {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Accepts one connection on a free loopback port and hands it to `serve`.
class OneShotServer {
 public:
  explicit OneShotServer(std::function<void(tcp::socket&)> serve)
      : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this, handler = std::move(serve)] {
      boost::system::error_code ec;
      tcp::socket socket = acceptor_.accept(ec);
      if (!ec) handler(socket);
    });
  }
  ~OneShotServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

void reply(tcp::socket& socket, const std::string& text) {
  std::array<char, 1024> buffer{};
  boost::system::error_code ec;
  (void)socket.read_some(asio::buffer(buffer), ec);
  asio::write(socket, asio::buffer(text), ec);
}

TEST(LeaseProbe, HttpAnswersUnlessTheGatewayFindsNoContainer) {
  {
    OneShotServer ok([](tcp::socket& s) { reply(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"); });
    EXPECT_TRUE(LeaseProbe::answers("127.0.0.1", ok.port(), /*tcp=*/false, "t", 3s));
  }
  {
    OneShotServer gone([](tcp::socket& s) {
      reply(s, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 2\r\n\r\nno");
    });
    EXPECT_FALSE(LeaseProbe::answers("127.0.0.1", gone.port(), false, "t", 3s));
  }
  {
    OneShotServer silent([](tcp::socket& s) { std::this_thread::sleep_for(1500ms); s.close(); });
    EXPECT_FALSE(LeaseProbe::answers("127.0.0.1", silent.port(), false, "t", 500ms));
  }
}

TEST(LeaseProbe, TcpAnswersWithBytesOrAnOpenConnection) {
  {
    OneShotServer banner([](tcp::socket& s) { asio::write(s, asio::buffer(std::string("SSH-2.0-x\r\n"))); });
    EXPECT_TRUE(LeaseProbe::answers("127.0.0.1", banner.port(), /*tcp=*/true, "", 3s));
  }
  {
    OneShotServer held([](tcp::socket&) { std::this_thread::sleep_for(1500ms); });
    EXPECT_TRUE(LeaseProbe::answers("127.0.0.1", held.port(), true, "", 500ms));
  }
  {
    // The gateway closes the public connection at once when the container is gone.
    OneShotServer closed([](tcp::socket& s) { s.close(); });
    const auto from = std::chrono::steady_clock::now();
    EXPECT_FALSE(LeaseProbe::answers("127.0.0.1", closed.port(), true, "", 3s));
    EXPECT_LT(std::chrono::steady_clock::now() - from, 2s);
  }
  // Nothing listens at all.
  std::uint16_t unused = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    unused = a.local_endpoint().port();
  }
  EXPECT_FALSE(LeaseProbe::answers("127.0.0.1", unused, true, "", 1s));
}

TEST(LeaseProbe, ALeaseAnswersUntilItMissesThreeProbesInARow) {
  LeaseProbe probe;
  EXPECT_FALSE(probe.answering("a"));  // never answered: not yet
  probe.record("a", true);
  EXPECT_TRUE(probe.answering("a"));
  for (int i = 1; i < LeaseProbe::kMaxUnanswered; ++i) probe.record("a", false);
  EXPECT_TRUE(probe.answering("a"));  // a probe or two lost is not a verdict
  probe.record("a", false);
  EXPECT_FALSE(probe.answering("a"));
  EXPECT_EQ(probe.unanswered("a"), LeaseProbe::kMaxUnanswered);
  probe.record("a", true);
  EXPECT_TRUE(probe.answering("a"));
  // Ended leases are forgotten; leases without exposed ports are never probed.
  probe.probe_all({"b"}, [](const std::string&) { return std::optional<Exposure>{}; }, 100ms);
  EXPECT_FALSE(probe.answering("a"));
  EXPECT_FALSE(probe.answering("b"));
}

}  // namespace
}  // namespace kaisar::onenode
