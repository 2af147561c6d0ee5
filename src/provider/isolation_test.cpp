// Tenant isolation on a provider, attacked with real containers: what a lease may run, and
// what it can reach (other leases, this host, private networks) through a real Podman
// service and the real nftables table the agent installs.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/image_reference.hpp"
#include "net/client.hpp"
#include "podman.hpp"
#include "process.hpp"
#include "provider/deployer.hpp"
#include "provider/firewall.hpp"
#include "provider/image_policy.hpp"

namespace kaisar::provider {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kDemo = "localhost/kaisar/demo:latest";

TEST(ImagePolicy, OnlyRegistryImagesAndListedLocalOnes) {
  const std::set<std::string> listed = {std::string(kDemo)};
  auto public_dns = [](const std::string&) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{"104.16.0.1"};
  };
  EXPECT_EQ(admit_image("nginx:1.27", listed, public_dns).value(), "docker.io/library/nginx:1.27");
  EXPECT_EQ(admit_image("ghcr.io/o/app@sha256:ab", listed, public_dns).value(), "ghcr.io/o/app@sha256:ab");
  EXPECT_EQ(admit_image("localhost/kaisar/demo", listed, public_dns).value(), kDemo);

  auto refused = [&](std::string_view image, std::string_view why, const HostResolver& resolve) {
    auto r = admit_image(image, listed, resolve);
    ASSERT_FALSE(r) << image;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  };
  // The operator's own images are not for rent.
  refused("localhost/kaisar/secret:1", "not offered for rent", public_dns);
  refused("localhost/private", "not offered for rent", public_dns);
  // Registries on this machine or its network, by literal or by name.
  refused("localhost:5000/x", "loopback or private", public_dns);
  refused("127.1:5000/x", "loopback or private", public_dns);
  refused("169.254.169.254/latest:1", "loopback or private", public_dns);
  auto internal_dns = [](const std::string&) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{"104.16.0.1", "10.0.0.7"};
  };
  refused("registry.corp.example/team/app:1", "loopback or private", internal_dns);
  auto no_dns = [](const std::string&) -> Result<std::vector<std::string>> {
    return fail(ErrorCode::kUnavailable, "cannot resolve");
  };
  refused("registry.nowhere.example/x:1", "cannot be found", no_dns);
  refused("bad image", "reference like", public_dns);
}

TEST(ImagePolicy, ANameThatResolvesToThisMachineIsRefused) {
  // This machine's own name, through the real resolver: a registry "at" it is refused even
  // though nothing in its spelling says loopback.
  char name[256] = {};
  ASSERT_EQ(::gethostname(name, sizeof name - 1), 0);
  auto addresses = resolve_host(name);
  ASSERT_TRUE(addresses) << addresses.error().message;
  bool internal = false;
  for (const auto& a : *addresses) internal = internal || internal_address(a);
  ASSERT_TRUE(internal) << "this test needs the host name to resolve to a loopback or private address";
  auto r = admit_image(std::string(name) + ":5000/team/app:1", {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("loopback or private"), std::string::npos) << r.error().message;
  for (const auto& a : *addresses) EXPECT_EQ(r.error().message.find(a), std::string::npos) << "leaks " << a;
}

TEST(Firewall, TheRulesetFencesLeaseBridges) {
  const std::string rules = firewall_ruleset();
  for (std::string_view range : kInternalIpv4) EXPECT_NE(rules.find(range), std::string::npos) << range;
  for (std::string_view range : kInternalIpv6) EXPECT_NE(rules.find(range), std::string::npos) << range;
  EXPECT_NE(rules.find("hook input"), std::string::npos);
  EXPECT_NE(rules.find("hook forward"), std::string::npos);
  EXPECT_NE(rules.find("iifname \"kz-*\" oifname \"kz-*\""), std::string::npos);
  // nft itself accepts it (a dry run: nothing changes).
  auto checked = testing::run_process({"nft", "-c", "-f", "-"}, rules);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

// An nft that exits before reading its program (a wrong binary, no permission) is an
// error, never a SIGPIPE that kills the agent: /bin/false exits at once, so in most of
// these rounds the write meets a pipe nobody reads.
TEST(Firewall, AProgramThatExitsWithoutReadingIsAnErrorNotASignal) {
  ::setenv("KAISAR_NFT", "/bin/false", 1);
  for (int round = 0; round < 20; ++round) {
    auto loaded = install_firewall();
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find("nft exited with 1"), std::string::npos) << loaded.error().message;
  }
  ::unsetenv("KAISAR_NFT");
}

// Reports of a Deployer, waited for by type and lease.
struct Reports {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<json::object> seen;
  std::vector<std::string> log;

  void add(const json::object& m) {
    std::lock_guard lock(mutex);
    seen.push_back(m);
    cv.notify_all();
  }
  void add_log(const std::string& line) {
    std::lock_guard lock(mutex);
    log.push_back(line);
  }
  std::string logged() {
    std::lock_guard lock(mutex);
    std::string out;
    for (const auto& l : log) out += l + "\n";
    return out;
  }
  // The outcome (not progress) of `lease`.
  std::optional<json::object> outcome(const std::string& lease, std::string_view state = {}) {
    std::unique_lock lock(mutex);
    std::optional<json::object> found;
    cv.wait_for(lock, seconds{120}, [&] {
      for (const auto& r : seen) {
        if (r.at("type").as_string() == "lease_status" && r.at("lease_id").as_string() == lease &&
            r.at("state").as_string() != "deploying" && (state.empty() || r.at("state").as_string() == state)) {
          found = r;
        }
      }
      return found.has_value();
    });
    return found;
  }
};

LeasePolicy demo_policy(Reports& reports) {
  LeasePolicy policy;
  policy.local_images = {std::string(kDemo)};
  policy.log = [&reports](const std::string& line) { reports.add_log(line); };
  return policy;
}

TEST(Deployer, RefusesImagesThatAreNotForRentBeforeTheEngine) {
  Reports reports;
  Deployer deployer("/nonexistent/engine.sock", "", [&](const json::object& m) { reports.add(m); }, {},
                    demo_policy(reports));
  deployer.deploy(json::object{{"id", "img-local"}, {"image", "localhost/kaisar/secret:1"}});
  deployer.deploy(json::object{{"id", "img-loopback"}, {"image", "127.0.0.1:5000/x:1"}});
  auto local = reports.outcome("img-local");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->at("state").as_string(), "failed");
  EXPECT_NE(local->at("reason").as_string().find("not offered for rent"), std::string::npos) << json::serialize(*local);
  auto loopback = reports.outcome("img-loopback");
  ASSERT_TRUE(loopback);
  EXPECT_NE(loopback->at("reason").as_string().find("loopback or private"), std::string::npos)
      << json::serialize(*loopback);
}

