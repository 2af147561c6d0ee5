// bench/heartbeats: see the script of the same name.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/protocol.hpp"
#include "core/time.hpp"
#include "crypto/eip191.hpp"
#include "net/client.hpp"
#include "process.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using kaisar::crypto::PrivateKey;

namespace {

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      in >> kib;
      return kib;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

struct SimAgent {
  PrivateKey node = PrivateKey::generate();
  std::string binding_signature;
  std::shared_ptr<kaisar::net::WebSocketClient> client;
  std::deque<Clock::time_point> in_flight;
};

}  // namespace

int main(int argc, char** argv) {
  std::string kaisar = "build/default/kaisar";
  std::size_t agents = 10000;
  double rate = 20000;
  int seconds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--kaisar") kaisar = argv[i + 1];
    else if (a == "--agents") agents = std::stoul(argv[i + 1]);
    else if (a == "--rate") rate = std::stod(argv[i + 1]);
    else if (a == "--seconds") seconds = std::stoi(argv[i + 1]);
  }
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);

  auto data = std::filesystem::temp_directory_path() / ("kaisar-bench-hb-" + std::to_string(::getpid()));
  std::filesystem::remove_all(data);
  std::filesystem::create_directories(data);
  // Every simulated agent comes from 127.0.0.1: the per-address caps are raised to let them
  // in (the caps are still counted, at the global defaults).
  const std::string config = (data / "onenode.toml").string();
  {
    std::ofstream f(config);
    f << "max_connections_per_address = 16384\nmax_websockets_per_address = 16384\n";
  }
  kaisar::testing::ChildProcess onenode({kaisar, "onenode", "--config", config, "--listen", "127.0.0.1:0", "--data",
                                         data.string(), "--heartbeat-interval", "5", "--threads", "2"});
  auto url = onenode.wait_for_line("listening on ");
  if (!url) {
    std::cerr << "onenode did not start\n" << onenode.output();
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds{500});
  const std::uint64_t rss_before = rss_kib(onenode.pid());
  const std::string ws = "ws://" + url->substr(7) + std::string(kaisar::protocol::kConnectPath);

  std::cerr << "preparing " << agents << " node keys\n";
  auto owner = PrivateKey::generate();
  const std::string issued_at = kaisar::format_rfc3339(std::chrono::system_clock::now());
  asio::io_context io;  // outlives the clients below, whose strands live in it
  std::vector<SimAgent> sims(agents);
  for (auto& s : sims) {
    s.binding_signature = kaisar::crypto::personal_sign(
        owner, kaisar::protocol::binding_message(s.node.address().to_checksum(), owner.address().to_checksum(), issued_at))
                              .to_hex();
  }
  const json::object hardware{{"cpu_model", "bench"}, {"cpu_cores", 8}, {"ram_bytes", 1 << 30}, {"gpus", json::array{}}};

  std::size_t connected = 0, failed = 0, next = 0;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(static_cast<std::size_t>(rate * seconds * 1.2));
  std::uint64_t sent = 0, acked = 0;
  bool measuring = false;
  Clock::time_point measure_start, measure_end;

  auto reader = [&](SimAgent& s) -> asio::awaitable<void> {
    for (;;) {
      auto msg = co_await s.client->read();
      if (!msg) co_return;
      if (msg->find("\"ack\"") == std::string::npos || s.in_flight.empty()) continue;
      auto now = Clock::now();
      if (measuring && s.in_flight.front() >= measure_start && now <= measure_end) {
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - s.in_flight.front()).count());
        ++acked;
      }
      s.in_flight.pop_front();
    }
  };

  // Connect with bounded concurrency (as agents coming online would, not all in one instant).
  auto connector = [&]() -> asio::awaitable<void> {
    while (next < sims.size()) {
      SimAgent& s = sims[next++];
      auto c = co_await kaisar::net::WebSocketClient::connect(io.get_executor(), ws);
      if (!c) {
        ++failed;
        continue;
      }
      s.client = *c;
      auto challenge = co_await s.client->read();
      if (!challenge) {
        ++failed;
        continue;
      }
      auto v = json::parse(*challenge);
      std::string nonce(v.at("nonce").as_string());
      json::object hello{{"type", "hello"},
                         {"v", kaisar::protocol::kVersion},
                         {"node", s.node.address().to_checksum()},
                         {"signature", kaisar::crypto::personal_sign(s.node, kaisar::protocol::auth_message(nonce)).to_hex()},
                         {"binding", json::object{{"owner", owner.address().to_checksum()},
                                                  {"issued_at", issued_at},
                                                  {"signature", s.binding_signature}}},
                         {"hardware", hardware}};
      s.client->send(json::serialize(hello));
      auto welcome = co_await s.client->read();
      if (!welcome || welcome->find("\"welcome\"") == std::string::npos) {
        ++failed;
        continue;
      }
      ++connected;
      asio::co_spawn(io, reader(s), asio::detached);
    }
  };
  const auto connect_start = Clock::now();
  for (int i = 0; i < 64; ++i) asio::co_spawn(io, connector(), asio::detached);
  // Readers stay pending, so run until every agent has an outcome rather than until idle.
  while (connected + failed < sims.size()) io.run_one();
  const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();
  std::cerr << "connected " << connected << " agents (" << failed << " failed) in " << connect_s << " s\n";
  std::this_thread::sleep_for(std::chrono::seconds{1});
  const std::uint64_t rss_after = rss_kib(onenode.pid());

  // Heartbeats: each agent sends every agents/rate seconds, phases spread evenly.
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(double(agents) / rate));
  const auto warmup = std::chrono::seconds{2};
  const auto start = Clock::now();
  measure_start = start + warmup;
  measure_end = measure_start + std::chrono::seconds{seconds};
  measuring = true;
  auto beater = [&](SimAgent& s, std::size_t index) -> asio::awaitable<void> {
    asio::steady_timer timer(io);
    auto at = start + period * static_cast<long>(index) / static_cast<long>(agents);
    std::uint64_t seq = 0;
    const std::string prefix = R"({"type":"heartbeat","available":{"gpus":0,"cpu_cores":8,"ram_bytes":1073741824},"seq":)";
    while (at < measure_end) {
      timer.expires_at(at);
      co_await timer.async_wait(asio::use_awaitable);
      s.in_flight.push_back(Clock::now());
      s.client->send(prefix + std::to_string(++seq) + "}");
      if (Clock::now() >= measure_start) ++sent;
      at += period;
    }
  };
  for (std::size_t i = 0; i < sims.size(); ++i) {
    if (sims[i].client) asio::co_spawn(io, beater(sims[i], i), asio::detached);
  }
  // Let the last acks arrive, then close everything.
  asio::steady_timer stop_timer(io);
  stop_timer.expires_at(measure_end + std::chrono::seconds{2});
  stop_timer.async_wait([&](auto) {
    for (auto& s : sims) {
      if (s.client) s.client->close();
    }
  });
  io.run();

  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1, static_cast<std::size_t>(p * double(latencies_ms.size())))];
  };
  const double hps = double(acked) / double(seconds);
  const double kib_per_agent = connected ? double(rss_after - rss_before) / double(connected) : 0;
  std::cerr << "sent " << sent << ", acknowledged in window " << acked << "\n";
  onenode.stop(SIGTERM);
  std::filesystem::remove_all(data);
  json::object out{{"agents", connected},
                   {"connect_s", connect_s},
                   {"target_rate", rate},
                   {"heartbeats_per_s", hps},
                   {"p50_ms", pct(0.50)},
                   {"p99_ms", pct(0.99)},
                   {"max_ms", latencies_ms.empty() ? 0.0 : latencies_ms.back()},
                   {"onenode_rss_kib_before", rss_before},
                   {"onenode_rss_kib_after", rss_after},
                   {"kib_per_agent", kib_per_agent}};
  std::cout << json::serialize(out) << std::endl;
  return connected == agents ? 0 : 1;
}
