// The gateway and an agent's tunnel in one process: TLS, the node-key handshake, relaying
// TCP and HTTP (with the lease's token), many streams at once, a cut tunnel, hostile frames.
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <mutex>
#include <optional>
#include <thread>

#include "crypto/eip191.hpp"
#include "gateway/client.hpp"
#include "gateway/gateway.hpp"
#include "process.hpp"

namespace kaisar::gateway {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds{10}) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return pred();
}

asio::awaitable<void> echo(tcp::socket s) {
  char buf[16384];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kTuple);
    if (ec) break;
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(buf, n), kTuple);
    if (wec) break;
  }
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> hello_http(tcp::socket s) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kTuple);
    if (ec) co_return;
    head.append(buf, n);
  }
  const std::string body = "hello from the container\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
  (void)co_await asio::async_write(s, asio::buffer(response), kTuple);
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
}

// A provider's machine: containers' ports (an echo server, an HTTP server) and an agent that
// keeps its tunnel up, reconnecting after 100 ms.
class Provider {
 public:
  explicit Provider(TunnelTarget target) : target_(std::move(target)) {
    for (auto* a : {&echo_acceptor_, &http_acceptor_}) {
      a->open(tcp::v4());
      a->bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
      a->listen();
    }
    asio::co_spawn(io_, serve(echo_acceptor_, false), asio::detached);
    asio::co_spawn(io_, serve(http_acceptor_, true), asio::detached);
    asio::co_spawn(io_, keep_tunnel(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Provider() {
    asio::post(io_, [this] {
      stopping_ = true;
      if (tunnel_) tunnel_->close();
      boost::system::error_code ec;
      echo_acceptor_.close(ec);
      http_acceptor_.close(ec);
      io_.stop();
    });
    thread_.join();
  }
  crypto::Address address() const { return key_.address(); }
  int tunnels_opened() const { return opened_.load(); }
  std::string last_error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

  TunnelTarget target_;
  crypto::PrivateKey key_ = crypto::PrivateKey::generate();

 private:
  asio::awaitable<void> serve(tcp::acceptor& a, bool http) {
    for (;;) {
      auto [ec, s] = co_await a.async_accept(kTuple);
      if (ec) co_return;
      if (http) asio::co_spawn(io_, hello_http(std::move(s)), asio::detached);
      else asio::co_spawn(io_, echo(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> keep_tunnel() {
    const std::uint16_t echo_port = echo_acceptor_.local_endpoint().port();
    const std::uint16_t http_port = http_acceptor_.local_endpoint().port();
    auto resolver = [echo_port, http_port](const std::string& lease, std::uint16_t port) -> std::optional<std::uint16_t> {
      if (lease != "lease-1") return std::nullopt;
      if (port == 22) return echo_port;
      if (port == 80) return http_port;
      return std::nullopt;
    };
    while (!stopping_) {
      auto t = co_await dial_tunnel(io_.get_executor(), target_, key_, resolver);
      if (t) {
        tunnel_ = *t;
        ++opened_;
        auto ended = co_await tunnel_->run();
        std::lock_guard lock(mutex_);
        error_ = ended ? "" : ended.error().message;
      } else {
        std::lock_guard lock(mutex_);
        error_ = t.error().message;
      }
      asio::steady_timer pause(io_, std::chrono::milliseconds{100});
      (void)co_await pause.async_wait(kTuple);
    }
  }

  asio::io_context io_{1};
  tcp::acceptor echo_acceptor_{io_};
  tcp::acceptor http_acceptor_{io_};
  std::shared_ptr<TunnelConnection> tunnel_;
  bool stopping_ = false;
  std::atomic<int> opened_{0};
  std::mutex mutex_;
  std::string error_;
  std::thread thread_;
};

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 16384);
    setrlimit(RLIMIT_NOFILE, &files);
    dir_ = testing::make_temp_dir("gateway");
  }
  void TearDown() override {
    providers_.clear();
    gateway_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start_gateway(GatewayOptions options = {}) {
    options.certificate = dir_ + "/gateway.crt";
    options.private_key = dir_ + "/gateway.key";
    options.secret = dir_ + "/gateway.secret";
    auto g = Gateway::start(options, [this](const crypto::Address& a) {
      std::lock_guard lock(mutex_);
      return allowed_.contains(a);
    });
    ASSERT_TRUE(g) << g.error().message;
    gateway_ = std::move(*g);
  }
  Provider& add_provider(bool allowed = true, std::string pin = {}) {
    auto p = std::make_unique<Provider>(
        TunnelTarget{gateway_->tunnel_url(), pin.empty() ? gateway_->certificate_sha256() : pin});
    if (allowed) {
      std::lock_guard lock(mutex_);
      allowed_.insert(p->address());
    }
    providers_.push_back(std::move(p));
    return *providers_.back();
  }
  // Plays an agent by hand: answers the gateway's challenge with `hello(nonce)`; once
  // welcomed, sends `frame` (binary) if given and sees whether the gateway closes.
  struct HandPlayed {
    std::string reply;          // the gateway's answer to the hello
    bool closed_after = false;  // the tunnel ended after `frame`
  };
  HandPlayed play_agent(const std::function<std::string(const std::string& nonce)>& hello,
                        const std::optional<std::string>& frame = std::nullopt) {
    asio::io_context io;
    HandPlayed out;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      const TunnelTarget target{gateway_->tunnel_url(), gateway_->certificate_sha256()};  // named: GCC 12 frees braced
      auto t = co_await connect_tunnel_socket(io.get_executor(), target, std::chrono::seconds{5});  // temporaries twice
      if (!t) co_return;
      auto& ws = **t;
      boost::beast::flat_buffer b;
      (void)co_await ws.async_read(b, kTuple);
      auto challenge = boost::json::parse(boost::beast::buffers_to_string(b.cdata())).as_object();
      const std::string text = hello(std::string(challenge.at("nonce").as_string()));
      ws.text(true);
      (void)co_await ws.async_write(asio::buffer(text), kTuple);
      b.clear();
      auto [ec, n] = co_await ws.async_read(b, kTuple);
      if (ec) co_return;
      out.reply = boost::beast::buffers_to_string(b.cdata());
      if (!frame) co_return;
      ws.binary(true);
      (void)co_await ws.async_write(asio::buffer(*frame), kTuple);
      b.clear();
      auto [after, m] = co_await ws.async_read(b, kTuple);
      out.closed_after = static_cast<bool>(after);
    }, asio::detached);
    io.run_for(std::chrono::seconds{10});
    return out;
  }
  std::string signed_hello(const crypto::PrivateKey& key, const std::string& nonce) {
    const auto sig = crypto::personal_sign(key, tunnel_auth_message(gateway_->certificate_sha256(), nonce));
    return boost::json::serialize(
        boost::json::object{{"type", "hello"}, {"node", key.address().to_checksum()}, {"signature", sig.to_hex()}});
  }

  // A gateway, a connected provider and its port 22 exposed as TCP: the public port.
  std::uint16_t serve_tcp_port(GatewayOptions options = {}) {
    start_gateway(std::move(options));
    Provider& p = add_provider();
    EXPECT_TRUE(eventually([&] { return gateway_->connected(p.address()); })) << p.last_error();
    return expose(p, 22, true);
  }
  std::uint16_t expose(const Provider& p, std::uint16_t port, bool tcp_port, bool open = false) {
    auto e = gateway_->expose("lease-1", p.address(), {Gateway::Port{port, tcp_port, open}});
    EXPECT_TRUE(e) << (e ? "" : e.error().message);
    return e && e->size() == 1 ? e->front().public_port : 0;
  }

  std::string dir_;
  std::unique_ptr<Gateway> gateway_;
  std::mutex mutex_;
  std::set<crypto::Address> allowed_;
  std::vector<std::unique_ptr<Provider>> providers_;
};

// Sends `request` to 127.0.0.1:port and reads until the server closes.
std::string round_trip(std::uint16_t port, const std::string& request, bool half_close = true) {
  asio::io_context io;
  tcp::socket s(io);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), ec);
  if (ec) return "connect: " + ec.message();
  asio::write(s, asio::buffer(request), ec);
  if (half_close) s.shutdown(tcp::socket::shutdown_send, ec);
  std::string out;
  char buf[65536];
  for (;;) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

TEST_F(RelayTest, TcpBytesGoThroughTheTunnelBothWaysIntact) {
  start_gateway();
  Provider& p = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(p.address()); })) << p.last_error();
  const auto port = expose(p, 22, true);
  std::string payload(3 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) >> 3);
  EXPECT_EQ(round_trip(port, payload), payload);
  // Exposing again is idempotent: the same public port.
  EXPECT_EQ(expose(p, 22, true), port);
}

