// Nothing exhausts OneNode before authentication: hostile clients against a real
// `kaisar onenode` (frames before the hello, held connections, streams and WebSockets, a
// flood of sign-in nonces), and agents that refuse a plain-HTTP OneNode off this machine.
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "core/protocol.hpp"
#include "harness.hpp"

namespace kaisar::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

std::uint16_t port_of(const std::string& url) { return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1))); }

// A blocking socket to OneNode whose reads give up after a few seconds.
tcp::socket dial(asio::io_context& ioc, std::uint16_t port) {
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  timeval tv{10, 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return socket;
}

// A WebSocket to `path` as a stranger would open it; `status` is the upgrade's answer.
struct Stranger {
  Stranger(asio::io_context& ioc, std::uint16_t port, std::string_view path) : ws(dial(ioc, port)) {
    websocket::response_type response;
    boost::system::error_code ec;
    ws.handshake(response, "127.0.0.1:" + std::to_string(port), std::string(path), ec);
    status = static_cast<int>(response.result_int());
    body = response.body();
  }
  websocket::stream<tcp::socket> ws;
  int status = 0;
  std::string body;
};

// One HTTP/1.1 exchange on a held socket.
int get_status(tcp::socket& socket, const std::string& target, const std::string& token = {}) {
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  boost::system::error_code ec;
  http::write(socket, req, ec);
  if (ec) return 0;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  return ec ? 0 : static_cast<int>(res.result_int());
}

class ServiceLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("limits");
    env_ = {{"XDG_CONFIG_HOME", dir_ + "/config"}, {"XDG_DATA_HOME", dir_ + "/share"}, {"KAISAR_PASSWORD", ""}};
    write_text(dir_ + "/password", "pw\n");
  }
  void TearDown() override {
    agent_.reset();
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << "OneNode did not shut down cleanly";
    }
    fs::remove_all(dir_);
  }
  void start_onenode(const std::string& config, const std::string& listen = "127.0.0.1:0") {
    write_text(dir_ + "/onenode.toml", config);
    node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", std::vector<std::string>{"--config", dir_ + "/onenode.toml"},
                                             listen);
  }
  // A provider identity; returns its node id.
  std::string init_provider() {
    auto init = run_process({kaisar_binary(), "provider", "init", "--data", dir_ + "/agent", "--password-file",
                             dir_ + "/password", "--light-kdf", "--json"},
                            {}, env_);
    EXPECT_EQ(init.exit_code, 0) << init.err;
    return init.exit_code == 0 ? std::string(json::parse(init.out).at("node").as_string()) : std::string{};
  }
  std::vector<std::string> agent_argv(const std::string& onenode) {
    return {kaisar_binary(), "provider", "run", "--data", dir_ + "/agent", "--onenode", onenode};
  }
  bool online(const std::string& node) {
    return eventually([&] {
      auto p = call("GET", node_->url() + "/api/v1/providers/" + node);
      return p.status == 200 && p.body.at("status").as_string() == "online";
    }, std::chrono::seconds{60});
  }

  std::string dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<OneNodeProcess> node_;
  std::unique_ptr<ChildProcess> agent_;
};

