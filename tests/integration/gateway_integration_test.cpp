// A `kaisar gateway` process under attack by hostile clients. This test plays OneNode (the
// gateway's link: which providers are online, which leases to expose), the provider's agent
// (the real tunnel client, in this process) and its lease containers (small servers here);
// the attackers are plain sockets and curl.
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <future>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

#include "gateway/client.hpp"
#include "gateway/link.hpp"
#include "harness.hpp"
#include "net/server.hpp"

namespace kaisar::testing {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// The resident set of a process in KiB (/proc/PID/statm counts pages).
long resident_kib(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// A blocking client socket from `source` (any 127.x.y.z is loopback on Linux: a per-address
// cap sees each as another address).
std::unique_ptr<tcp::socket> connect_from(asio::io_context& io, const std::string& source, std::uint16_t port) {
  auto s = std::make_unique<tcp::socket>(io);
  s->open(tcp::v4());
  s->bind(tcp::endpoint(asio::ip::make_address(source), 0));
  s->connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  return s;
}

// Whether the peer ends the connection within `timeout` (EOF or reset, before or after data).
bool closed_within(tcp::socket& s, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  s.non_blocking(true);
  char buffer[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    boost::system::error_code ec;
    (void)s.read_some(asio::buffer(buffer), ec);
    if (ec == asio::error::would_block) {
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
      continue;
    }
    if (ec) return true;
  }
  return false;
}

// Under ASan freed memory sits in a quarantine (256 MiB by default) instead of being
// reused, so the gateway's resident set would measure the quarantine, not what it holds.
std::map<std::string, std::string> sanitizer_env() {
#if defined(__SANITIZE_ADDRESS__)
  const char* given = std::getenv("ASAN_OPTIONS");
  return {{"ASAN_OPTIONS", std::string(given != nullptr ? given : "") + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}};
#else
  return {};
#endif
}

class GatewayProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rlimit files{};  // a thousand connections, each seen three times in this process
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    dir_ = make_temp_dir("gateway-process");
    start_containers();
    start_onenode();
    write_text(dir_ + "/link.token", "a-link-token-of-sixteen-or-more\n");
    gateway_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        kaisar_binary(), "gateway", "--onenode", "http://127.0.0.1:" + std::to_string(onenode_->port()), "--token-file",
        dir_ + "/link.token", "--data", dir_ + "/gateway", "--handshake-timeout", "3"}, sanitizer_env());
    auto line = gateway_->wait_for_line("gateway tunnels at ");
    ASSERT_TRUE(line) << gateway_->output();
    std::istringstream words(*line);
    std::string sha_word;
    words >> target_.url >> sha_word >> target_.certificate_sha256;
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(mutex_);
      return exposed_.size() == 2;
    })) << gateway_->output();
    ASSERT_TRUE(dial(agent_key_)) << gateway_->output();
  }

  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->stop(SIGTERM), 0) << gateway_->output();
    }
    asio::post(io_, [this] {
      for (auto& t : tunnels_) t->close();
      io_.stop();
    });
    if (io_thread_.joinable()) io_thread_.join();
    if (onenode_) onenode_->stop();
    fs::remove_all(dir_);
  }

  // The leases' containers: an HTTP/1.1 server that logs request heads and keeps connections
  // alive, and a sink that holds its connections and never reads them.
  void start_containers() {
    http_acceptor_.open(tcp::v4());
    http_acceptor_.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    http_acceptor_.listen();
    sink_acceptor_.open(tcp::v4());
    sink_acceptor_.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    sink_acceptor_.listen(4096);
    asio::co_spawn(io_, serve_http(), asio::detached);
    asio::co_spawn(io_, serve_sink(), asio::detached);
    io_thread_ = std::thread([this] { io_.run(); });
  }

  asio::awaitable<void> serve_http() {
    for (;;) {
      auto [ec, socket] = co_await http_acceptor_.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io_, http_session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> http_session(tcp::socket s) {
    std::string buffer;
    char chunk[4096];
    for (;;) {
      auto end = buffer.find("\r\n\r\n");
      while (end == std::string::npos) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), kTuple);
        if (ec) co_return;  // the client's end: close
        buffer.append(chunk, n);
        end = buffer.find("\r\n\r\n");
      }
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(buffer.substr(0, end + 4));
      }
      buffer.erase(0, end + 4);
      const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(response), kTuple);
      if (wec) co_return;
    }
  }

  asio::awaitable<void> serve_sink() {
    for (;;) {
      auto [ec, socket] = co_await sink_acceptor_.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io_, sink_session(std::move(socket)), asio::detached);
    }
  }

  static asio::awaitable<void> sink_session(tcp::socket s) {
    asio::steady_timer forever(s.get_executor(), asio::steady_timer::time_point::max());
    (void)co_await forever.async_wait(kTuple);  // holds the socket, never reads
  }

  // Plays OneNode's side of the gateway link.
  void start_onenode() {
    net::Router router;
    router.add_websocket(std::string(gateway::kLinkPath),
                         [this](net::Request&, std::shared_ptr<net::WebSocketSession> ws) -> std::optional<net::Response> {
                           ws->on_message([this](std::string_view text) {
                             boost::system::error_code ec;
                             auto v = boost::json::parse(text, ec);
                             const auto* type = !ec && v.is_object() ? v.get_object().if_contains("type") : nullptr;
                             if (type == nullptr || !type->is_string() || type->get_string() != "exposed") return;
                             auto e = gateway::parse_exposed(v.get_object());
                             if (!e) return;
                             std::lock_guard lock(mutex_);
                             exposed_[e->lease_id] = *e;
                           });
                           boost::json::array online{boost::json::string(agent_key_.address().to_lower_hex()),
                                                     boost::json::string(other_key_.address().to_lower_hex())};
                           ws->send(boost::json::serialize(boost::json::object{{"type", "providers"}, {"online", online}}));
                           const std::string provider = agent_key_.address().to_checksum();
                           ws->send(boost::json::serialize(gateway::expose_message(
                               "lease-a", provider, {{80, false, false}, {81, true, false}})));
                           ws->send(boost::json::serialize(gateway::expose_message("lease-b", provider, {{80, false, true}})));
                           return std::nullopt;
                         });
    onenode_ = std::make_unique<net::HttpServer>(net::ServerOptions{}, std::move(router));
    ASSERT_TRUE(onenode_->start());
  }

  // The agent's tunnel with `key`, retried for a while (the gateway hears from "OneNode"
  // which providers are online a moment after it starts).
  bool dial(const crypto::PrivateKey& key, std::chrono::seconds patience = std::chrono::seconds{20}) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
      std::promise<std::string> result;
      asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
        const gateway::TunnelTarget target = target_;
        gateway::TunnelConnection::Resolver resolver = [this](const std::string& lease,
                                                              std::uint16_t port) -> std::optional<std::uint16_t> {
          if (lease == "lease-a" && port == 81) return sink_acceptor_.local_endpoint().port();
          return http_acceptor_.local_endpoint().port();
        };
        auto t = co_await gateway::dial_tunnel(io_.get_executor(), target, key, resolver);
        if (!t) {
          result.set_value(t.error().message);
          co_return;
        }
        tunnels_.push_back(*t);
        result.set_value("");
        (void)co_await (*t)->run();
      }, asio::detached);
      if (result.get_future().get().empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
    return false;
  }

  std::uint16_t public_port(const std::string& lease, std::uint16_t port) {
    std::lock_guard lock(mutex_);
    for (const auto& e : exposed_.at(lease).endpoints) {
      if (e.port.container_port == port) return e.public_port;
    }
    return 0;
  }
  std::string token(const std::string& lease) {
    std::lock_guard lock(mutex_);
    return exposed_.at(lease).access_token;
  }
  std::string url(const std::string& lease, std::uint16_t port, const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(public_port(lease, port)) + path;
  }
  std::uint16_t tunnel_port() const { return static_cast<std::uint16_t>(std::stoi(target_.url.substr(target_.url.rfind(':') + 1))); }

  std::string dir_;
  crypto::PrivateKey agent_key_ = crypto::PrivateKey::generate();
  crypto::PrivateKey other_key_ = crypto::PrivateKey::generate();
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::thread io_thread_;
  tcp::acceptor http_acceptor_{io_};
  tcp::acceptor sink_acceptor_{io_};
  std::vector<std::shared_ptr<gateway::TunnelConnection>> tunnels_;
  std::unique_ptr<net::HttpServer> onenode_;
  std::unique_ptr<ChildProcess> gateway_;
  gateway::TunnelTarget target_;
  std::mutex mutex_;
  std::map<std::string, gateway::Exposed> exposed_;
  std::vector<std::string> requests_;  // heads the HTTP container received
};