TEST_F(RelayTest, HttpPortsNeedTheLeasesTokenUnlessOpen) {
  start_gateway();
  Provider& p = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(p.address()); })) << p.last_error();
  const auto port = expose(p, 80, false);
  const std::string token = gateway_->access_token("lease-1");
  EXPECT_EQ(token.size(), 32U);
  EXPECT_NE(token, gateway_->access_token("lease-2"));
  auto without = round_trip(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(without.rfind("HTTP/1.1 401", 0), 0U) << without;
  EXPECT_NE(without.find("WWW-Authenticate: Bearer"), std::string::npos) << without;
  auto wrong = round_trip(port, "GET / HTTP/1.1\r\nAuthorization: Bearer " + std::string(32, 'a') + "\r\n\r\n");
  EXPECT_EQ(wrong.rfind("HTTP/1.1 401", 0), 0U) << wrong;
  for (const std::string& carrier : {"GET / HTTP/1.1\r\nAuthorization: Bearer " + token + "\r\n\r\n",
                                     "GET / HTTP/1.1\r\nX-Kaisar-Token: " + token + "\r\n\r\n",
                                     "GET /?a=1&kaisar_token=" + token + " HTTP/1.1\r\n\r\n",
                                     "GET / HTTP/1.1\r\nCookie: x=1; kaisar_token=" + token + "\r\n\r\n"}) {
    auto ok = round_trip(port, carrier, false);
    EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0U) << carrier << "\n" << ok;
    EXPECT_NE(ok.find("hello from the container"), std::string::npos) << ok;
  }
  // A head that never ends is cut at 16 KiB.
  auto huge = round_trip(port, "GET / HTTP/1.1\r\nX-Pad: " + std::string(20000, 'p'), false);
  EXPECT_EQ(huge.rfind("HTTP/1.1 431", 0), 0U) << huge.substr(0, 200);

  // An open HTTP port needs nothing.
  gateway_->withdraw("lease-1");
  auto open = gateway_->expose("lease-1", p.address(), {Gateway::Port{80, false, true}});
  ASSERT_TRUE(open);
  auto answer = round_trip(open->front().public_port, "GET / HTTP/1.1\r\n\r\n", false);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0U) << answer;
}