// A TCP server on every address of this host (loopback, LAN, the bridges' gateways) that
// counts the connections it accepts.
class HostService {
 public:
  HostService() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0) return;
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        if (stopping_) {
          ::close(c);
          return;
        }
        ++accepted_;
        ::close(c);
      }
    });
  }
  ~HostService() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// This host's address on its own network (not loopback, not a container bridge).
std::string lan_address() {
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return {};
  std::string found;
  for (ifaddrs* i = all; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const std::string name = i->ifa_name;
    if (name == "lo" || name.starts_with("kz-") || name.starts_with("cni") || name.starts_with("podman") ||
        name.starts_with("docker") || name.starts_with("veth")) {
      continue;
    }
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
    found = text;
  }
  ::freeifaddrs(all);
  return found;
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("isolation");
    podman_ = std::make_unique<testing::PodmanService>(dir_ + "/engine");
    ASSERT_TRUE(podman_->ok()) << podman_->output();
    engine_ = std::make_unique<runtime::DockerClient>(podman_->socket());
    demo_tar_ = testing::binary_dir() + "/images/demo.tar";
    ASSERT_TRUE(fs::exists(demo_tar_)) << "build the demo_image target";
  }
  void TearDown() override {
    deployer_.reset();
    podman_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Deployer& deployer() {
    if (!deployer_) {
      deployer_ = std::make_unique<Deployer>(podman_->socket(), demo_tar_,
                                             [this](const json::object& m) { reports_.add(m); }, std::vector<Gpu>{},
                                             demo_policy(reports_));
    }
    return *deployer_;
  }
  std::string logs_until(const std::string& lease, const std::string& marker) {
    std::string out;
    for (int i = 0; i < 600 && out.find(marker) == std::string::npos; ++i) {
      if (i > 0) std::this_thread::sleep_for(milliseconds{100});
      out.clear();
      auto containers = engine_->list("kaisar.lease", lease);
      if (!containers || containers->empty()) continue;
      (void)engine_->logs(containers->front().id, false, [&](const runtime::LogFrame& f) {
        out += f.data;
        return true;
      });
    }
    return out;
  }

  std::string dir_;
  std::string demo_tar_;
  std::unique_ptr<testing::PodmanService> podman_;
  std::unique_ptr<runtime::DockerClient> engine_;
  Reports reports_;
  std::unique_ptr<Deployer> deployer_;
};

