// bench/scheduler: see the script of the same name.
#include <csignal>
#include <algorithm>
#include <atomic>
#include <mutex>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crypto/secp256k1.hpp"
#include "net/client.hpp"
#include "onenode/leases.hpp"
#include "onenode/onenode.hpp"
#include "onenode/registry.hpp"
#include "onenode/scheduler.hpp"
#include "process.hpp"

namespace json = boost::json;
namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;
using namespace kaisar;

namespace {

double ms_since(Steady::time_point t) { return std::chrono::duration<double, std::milli>(Steady::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::string base_units(std::uint64_t micro_tokens) { return std::to_string(micro_tokens) + "000000000000"; }

// A provider fleet of mixed machines, the same every run.
onenode::Registration machine(std::mt19937_64& rng, std::size_t n) {
  onenode::Registration reg;
  reg.node = crypto::PrivateKey::generate().address();
  reg.owner = reg.node;
  reg.binding_signature = "0x00";
  reg.binding_issued_at = "2026-11-25T00:00:00Z";
  reg.agent_version = "bench";
  reg.remote_ip = "127.0.0.1";
  reg.region = std::vector<std::string>{"eu-central", "us-east", "ap-south"}[n % 3];
  Hardware& hw = reg.hardware;
  hw.cpu_model = "AMD EPYC 7763 64-Core Processor";
  hw.cpu_cores = static_cast<std::uint32_t>(8 << (rng() % 4));  // 8 to 64
  hw.ram_bytes = static_cast<std::uint64_t>(hw.cpu_cores) * 4 << 30;
  hw.disk_bytes = 2ULL << 40;
  hw.disk_free_bytes = 1ULL << 40;
  struct Model {
    const char* name;
    std::uint64_t vram_gib;
    std::uint64_t price_micro;  // per GPU-hour
  };
  static const Model kModels[] = {{"NVIDIA GeForce RTX 4090", 24, 400000},
                                  {"NVIDIA A100-SXM4-80GB", 80, 1200000},
                                  {"NVIDIA H100 80GB HBM3", 80, 2500000},
                                  {"NVIDIA GeForce RTX 3090", 24, 250000}};
  const std::uint64_t kind = rng() % 100;
  std::uint64_t gpu_price = 0;
  if (kind >= 40) {  // 60% have GPUs: 1, 2, 4 or 8 of one model
    const Model& m = kModels[kind < 70 ? 0 : kind < 85 ? 1 : kind < 95 ? 2 : 3];
    const std::size_t count = std::size_t{1} << (rng() % 4);
    for (std::size_t i = 0; i < count; ++i) {
      hw.gpus.push_back(Gpu{m.name, m.vram_gib << 30, "GPU-bench-" + std::to_string(n) + "-" + std::to_string(i),
                            "550.54.15"});
    }
    gpu_price = m.price_micro * (80 + rng() % 40) / 100;  // ±20% between providers
  }
  reg.prices = json::object{{"gpu_hour", base_units(gpu_price)},
                            {"cpu_core_hour", base_units(5000 + rng() % 10000)},
                            {"ram_gb_hour", base_units(1000 + rng() % 2000)}};
  return reg;
}

struct Placement {
  std::uint32_t gpus;
  std::uint32_t cpus;
  std::uint32_t memory_gb;
  const char* query;
};

// Runs `kaisar ARGS` with the environment `env`; returns its stdout.
std::string run_cli(const std::string& kaisar, std::vector<std::string> args,
                    const std::map<std::string, std::string>& env, int* status) {
  args.insert(args.begin(), kaisar);
  auto r = testing::run_process(args, {}, env, std::chrono::seconds{240});
  *status = r.exit_code;
  if (r.exit_code != 0) std::cerr << "kaisar " << args[1] << " exited " << r.exit_code << ": " << r.err << r.out << "\n";
  return r.out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kaisar = "build/default/kaisar";
  std::size_t providers = 100000;
  std::size_t placements = 20000;
  std::size_t searches = 400;
  std::size_t placement_threads = 2;
  bool rent = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--kaisar") kaisar = v, ++i;
    else if (a == "--providers") providers = std::stoul(v), ++i;
    else if (a == "--placements") placements = std::stoul(v), ++i;
    else if (a == "--searches") searches = std::stoul(v), ++i;
    else if (a == "--placement-threads") placement_threads = std::max<std::size_t>(1, std::stoul(v)), ++i;
    else if (a == "--no-rent") rent = false;
  }
  const std::string dir = testing::make_temp_dir("bench-scheduler");

  // --- 1. OneNode with 100,000 providers in its store ------------------------------------
  onenode::OneNodeConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir + "/onenode";
  config.offline_after = std::chrono::hours{24};  // no agents: nobody heartbeats
  config.payment_timeout = std::chrono::hours{24};
  onenode::OneNode node(config);
  auto url = node.start();
  if (!url) {
    std::cerr << "onenode: " << url.error().message << "\n";
    return 1;
  }
  std::mt19937_64 rng(20261125);
  auto t = Steady::now();
  for (std::size_t i = 0; i < providers; ++i) {
    if (auto r = node.registry().connect(machine(rng, i)); !r) {
      std::cerr << "register: " << r.error().message << "\n";
      return 1;
    }
    if (i % 20000 == 19999) std::cerr << (i + 1) << " providers registered\n";
  }
  const double register_s = ms_since(t) / 1000;
  std::cerr << providers << " providers online in " << register_s << " s (" << node.scheduler().size() << " offers)\n";

  // --- 2. Placements: the scheduler picks, the lease book reserves atomically ------------
  const Placement kMix[] = {{1, 4, 16, "gpu_name=RTX_4090"},
                            {2, 8, 32, "gpu_ram>=40 reliability>=0"},
                            {0, 2, 4, "cpu_cores>=4"},
                            {1, 2, 8, "num_gpus>=1 price_hour<=50"}};
  std::vector<onenode::Query> queries;
  for (const auto& p : kMix) queries.push_back(onenode::parse_query(p.query).value());
  chain::Deployment deployment;
  deployment.chain_id = 31337;
  const auto renter = crypto::PrivateKey::generate().address();
  // The pick alone (no reservation), for the record.
  auto pick = Steady::now();
  for (std::size_t k = 0; k < 1000; ++k) {
    const Placement& p = kMix[k % std::size(kMix)];
    (void)node.scheduler().candidates(queries[k % std::size(kMix)], onenode::Need{p.gpus, p.cpus, p.memory_gb}, 3);
  }
  const double pick_ms = ms_since(pick) / 1000;
  // As OneNode serves them: from as many threads as it has HTTP threads (2).
  std::vector<double> place_ms;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> placed{0};
  std::mutex latencies;
  t = Steady::now();
  std::vector<std::thread> placers;
  for (std::size_t w = 0; w < placement_threads; ++w) {
    placers.emplace_back([&] {
      std::vector<double> mine;
      for (std::size_t i = next++; i < placements; i = next++) {
        const Placement& p = kMix[i % std::size(kMix)];
        onenode::LeaseSpec spec;
        spec.image = "localhost/kaisar/demo:latest";
        spec.gpus = p.gpus;
        spec.cpus = p.cpus;
        spec.memory_gb = p.memory_gb;
        spec.query = p.query;
        const auto one = Steady::now();
        auto lease = onenode::place_lease(node.scheduler(), node.leases(), renter, spec, queries[i % std::size(kMix)],
                                          deployment);
        mine.push_back(ms_since(one));
        if (lease) ++placed;
        else if (i < 5) std::cerr << "placement: " << lease.error().message << "\n";
      }
      std::lock_guard lock(latencies);
      place_ms.insert(place_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : placers) th.join();
  const double place_s = ms_since(t) / 1000;
  const double placements_per_s = static_cast<double>(placed.load()) / place_s;
  std::cerr << "  the pick alone: " << pick_ms << " ms\n";
  std::cerr << placed << " placements from " << placement_threads << " threads in " << place_s << " s: "
            << placements_per_s << "/s, p50 "
            << percentile(place_ms, 0.5) << " ms, p99 " << percentile(place_ms, 0.99) << " ms\n";

  // --- 3. Offer search over HTTP ---------------------------------------------------------
  const std::string kSearches[] = {
      "", "gpu_name=RTX_4090 num_gpus>=2", "gpu_ram>=80 price_hour<=40 reliability>=0.5",
      "num_gpus>=8 gpu_name=H100", "cpu_cores>=32 ram>=64", "gpu_name=A100,H100 num_gpus>=4 region=eu-central"};
  const std::string kSorts[] = {"", "-num_gpus", "gpu_price_hour,-reliability"};
  std::vector<double> search_ms;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < searches; ++i) {
    const std::string& q = kSearches[i % std::size(kSearches)];
    std::string target = *url + "/api/v1/offers?limit=100&q=";
    for (char c : q) {
      static const char* kHex = "0123456789ABCDEF";
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') target += c;
      else target += std::string{'%', kHex[(c >> 4) & 0xF], kHex[c & 0xF]};
    }
    const std::string& sort = kSorts[(i / std::size(kSearches)) % std::size(kSorts)];
    if (!sort.empty()) target += "&sort=" + sort;
    const auto one = Steady::now();
    auto r = net::http_request("GET", target, {}, {}, std::chrono::seconds{10});
    search_ms.push_back(ms_since(one));
    if (!r || r->status != 200) {
      std::cerr << "search " << target << ": " << (r ? r->body : r.error().message) << "\n";
      return 1;
    }
    if (i < std::size(kSearches)) {
      auto v = json::parse(r->body);
      std::cerr << "  '" << q << "': " << v.at("total").as_int64() << " offers match\n";
    }
    ++shown;
  }
  std::cerr << shown << " searches: p50 " << percentile(search_ms, 0.5) << " ms, p99 " << percentile(search_ms, 0.99)
            << " ms\n";
  node.stop();

  // --- 4. Rent to running on local Podman (kaisar dev), the image present ----------------
  json::object rent_figures;
  if (rent) {
    const std::string dev_dir = dir + "/dev";
    const std::map<std::string, std::string> env = {{"XDG_CONFIG_HOME", dir + "/config"},
                                                    {"XDG_DATA_HOME", dir + "/data"}};
    testing::ChildProcess dev({kaisar, "dev", "--data", dev_dir, "--listen", "127.0.0.1:0"}, env);
    const std::string onenode_url = dev.wait_for_line("listening on ", std::chrono::seconds{180}).value_or("");
    if (onenode_url.empty() || !dev.wait_for_line("Kaisar dev network is up.", std::chrono::seconds{180})) {
      std::cerr << "kaisar dev did not come up:\n" << dev.output() << "\n";
      return 1;
    }
    const std::vector<std::string> wallet = {"--onenode", onenode_url, "--wallet", dev_dir + "/wallets/renter.json",
                                             "--password-file", dev_dir + "/wallets/renter.password"};
    int status = 0;
    auto with = [&](std::vector<std::string> args) {
      args.insert(args.end(), wallet.begin(), wallet.end());
      return args;
    };
    run_cli(kaisar, with({"login"}), env, &status);
    if (status != 0) return 1;
    // The provider needs a moment to come online after the network is up.
    for (int i = 0; i < 100; ++i) {
      auto offers = net::http_request("GET", onenode_url + "/api/v1/offers", {}, {}, std::chrono::seconds{5});
      if (offers && offers->status == 200 && json::parse(offers->body).at("total").as_int64() > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    auto rent_once = [&]() -> std::optional<json::object> {
      const auto one = Steady::now();
      const std::string out = run_cli(kaisar, with({"rent", "--query", "cpu_cores>=1", "--image",
                                                    "localhost/kaisar/demo:latest", "--port", "8080", "--json"}),
                                      env, &status);
      const double total = ms_since(one) / 1000;
      if (status != 0) return std::nullopt;
      json::object lease = json::parse(out).as_object();
      lease["bench_total_s"] = total;
      int stop_status = 0;
      run_cli(kaisar, with({"lease", "stop", std::string(lease.at("id").as_string())}), env, &stop_status);
      return lease;
    };
    auto first = rent_once();  // imports the demo image into the engine
    std::vector<json::object> warm;
    for (int i = 0; i < 3 && first; ++i) {
      if (auto lease = rent_once()) warm.push_back(*lease);
    }
    if (!first || warm.empty()) {
      std::cerr << "renting failed\n" << dev.output() << "\n";
      return 1;
    }
    auto timing = [](const json::object& lease, const char* key) {
      return lease.at("timings").at(key).to_number<double>();
    };
    std::vector<double> to_running, chain;
    for (const auto& lease : warm) {
      to_running.push_back(timing(lease, "reserve_s") + timing(lease, "deploy_s"));
      chain.push_back(timing(lease, "pay_s"));
      std::cerr << "rent: reserve " << timing(lease, "reserve_s") << " s, pay + index " << timing(lease, "pay_s")
                << " s, deploy " << timing(lease, "deploy_s") << " s (all " << lease.at("bench_total_s").as_double()
                << " s)\n";
    }
    rent_figures["rent_to_running_s"] = percentile(to_running, 0.5);
    rent_figures["rent_chain_s"] = percentile(chain, 0.5);
    rent_figures["first_rent_to_running_s"] = timing(*first, "reserve_s") + timing(*first, "deploy_s");
    dev.stop(SIGTERM);
  }

  json::object result{{"providers", providers},
                      {"register_s", register_s},
                      {"placements", placed.load()},
                      {"placement_threads", placement_threads},
                      {"pick_ms", pick_ms},
                      {"placements_per_s", std::round(placements_per_s)},
                      {"placement_p50_ms", percentile(place_ms, 0.5)},
                      {"placement_p99_ms", percentile(place_ms, 0.99)},
                      {"searches", shown},
                      {"search_p50_ms", percentile(search_ms, 0.5)},
                      {"search_p99_ms", percentile(search_ms, 0.99)}};
  for (auto& [k, v] : rent_figures) result[k] = v;
  std::error_code ec;
  fs::remove_all(dir, ec);
  std::cout << json::serialize(result) << std::endl;
  return 0;
}