TEST_F(RelayTest, AStreamToAPortTheProviderDoesNotHaveIsRefused) {
  start_gateway();
  Provider& p = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(p.address()); }));
  auto e = gateway_->expose("lease-1", p.address(), {Gateway::Port{8080, false, true}});
  ASSERT_TRUE(e);
  auto answer = round_trip(e->front().public_port, "GET / HTTP/1.1\r\n\r\n", false);
  EXPECT_EQ(answer.rfind("HTTP/1.1 502", 0), 0U) << answer;
  EXPECT_NE(answer.find("port 8080 of lease lease-1 is not on this provider"), std::string::npos) << answer;
}

TEST_F(RelayTest, AThousandConcurrentStreamsThroughOneTunnel) {
  std::uint16_t port = 0;
  GatewayOptions options;
  options.max_connections_per_address = 1000;  // all come from 127.0.0.1
  ASSERT_NO_FATAL_FAILURE(port = serve_tcp_port(options));
  asio::io_context io;
  std::atomic<int> good{0};
  std::atomic<int> connected{0};
  constexpr int kStreams = 1000;
  auto one = [&](int i) -> asio::awaitable<void> {
    tcp::socket s(io);
    auto [cec] = co_await s.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), kTuple);
    if (cec) co_return;
    ++connected;
    // Every stream stays open until all are connected: 1,000 at once.
    while (connected.load() < kStreams) {
      asio::steady_timer t(io, std::chrono::milliseconds{5});
      (void)co_await t.async_wait(kTuple);
    }
    std::string sent(static_cast<std::size_t>(4096 + i), static_cast<char>('a' + i % 26));
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(sent), kTuple);
    if (wec) co_return;
    std::string got(sent.size(), '\0');
    auto [rec, rn] = co_await asio::async_read(s, asio::buffer(got), kTuple);
    if (!rec && got == sent) ++good;
  };
  for (int i = 0; i < kStreams; ++i) asio::co_spawn(io, one(i), asio::detached);
  io.run_for(std::chrono::seconds{60});
  EXPECT_EQ(connected.load(), kStreams);
  EXPECT_EQ(good.load(), kStreams);
}