TEST_F(GatewayProcessTest, EveryRequestOfAKeepAliveConnectionNeedsTheTokenAndTheContainerNeverSeesIt) {
  const std::string t = token("lease-a");
  // Two requests on one connection (curl reuses it: num_connects 0); the second has no token.
  auto two = run_process({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
                          url("lease-a", 80, "/first?x=1&kaisar_token=" + t), url("lease-a", 80, "/second")});
  EXPECT_EQ(two.out, "200 1\n401 0\n") << two.err << gateway_->output();
  // The second has a wrong token.
  auto wrong = run_process({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
                            url("lease-a", 80, "/third?kaisar_token=" + t),
                            url("lease-a", 80, "/fourth?kaisar_token=" + std::string(32, '0'))});
  EXPECT_EQ(wrong.out, "200 1\n401 0\n") << wrong.err;
  // Three good ones (header, cookie, query) on one connection all pass.
  auto good = run_process({"curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-w",
                           "%{http_code} %{num_connects}\\n", "-H",
                           "Authorization: Bearer " + t, "-b", "kaisar_token=" + t + "; mine=1", url("lease-a", 80, "/fifth"),
                           url("lease-a", 80, "/sixth"), url("lease-a", 80, "/seventh?kaisar_token=" + t)});
  EXPECT_EQ(good.out, "200 1\n200 0\n200 0\n") << good.err;

  std::lock_guard lock(mutex_);
  std::string all;
  for (const auto& r : requests_) all += r;
  for (const char* seen : {"/first?x=1 ", "/third ", "/fifth ", "/sixth ", "/seventh ", "Cookie: mine=1"}) {
    EXPECT_NE(all.find(seen), std::string::npos) << seen << " in\n" << all;
  }
  for (const char* unseen : {"/second", "/fourth", "kaisar_token", "Authorization", t.c_str()}) {
    EXPECT_EQ(all.find(unseen), std::string::npos) << unseen << " in\n" << all;
  }
}