TEST_F(IsolationTest, LeasesReachNeitherEachOtherNorTheHostNorPrivateNetworks) {
  // Ids of this run only: bridges are host-wide, and a crashed run may have left one.
  const std::string suffix = "-" + std::to_string(::getpid());
  const std::string lease_a = "iso-a" + suffix;
  const std::string lease_b = "iso-b" + suffix;
  HostService host;
  ASSERT_NE(host.port(), 0);
  const std::string lan = lan_address();
  ASSERT_FALSE(lan.empty());

  // Lease A: the demo image's HTTP and SSH servers.
  deployer().deploy(json::object{{"id", lease_a}, {"image", std::string(kDemo)}, {"cpus", 1}, {"memory_gb", 1},
                                 {"ports", json::array{8080, 22}}});
  auto a = reports_.outcome(lease_a);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->at("state").as_string(), "running") << json::serialize(*a) << reports_.logged();
  auto a_info = engine_->list("kaisar.lease", lease_a);
  ASSERT_TRUE(a_info && a_info->size() == 1);
  ASSERT_EQ(a_info->front().addresses.size(), 1U);
  const std::string a_ip = a_info->front().addresses.front();
  EXPECT_EQ(a_info->front().gateways.size(), 1U);

  // Lease B probes, from its own network, everything it must not reach, and one thing it
  // must (its own loopback server: the probe works).
  const std::string port = std::to_string(host.port());
  const std::string probe =
      "probe() { if nc -w 3 $1 $2 </dev/null >/dev/null 2>&1; then echo \"OPEN $3\"; else echo \"CLOSED $3\"; fi; }; "
      "httpd -p 127.0.0.1:9000 -h /tmp; "
      "gw=$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p'); echo gateway=$gw; "
      "probe 127.0.0.1 9000 own; probe " + a_ip + " 8080 lease-http; probe " + a_ip + " 22 lease-ssh; "
      "probe $gw " + port + " host-gateway; probe " + lan + " " + port + " host-lan; "
      "probe 169.254.169.254 80 metadata; echo probes-done; exec sleep 3600";
  deployer().deploy(json::object{{"id", lease_b}, {"image", std::string(kDemo)}, {"cpus", 1}, {"memory_gb", 1},
                                 {"command", json::array{"/bin/sh", "-c", probe}}});
  auto b = reports_.outcome(lease_b);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->at("state").as_string(), "running") << json::serialize(*b) << reports_.logged();
  const std::string out = logs_until(lease_b, "probes-done");
  ASSERT_NE(out.find("probes-done"), std::string::npos) << out;
  EXPECT_NE(out.find("OPEN own"), std::string::npos) << out;
  const std::size_t gateway = out.find("gateway=");
  ASSERT_NE(gateway, std::string::npos) << out;
  ASSERT_TRUE(std::isdigit(static_cast<unsigned char>(out[gateway + 8]))) << "no gateway address:\n" << out;
  for (const char* target : {"lease-http", "lease-ssh", "host-gateway", "host-lan", "metadata"}) {
    EXPECT_NE(out.find(std::string("CLOSED ") + target), std::string::npos) << target << " was reachable:\n" << out;
  }
  EXPECT_EQ(host.accepted(), 0) << "a lease reached a service of the host";

  // Lease A still answers on its published loopback port (the gateway's way in).
  std::uint16_t http_port = 0;
  for (const auto& e : a->at("endpoints").as_array()) {
    if (e.at("port").to_number<int>() == 8080) http_port = e.at("host_port").to_number<std::uint16_t>();
  }
  ASSERT_NE(http_port, 0);
  std::optional<net::ClientResponse> reply;
  for (int i = 0; i < 100 && !reply; ++i) {
    auto r = net::http_request("GET", "http://127.0.0.1:" + std::to_string(http_port) + "/", {}, {}, milliseconds{1000});
    if (r && r->status == 200) reply = *r;
    else std::this_thread::sleep_for(milliseconds{100});
  }
  ASSERT_TRUE(reply) << "lease A is not reachable on its published port";
  EXPECT_NE(reply->body.find("lease " + lease_a), std::string::npos) << reply->body;

  // Each lease has its own network, and it goes with the lease.
  ASSERT_EQ(engine_->networks("kaisar.lease", lease_a).value().size(), 1U);
  ASSERT_EQ(engine_->networks("kaisar.lease", lease_b).value().size(), 1U);
  deployer().stop(lease_a);
  ASSERT_TRUE(reports_.outcome(lease_a, "stopped"));
  EXPECT_TRUE(engine_->networks("kaisar.lease", lease_a).value().empty());
  EXPECT_TRUE(engine_->list("kaisar.lease", lease_a).value().empty());

  // An orphan (a lease that ended while the agent was away) loses its network too.
  deployer().reconcile({});
  bool gone = false;
  for (int i = 0; i < 600 && !gone; ++i) {
    std::this_thread::sleep_for(milliseconds{100});
    gone = engine_->networks("kaisar.lease").value().empty() && engine_->list("kaisar.lease").value().empty();
  }
  EXPECT_TRUE(gone) << "reconcile left lease networks or containers behind";
}

TEST_F(IsolationTest, NoFirewallNoLease) {
  // nft fails (as without CAP_NET_ADMIN): the lease is refused, nothing is created, and
  // the renter is not told the host's details.
  ::setenv("KAISAR_NFT", "/bin/false", 1);
  deployer().deploy(json::object{{"id", "iso-unfenced"}, {"image", std::string(kDemo)}, {"cpus", 1}, {"memory_gb", 1}});
  auto r = reports_.outcome("iso-unfenced");
  ::unsetenv("KAISAR_NFT");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("state").as_string(), "failed");
  EXPECT_EQ(r->at("reason").as_string(), "this provider cannot isolate leases right now");
  EXPECT_NE(reports_.logged().find("nft exited with 1"), std::string::npos) << reports_.logged();
  EXPECT_TRUE(engine_->list("kaisar.lease", "iso-unfenced").value().empty());
  EXPECT_TRUE(engine_->networks("kaisar.lease", "iso-unfenced").value().empty());
}

}  // namespace
}  // namespace kaisar::provider