TEST_F(RelayTest, ACutTunnelFailsItsConnectionsAndTheAgentComesBack) {
  std::uint16_t port = 0;
  ASSERT_NO_FATAL_FAILURE(port = serve_tcp_port());
  Provider& p = *providers_.back();
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  std::string chunk(65536, 'x');
  asio::write(s, asio::buffer(chunk));
  std::string got(chunk.size(), '\0');
  asio::read(s, asio::buffer(got));  // mid-transfer: the stream is up
  gateway_->disconnect(p.address());
  // The old connection ends (EOF or reset), it does not hang.
  boost::system::error_code ec;
  s.non_blocking(false);
  char buf[1024];
  (void)s.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec) << "the connection outlived its tunnel";
  ASSERT_TRUE(eventually([&] { return p.tunnels_opened() >= 2 && gateway_->connected(p.address()); }))
      << p.last_error();
  EXPECT_EQ(round_trip(port, "after the cut"), "after the cut");
}

TEST_F(RelayTest, HostileFramesCloseThatTunnelOnly) {
  start_gateway();
  Provider& good = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(good.address()); }));
  const auto port = expose(good, 22, true);
  // A registered provider that, once in, sends what the protocol forbids.
  const crypto::PrivateKey bad_key = crypto::PrivateKey::generate();
  {
    std::lock_guard lock(mutex_);
    allowed_.insert(bad_key.address());
  }
  const std::vector<std::string> hostile = {
      std::string("\x01\x00\x00\x00\x03\x00\x16\x01x", 9),  // OPEN from the agent's side
      std::string("\x09\x00\x00\x00\x01", 5),               // unknown type
      std::string("\x03\x00\x00\x00\x05zz", 7),             // DATA for a stream never opened
      std::string("\x03", 1),                                // truncated
  };
  for (const auto& frame : hostile) {
    auto played = play_agent([&](const std::string& nonce) { return signed_hello(bad_key, nonce); }, frame);
    EXPECT_EQ(played.reply, "{\"type\":\"welcome\"}");
    const bool closed = played.closed_after;
    EXPECT_TRUE(closed) << "the gateway kept a tunnel that sent " << frame.size() << " hostile bytes";
    EXPECT_FALSE(gateway_->connected(bad_key.address()));
  }
  EXPECT_TRUE(gateway_->connected(good.address()));
  EXPECT_EQ(round_trip(port, "still serving"), "still serving");
}

TEST_F(RelayTest, OnlyRegisteredNodeKeysAndThePinnedCertificateMakeATunnel) {
  start_gateway();
  Provider& stranger = add_provider(false);
  Provider& wrong_pin = add_provider(true, std::string(64, '0'));
  Provider& good = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(good.address()); }));
  ASSERT_TRUE(eventually([&] { return !stranger.last_error().empty() && !wrong_pin.last_error().empty(); }));
  EXPECT_FALSE(gateway_->connected(stranger.address()));
  EXPECT_NE(stranger.last_error().find("no registered provider"), std::string::npos) << stranger.last_error();
  EXPECT_FALSE(gateway_->connected(wrong_pin.address()));
  EXPECT_NE(wrong_pin.last_error().find("certificate"), std::string::npos) << wrong_pin.last_error();
  EXPECT_EQ(gateway_->tunnels(), 1U);
}