TEST_F(GatewayProcessTest, StrangersHoldingIdleTunnelConnectionsCannotKeepAProviderOut) {
  // From 127.0.0.2: more idle connections than the gateway takes handshakes in all, and a
  // few slow-loris TLS ones (a record header, then nothing).
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(connect_from(io, "127.0.0.2", tunnel_port()));
  for (int i = 0; i < 5; ++i) {
    idle.push_back(connect_from(io, "127.0.0.2", tunnel_port()));
    const unsigned char record[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    boost::system::error_code ec;  // those past the cap may be closed already
    asio::write(*idle.back(), asio::buffer(record), ec);
  }
  // A provider elsewhere still connects.
  EXPECT_TRUE(dial(other_key_, std::chrono::seconds{5})) << gateway_->output();
  // Past the per-address cap they are closed at once; the rest when their 3 s are up.
  int at_once = 0;
  for (auto& s : idle) at_once += closed_within(*s, std::chrono::milliseconds{1}) ? 1 : 0;
  EXPECT_GE(at_once, 305 - 16);
  for (auto& s : idle) EXPECT_TRUE(closed_within(*s, std::chrono::seconds{15}));

  // A stranger's oversized hello is refused, not read.
  std::promise<bool> refused;
  asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
    const gateway::TunnelTarget target = target_;
    auto ws = co_await gateway::connect_tunnel_socket(io_.get_executor(), target, std::chrono::seconds{10});
    if (!ws) {
      refused.set_value(false);
      co_return;
    }
    boost::beast::flat_buffer challenge;
    auto [rec, rn] = co_await (*ws)->async_read(challenge, kTuple);
    // Under the old 65 KiB limit this was read and answered; now it is over the 4 KiB a
    // stranger may send.
    const std::string big(32 * 1024, 'x');
    (*ws)->text(true);
    auto [wec, wn] = co_await (*ws)->async_write(asio::buffer(big), kTuple);
    boost::beast::flat_buffer answer;
    auto [aec, an] = co_await (*ws)->async_read(answer, kTuple);
    refused.set_value(!rec && (wec || aec));
  }, asio::detached);
  EXPECT_TRUE(refused.get_future().get());
}

