// bench/gateway: see the script. The gateway runs in a child process (forked before any
// thread starts); this process runs the bulk server, the agent's tunnel and the clients.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <cmath>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "gateway/client.hpp"
#include "gateway/gateway.hpp"
#include "process.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace kaisar;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The gateway process: exposes lease "bench" port 9 of `provider`, prints
// "TUNNEL_URL SHA256 PUBLIC_PORT" on `out`, and runs until `in` closes.
[[noreturn]] void gateway_child(int in, int out, const crypto::Address& provider, const std::string& dir) {
  gateway::GatewayOptions options;
  options.certificate = dir + "/gateway.crt";
  options.private_key = dir + "/gateway.key";
  options.secret = dir + "/gateway.secret";
  options.max_tunnels = 100000;
  auto g = gateway::Gateway::start(options, [](const crypto::Address&) { return true; });
  if (!g) {
    std::cerr << "gateway: " << g.error().message << "\n";
    _exit(1);
  }
  auto exposed = (*g)->expose("bench", provider, {gateway::Gateway::Port{9, true, false}});
  if (!exposed) _exit(1);
  const std::string line = (*g)->tunnel_url() + " " + (*g)->certificate_sha256() + " " +
                           std::to_string(exposed->front().public_port) + "\n";
  if (write(out, line.data(), line.size()) < 0) _exit(1);
  char c;
  while (read(in, &c, 1) > 0) {
  }
  (*g)->stop();
  _exit(0);
}

// Bulk server: each connection gets one byte at once (for setup latency), then, if the
// client sends "B", `bulk` bytes, then EOF.
asio::awaitable<void> answer(tcp::socket s, std::size_t bulk) {
  static const std::vector<char> block(1 << 20, 'k');
  boost::system::error_code e;
  s.set_option(tcp::no_delay(true), e);
  (void)co_await asio::async_write(s, asio::buffer("!", 1), kTuple);
  char what = 0;
  auto [rec, rn] = co_await asio::async_read(s, asio::buffer(&what, 1), kTuple);
  if (rec || what != 'B') co_return;
  for (std::size_t sent = 0; sent < bulk;) {
    const std::size_t n = std::min(block.size(), bulk - sent);
    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(block.data(), n), kTuple);
    if (wec) co_return;
    sent += wn;
  }
  s.shutdown(tcp::socket::shutdown_send, e);
}

asio::awaitable<void> serve(tcp::acceptor& acceptor, std::size_t bulk) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), answer(std::move(socket), bulk), asio::detached);
  }
}

// MiB/s of one bulk download from 127.0.0.1:port.
double download(std::uint16_t port, std::size_t bytes) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  char first;
  asio::read(s, asio::buffer(&first, 1));
  const auto start = Clock::now();
  asio::write(s, asio::buffer("B", 1));
  std::vector<char> buffer(1 << 20);
  std::size_t got = 0;
  boost::system::error_code ec;
  while (!ec) got += s.read_some(asio::buffer(buffer), ec);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (got != bytes) throw std::runtime_error("short download: " + std::to_string(got) + " of " + std::to_string(bytes));
  return static_cast<double>(got) / (1 << 20) / seconds;
}