TEST_F(RelayTest, AnEndedLeasesPortsCloseAtOnceAndCoolDown) {
  // A small range of its own: two free ports side by side, below the ephemeral range.
  std::uint16_t first = 0;
  for (std::uint16_t candidate = static_cast<std::uint16_t>(20000 + (getpid() % 250) * 40); first == 0 && candidate < 32000;
       candidate = static_cast<std::uint16_t>(candidate + 2)) {
    asio::io_context probe;
    tcp::acceptor a(probe);
    tcp::acceptor b(probe);
    boost::system::error_code ec1;
    boost::system::error_code ec2;
    a.open(tcp::v4());
    b.open(tcp::v4());
    a.bind(tcp::endpoint(asio::ip::address_v4::loopback(), candidate), ec1);
    b.bind(tcp::endpoint(asio::ip::address_v4::loopback(), static_cast<std::uint16_t>(candidate + 1)), ec2);
    if (!ec1 && !ec2) first = candidate;
  }
  ASSERT_NE(first, 0) << "no two free ports side by side";
  GatewayOptions options;
  options.first_port = first;
  options.last_port = static_cast<std::uint16_t>(first + 1);
  options.cool_down = std::chrono::seconds{3600};
  start_gateway(options);
  Provider& p = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(p.address()); }));
  const auto port = expose(p, 22, true);
  ASSERT_GE(port, first);
  asio::io_context io;
  tcp::socket live(io);
  live.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  asio::write(live, asio::buffer(std::string("x")));
  char c;
  asio::read(live, asio::buffer(&c, 1));
  const auto ended_at = std::chrono::steady_clock::now();
  gateway_->withdraw("lease-1");
  boost::system::error_code ec;
  (void)live.read_some(asio::buffer(&c, 1), ec);
  EXPECT_TRUE(ec) << "a connection of the ended lease stayed open";
  tcp::socket late(io);
  late.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), ec);
  EXPECT_TRUE(ec) << "the port still accepts";
  EXPECT_LT(std::chrono::steady_clock::now() - ended_at, std::chrono::seconds{1});
  // The other port of the range goes to the next lease; this one rests.
  auto next = gateway_->expose("lease-2", p.address(), {Gateway::Port{22, true, false}});
  ASSERT_TRUE(next);
  EXPECT_NE(next->front().public_port, port);
  auto none = gateway_->expose("lease-3", p.address(), {Gateway::Port{22, true, false}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
}

// A hello the gateway must refuse: malformed, unsigned, or signed for another nonce (replay).
TEST_F(RelayTest, BadOrReplayedHellosAreRefusedWithTheReason) {
  start_gateway();
  const crypto::PrivateKey key = crypto::PrivateKey::generate();
  {
    std::lock_guard lock(mutex_);
    allowed_.insert(key.address());
  }
  auto attempt = [&](const std::function<std::string(const std::string& nonce)>& hello) { return play_agent(hello).reply; };
  auto signed_by_key = [&](const std::string& nonce) { return signed_hello(key, nonce); };
  EXPECT_NE(attempt([](const std::string&) { return std::string("{not json"); }).find("expected {"), std::string::npos);
  EXPECT_NE(attempt([&](const std::string&) {
              return boost::json::serialize(boost::json::object{{"type", "hello"}, {"node", key.address().to_checksum()}});
            }).find("hello needs node"),
            std::string::npos);
  // A signature made for an earlier challenge (a recorded hello) is not the node's now.
  const std::string recorded = signed_by_key(std::string(64, 'a'));
  EXPECT_NE(attempt([&](const std::string&) { return recorded; }).find("the signature is not the node key's"), std::string::npos);
  EXPECT_NE(attempt([&](const std::string&) { return std::string(70000, 'x'); }), "{\"type\":\"welcome\"}");
  EXPECT_EQ(attempt(signed_by_key), "{\"type\":\"welcome\"}");
}

TEST_F(RelayTest, ClientsThatDoNotReadHoldNoMoreThanTheLeasesBudget) {
  GatewayOptions options;
  options.max_buffered_per_lease = 512 * 1024;
  start_gateway(options);
  Provider& p = add_provider();
  ASSERT_TRUE(eventually([&] { return gateway_->connected(p.address()); })) << p.last_error();
  const auto port = expose(p, 22, true);  // the echo server
  // Eight clients send 16 MiB each to the echo and read nothing: each stream could hold a
  // 256 KiB window of echoed bytes in the gateway, 2 MiB in all.
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> clients;
  for (int i = 0; i < 8; ++i) {
    auto s = std::make_unique<tcp::socket>(io);
    s->open(tcp::v4());
    s->set_option(asio::socket_base::receive_buffer_size(4096));
    s->connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
    s->non_blocking(true);
    clients.push_back(std::move(s));
  }
  const std::string chunk(64 * 1024, 'e');
  std::size_t most = 0;
  std::size_t closed = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{6};
  while (std::chrono::steady_clock::now() < until) {
    closed = 0;
    for (auto& s : clients) {
      boost::system::error_code ec;
      (void)s->write_some(asio::buffer(chunk), ec);
      closed += ec && ec != asio::error::would_block ? 1u : 0u;
    }
    most = std::max(most, gateway_->buffered_bytes());
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  // Over the budget by at most the frame that crossed it; the slowest readers were reset.
  EXPECT_LE(most, options.max_buffered_per_lease + kMaxData);
  EXPECT_GT(most, 0u);
  EXPECT_GT(closed, 0u);
}

TEST_F(RelayTest, WithoutARangeAFreedPortIsNotHandedOutAgainWhileItRests) {
  start_gateway();  // any free port
  Provider& p = add_provider();
  std::set<std::uint16_t> freed;
  for (int i = 0; i < 40; ++i) {
    const std::string lease = "lease-" + std::to_string(100 + i);
    auto e = gateway_->expose(lease, p.address(), {Gateway::Port{22, true, false}});
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_FALSE(freed.contains(e->front().public_port)) << "port " << e->front().public_port << " again";
    freed.insert(e->front().public_port);
    gateway_->withdraw(lease);
  }
}

}  // namespace
}  // namespace kaisar::gateway