TEST_F(GatewayProcessTest, PublicPortsCapConnectionsPerAddress) {
  asio::io_context io;
  // Lease b's port is open to all (relayed at once): 64 held connections from 127.0.0.4.
  std::vector<std::unique_ptr<tcp::socket>> held;
  for (int i = 0; i < 64; ++i) held.push_back(connect_from(io, "127.0.0.4", public_port("lease-b", 80)));
  auto over = run_process({"curl", "-s", "-i", "--interface", "127.0.0.4", url("lease-b", 80, "/")});
  EXPECT_NE(over.out.find("HTTP/1.1 429"), std::string::npos) << over.out;
  auto other = run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.5",
                            url("lease-b", 80, "/")});
  EXPECT_EQ(other.out, "200");
  // Raw TCP: the connection over the cap is closed without reaching the container.
  std::vector<std::unique_ptr<tcp::socket>> tcp_held;
  for (int i = 0; i < 64; ++i) tcp_held.push_back(connect_from(io, "127.0.0.6", public_port("lease-a", 81)));
  auto extra = connect_from(io, "127.0.0.6", public_port("lease-a", 81));
  EXPECT_TRUE(closed_within(*extra, std::chrono::seconds{10}));
  EXPECT_FALSE(closed_within(*tcp_held.front(), std::chrono::milliseconds{500}));
  // Once some close, the address may connect again.
  held.resize(60);
  EXPECT_TRUE(eventually([&] {
    auto again = run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.4",
                              url("lease-b", 80, "/")});
    return again.out == "200";
  }));
}

TEST_F(GatewayProcessTest, AThousandUnreadConnectionsToALeaseCostABoundedAmount) {
  const long before = resident_kib(gateway_->pid());
  // 1,000 connections from 20 addresses to a container that never reads; every client
  // sends 16 KiB.
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::socket>> flood;
  const std::string data(16 * 1024, 'c');
  for (int i = 0; i < 1000; ++i) {
    flood.push_back(connect_from(io, "127.0.1." + std::to_string(10 + i / 50), public_port("lease-a", 81)));
    boost::system::error_code ec;
    asio::write(*flood.back(), asio::buffer(data), ec);
  }
  long most = before;
  for (int i = 0; i < 40; ++i) {
    most = std::max(most, resident_kib(gateway_->pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
  }
  // Each connection used to hold a 64 KiB read buffer while it waited (over 60 MiB here); now
  // an idle connection holds none.
  EXPECT_LT(most - before, 32 * 1024) << "RSS " << before << " KiB before, " << most << " KiB at most";
  // Another lease is served meanwhile.
  auto other = run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url("lease-b", 80, "/")});
  EXPECT_EQ(other.out, "200") << gateway_->output();
}

}  // namespace
}  // namespace kaisar::testing