// Milliseconds from connect() to the server's first byte.
double setup_ms(std::uint16_t port) {
  asio::io_context io;
  tcp::socket s(io);
  const auto start = Clock::now();
  s.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  char first;
  asio::read(s, asio::buffer(&first, 1));
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = 512;
  int rounds = 3;
  int connections = 300;
  int tunnels = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long value = std::stol(argv[i + 1]);
    if (flag == "--mib") mib = static_cast<std::size_t>(value);
    else if (flag == "--rounds") rounds = static_cast<int>(value);
    else if (flag == "--connections") connections = static_cast<int>(value);
    else if (flag == "--tunnels") tunnels = static_cast<int>(value);
  }
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  const std::string dir = testing::make_temp_dir("bench-gateway");
  const crypto::PrivateKey agent_key = crypto::PrivateKey::generate();

  int to_child[2];
  int from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(to_child[1]);
    close(from_child[0]);
    gateway_child(to_child[0], from_child[1], agent_key.address(), dir);
  }
  close(to_child[0]);
  close(from_child[1]);
  std::string line;
  char c;
  while (read(from_child[0], &c, 1) == 1 && c != '\n') line += c;
  std::string url;
  std::string sha;
  unsigned public_port = 0;
  {
    std::istringstream parts(line);
    parts >> url >> sha >> public_port;
  }
  if (public_port == 0) {
    std::cerr << "the gateway did not start\n";
    return 1;
  }

  // This process: the bulk server and the agent's tunnel on one thread.
  const std::size_t bulk = mib << 20;
  asio::io_context io{1};
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const std::uint16_t server_port = acceptor.local_endpoint().port();
  asio::co_spawn(io, serve(acceptor, bulk), asio::detached);
  std::atomic<int> up{0};
  std::vector<std::shared_ptr<gateway::TunnelConnection>> tunnel_list;
  auto dial = [&](const crypto::PrivateKey& key) -> asio::awaitable<void> {
    // Named, not temporaries in the co_await expression (GCC 12 destroys those twice).
    gateway::TunnelTarget target{url, sha};
    gateway::TunnelConnection::Resolver resolver = [server_port](const std::string&, std::uint16_t) -> std::optional<std::uint16_t> {
      return server_port;
    };
    auto t = co_await gateway::dial_tunnel(io.get_executor(), target, key, resolver);
    if (!t) {
      std::cerr << "tunnel: " << t.error().message << "\n";
      co_return;
    }
    tunnel_list.push_back(*t);
    ++up;
    (void)co_await (*t)->run();
  };
  asio::co_spawn(io, dial(agent_key), asio::detached);
  std::thread worker([&] { io.run(); });
  while (up.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds{10});
  std::this_thread::sleep_for(std::chrono::milliseconds{200});

  std::cerr << "bulk: " << rounds << " rounds of " << mib << " MiB, direct and through the gateway\n";
  std::vector<double> direct;
  std::vector<double> relayed;
  (void)download(static_cast<std::uint16_t>(public_port), bulk);  // warm up both paths
  (void)download(server_port, bulk);
  for (int r = 0; r < rounds; ++r) {
    direct.push_back(download(server_port, bulk));
    relayed.push_back(download(static_cast<std::uint16_t>(public_port), bulk));
    std::cerr << "  round " << r + 1 << ": direct " << static_cast<long>(direct.back()) << " MiB/s, gateway "
              << static_cast<long>(relayed.back()) << " MiB/s\n";
  }
  std::cerr << "setup: " << connections << " connections each way\n";
  std::vector<double> direct_setup;
  std::vector<double> relayed_setup;
  for (int i = 0; i < connections; ++i) {
    direct_setup.push_back(setup_ms(server_port));
    relayed_setup.push_back(setup_ms(static_cast<std::uint16_t>(public_port)));
  }
  std::cerr << "memory: " << tunnels << " more idle tunnels\n";
  const long rss_before = rss_kib(child);
  std::vector<crypto::PrivateKey> keys;
  for (int i = 0; i < tunnels; ++i) keys.push_back(crypto::PrivateKey::generate());
  // In batches: the gateway takes at most 16 handshakes at once from one address (this one).
  const int batch = static_cast<int>(gateway::GatewayOptions{}.max_handshakes_per_address);
  const auto deadline = Clock::now() + std::chrono::seconds{120};
  for (int at = 0; at < tunnels; at += batch) {
    for (int i = at; i < std::min(tunnels, at + batch); ++i) asio::co_spawn(io, dial(keys[static_cast<std::size_t>(i)]), asio::detached);
    while (up.load() < 1 + std::min(tunnels, at + batch) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds{500});
  const long rss_after = rss_kib(child);

  close(to_child[1]);  // the gateway stops
  int status = 0;
  waitpid(child, &status, 0);
  asio::post(io, [&] {
    for (auto& t : tunnel_list) t->close();
    acceptor.close();
    io.stop();
  });
  worker.join();
  std::filesystem::remove_all(dir);

  const double direct_mib = median(direct);
  const double relayed_mib = median(relayed);
  json::object result{
      {"bench", "gateway"},
      {"mib_per_round", mib},
      {"rounds", rounds},
      {"direct_mib_s", std::round(direct_mib)},
      {"gateway_mib_s", std::round(relayed_mib)},
      {"throughput_ratio", std::round(relayed_mib / direct_mib * 1000) / 1000},
      {"direct_setup_ms", std::round(median(direct_setup) * 1000) / 1000},
      {"gateway_setup_ms", std::round(median(relayed_setup) * 1000) / 1000},
      {"added_setup_ms", std::round((median(relayed_setup) - median(direct_setup)) * 1000) / 1000},
      {"idle_tunnels", up.load() - 1},
      {"kib_per_tunnel", up.load() > 1 ? std::round(static_cast<double>(rss_after - rss_before) / (up.load() - 1) * 10) / 10 : 0.0},
  };
  std::cout << json::serialize(result) << std::endl;
  return 0;
}