TEST_F(ServiceLimitsTest, AnOversizedFrameBeforeTheHelloClosesTheSocketWhileARealAgentConnects) {
  start_onenode("");
  asio::io_context ioc;
  Stranger stranger(ioc, port_of(node_->url()), protocol::kConnectPath);
  ASSERT_EQ(stranger.status, 101) << stranger.body;
  beast::flat_buffer buffer;
  stranger.ws.read(buffer);  // the challenge
  // The header of a 64 KiB text frame before any hello (and only its first bytes): OneNode
  // refuses it from the header alone, with 1009 (too big), before buffering any of it.
  // Sending the whole frame would race the server's close (the write may meet a reset).
  const unsigned char header[] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
  std::string frame(reinterpret_cast<const char*>(header), sizeof header);
  frame += std::string(64, 'x');
  asio::write(stranger.ws.next_layer(), asio::buffer(frame));
  boost::system::error_code ec;
  for (int i = 0; i < 4 && !ec; ++i) stranger.ws.read(buffer, ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  EXPECT_EQ(stranger.ws.reason().code, websocket::close_code::too_big);

  // A real agent still gets in (its PoPW answers of megabytes after the hello are covered
  // by PopwTest.ALargeCheckGoesThroughTheChannels).
  const std::string node = init_provider();
  agent_ = std::make_unique<ChildProcess>(agent_argv(node_->url()), env_);
  EXPECT_TRUE(online(node)) << agent_->output();
}

TEST_F(ServiceLimitsTest, HostileClientsHoldTheirShareWhileHealthzAndSignedInUsersStillAnswer) {
  start_onenode(
      "max_connections_per_address = 12\nmax_event_streams_per_address = 3\nmax_websockets_per_address = 3\n"
      "admission_reserve = 2\n");
  const std::string url = node_->url();
  const std::uint16_t port = port_of(url);
  const std::string token = sign_in(url, crypto::PrivateKey::generate());
  ASSERT_FALSE(token.empty());
  asio::io_context ioc;

  // WebSockets that never say hello: three pass, the fourth is refused with 429.
  std::vector<std::unique_ptr<Stranger>> sockets;
  for (int i = 0; i < 3; ++i) {
    sockets.push_back(std::make_unique<Stranger>(ioc, port, protocol::kConnectPath));
    ASSERT_EQ(sockets.back()->status, 101) << sockets.back()->body;
  }
  Stranger fourth(ioc, port, protocol::kConnectPath);
  EXPECT_EQ(fourth.status, 429) << fourth.body;
  EXPECT_NE(fourth.body.find("too many WebSockets from 127.0.0.1"), std::string::npos) << fourth.body;

  // Event streams: three anonymous ones, then 429; a signed-in user's still opens.
  std::vector<std::unique_ptr<net::SseReader>> streams;
  for (int i = 0; i < 3; ++i) {
    auto s = net::SseReader::open(url + "/api/v1/events");
    ASSERT_TRUE(s) << s.error().message;
    streams.push_back(std::move(*s));
  }
  auto refused = net::SseReader::open(url + "/api/v1/events");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("429"), std::string::npos) << refused.error().message;
  auto mine = net::SseReader::open(url + "/api/v1/events", {{"authorization", "Bearer " + token}});
  ASSERT_TRUE(mine) << mine.error().message;

  // Kept-alive connections fill the rest of the address's share (12, streams and sockets
  // included) until a stranger's request is refused.
  std::vector<tcp::socket> held;
  int refused_status = 0;
  for (int i = 0; i < 20 && refused_status == 0; ++i) {
    tcp::socket stranger = dial(ioc, port);
    const int status = get_status(stranger, "/api/v1/status");
    if (status == 200) held.push_back(std::move(stranger));
    else refused_status = status;
  }
  EXPECT_EQ(refused_status, 429);
  EXPECT_LE(held.size(), 9U) << "the share counts the streams and sockets too";
  // The reserve answers health probes and signed-in users.
  EXPECT_TRUE(eventually([&] {
    tcp::socket probe = dial(ioc, port);
    return get_status(probe, "/healthz") == 200;
  }));
  EXPECT_TRUE(eventually([&] {
    tcp::socket user = dial(ioc, port);
    return get_status(user, "/api/v1/me", token) == 200;
  }));

  // Once the strangers go, anyone is served again.
  sockets.clear();
  streams.clear();
  held.clear();
  EXPECT_TRUE(eventually([&] { return call("GET", url + "/api/v1/status").status == 200; }));
}

TEST_F(ServiceLimitsTest, StrangersAskingForThousandsOfNoncesDoNotStopAWalletSigningIn) {
  start_onenode("");
  const auto wallet = crypto::PrivateKey::generate();
  asio::io_context ioc;
  tcp::socket socket = dial(ioc, port_of(node_->url()));
  beast::flat_buffer buffer;
  int issued = 0;
  // 1,000 for the wallet's own address (a per-address pool would be full), then 10,000 for
  // others (a global pool would be), all on one keep-alive connection.
  for (int i = 0; i < 11000; ++i) {
    std::string address = wallet.address().to_checksum();
    if (i >= 1000) {
      char hex[41];
      std::snprintf(hex, sizeof hex, "%040x", i);
      address = std::string("0x") + hex;
    }
    http::request<http::string_body> req(http::verb::post, "/api/v1/auth/nonce", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(json::object{{"address", address}});
    req.prepare_payload();
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    if (res.result_int() == 200) ++issued;
  }
  EXPECT_EQ(issued, 11000);
  EXPECT_FALSE(sign_in(node_->url(), wallet).empty());
}

// The machine's first non-loopback IPv4 address, if it has one.
std::optional<std::string> outside_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    sockaddr_in in{};
    std::memcpy(&in, a->ifa_addr, sizeof in);
    auto v4 = asio::ip::address_v4(ntohl(in.sin_addr.s_addr));
    if (!v4.is_loopback()) found = v4.to_string();
  }
  freeifaddrs(list);
  return found;
}

TEST_F(ServiceLimitsTest, AgentAndCheckerRefuseAPlainHttpOneNodeOffThisMachine) {
  auto address = outside_address();
  ASSERT_TRUE(address) << "this test needs a non-loopback IPv4 address";
  start_onenode("", "0.0.0.0:0");
  const std::string remote = "http://" + *address + ":" + std::to_string(port_of(node_->url()));
  const std::string node = init_provider();

  auto agent = run_process(agent_argv(remote), {}, env_, std::chrono::seconds{30});
  EXPECT_EQ(agent.exit_code, 2) << agent.err;
  EXPECT_NE(agent.err.find("is not TLS"), std::string::npos) << agent.err;
  auto checker = run_process({kaisar_binary(), "checker", "run", "--data", dir_ + "/checker", "--onenode", remote}, {},
                             env_, std::chrono::seconds{30});
  EXPECT_EQ(checker.exit_code, 2) << checker.err;
  EXPECT_NE(checker.err.find("--insecure-dev"), std::string::npos) << checker.err;
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/providers/" + node).status, 404) << "nothing reached OneNode";

  // On the operator's word that this is a private dev network, it connects.
  auto argv = agent_argv(remote);
  argv.push_back("--insecure-dev");
  agent_ = std::make_unique<ChildProcess>(argv, env_);
  EXPECT_TRUE(online(node)) << agent_->output();
}

}  // namespace
}  // namespace kaisar::testing
