// The Docker Engine API client against a real, private Podman service, and its parsers of
// the engine's streams against hostile bytes.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "net/client.hpp"
#include "podman.hpp"
#include "provider/runtime/docker.hpp"
#include "provider/runtime/docker_stream.hpp"
#include "provider/runtime/unix_http.hpp"

namespace kaisar::provider::runtime {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

std::string frame(std::uint8_t stream, std::string_view payload) {
  std::string out{static_cast<char>(stream), 0, 0, 0};
  const auto n = static_cast<std::uint32_t>(payload.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  return out + std::string(payload);
}

// --- parsers --------------------------------------------------------------------------------

TEST(LogDemuxer, SplitsFramesArrivingInPieces) {
  const std::string stream = frame(1, "hello\n") + frame(2, "oops\n") + frame(1, "");
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{7}, stream.size()}) {
    LogDemuxer demux;
    std::vector<LogFrame> all;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      auto frames = demux.feed(std::string_view(stream).substr(at, piece));
      ASSERT_TRUE(frames) << frames.error().message;
      all.insert(all.end(), frames->begin(), frames->end());
    }
    ASSERT_EQ(all.size(), 3U) << piece;
    EXPECT_EQ(all[0].data, "hello\n");
    EXPECT_EQ(all[1].stream, LogFrame::Stream::kStderr);
    EXPECT_EQ(all[1].data, "oops\n");
    EXPECT_TRUE(demux.idle());
  }
}

TEST(LogDemuxer, HostileHeadersAreErrors) {
  LogDemuxer demux;
  EXPECT_FALSE(demux.feed(std::string("\x03\0\0\0\0\0\0\x01x", 9)));
  EXPECT_FALSE(demux.feed(frame(1, "after a bad header")));  // stays broken
  LogDemuxer reserved;
  EXPECT_FALSE(reserved.feed(std::string("\x01\x01\0\0\0\0\0\x01x", 9)));
  LogDemuxer small(16);
  auto big = small.feed(frame(1, std::string(17, 'x')));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);
  LogDemuxer text;
  EXPECT_FALSE(text.feed("plain text, not a multiplexed stream\n"));
}

TEST(PullProgress, ParsesLinesAndErrors) {
  PullProgressReader reader;
  auto lines = reader.feed(
      "{\"status\":\"Pulling fs layer\",\"id\":\"abc\"}\r\n{\"status\":\"Downloading\",\"progressDetail\":{\"current\":5,"
      "\"total\":10},\"id\":\"abc\"}\n{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\n{\"sta");
  ASSERT_TRUE(lines) << lines.error().message;
  ASSERT_EQ(lines->size(), 3U);
  EXPECT_EQ((*lines)[1].current, 5U);
  EXPECT_EQ((*lines)[1].total, 10U);
  EXPECT_EQ((*lines)[2].error, "manifest unknown");
  EXPECT_FALSE(reader.feed("tus\": \n"));  // the rest of that line is not JSON
  EXPECT_FALSE(parse_pull_progress("[]"));
}

TEST(ContainerSpec, BadSpecsAreRefusedBeforeTheEngine) {
  ContainerSpec good;
  good.image = "localhost/kaisar/demo:latest";
  good.env = {{"GREETING", "hi"}};
  good.ports = {8080, 22};
  EXPECT_TRUE(validate(good));
  auto bad = [&](auto mutate) {
    ContainerSpec s = good;
    mutate(s);
    auto r = validate(s);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  };
  bad([](ContainerSpec& s) { s.image = ""; });
  bad([](ContainerSpec& s) { s.image = "evil image; rm -rf /"; });
  bad([](ContainerSpec& s) { s.image = "../containers/x"; });  // it goes into API paths
  bad([](ContainerSpec& s) { s.image = "/etc"; });
  bad([](ContainerSpec& s) { s.env = {{"1BAD", "x"}}; });
  bad([](ContainerSpec& s) { s.env = {{"A=B", "x"}}; });
  bad([](ContainerSpec& s) { s.env = {{"OK", std::string("a\0b", 3)}}; });
  bad([](ContainerSpec& s) { s.ports = {0}; });
  bad([](ContainerSpec& s) { s.ports = {80, 80}; });
  bad([](ContainerSpec& s) { s.ports = std::vector<std::uint16_t>(33, 1); });
  bad([](ContainerSpec& s) { s.name = "-starts-with-dash"; });
  bad([](ContainerSpec& s) { s.memory_bytes = 1024; });
  bad([](ContainerSpec& s) { s.labels = {{"", "x"}}; });

  // Published ports bind to loopback only; GPUs become a device request.
  ContainerSpec gpu = good;
  gpu.gpu_count = 2;
  auto body = json::parse(create_body(gpu));
  const auto& bindings = body.at("HostConfig").at("PortBindings").at("8080/tcp").as_array();
  EXPECT_EQ(bindings.at(0).at("HostIp").as_string(), "127.0.0.1");
  EXPECT_EQ(body.at("HostConfig").at("DeviceRequests").at(0).at("Count").as_int64(), 2);

  // Given GPUs by id: Docker asks for exactly those; Podman's own body names CDI devices.
  gpu.gpu_ids = {"GPU-aaaa", "GPU-bbbb"};
  gpu.memory_bytes = 1ULL << 30;
  gpu.nano_cpus = 1500000000;
  body = json::parse(create_body(gpu));
  const auto& request = body.at("HostConfig").at("DeviceRequests").at(0);
  EXPECT_EQ(request.at("DeviceIDs"), (json::array{"GPU-aaaa", "GPU-bbbb"}));
  EXPECT_FALSE(request.as_object().contains("Count"));
  auto libpod = json::parse(libpod_create_body(gpu));
  EXPECT_EQ(libpod.at("devices"), (json::array{json::object{{"path", "nvidia.com/gpu=GPU-aaaa"}},
                                               json::object{{"path", "nvidia.com/gpu=GPU-bbbb"}}}));
  EXPECT_EQ(libpod.at("portmappings").at(0).at("host_ip").as_string(), "127.0.0.1");
  EXPECT_EQ(libpod.at("portmappings").at(0).at("container_port").as_int64(), 8080);
  EXPECT_FALSE(libpod.at("portmappings").at(0).as_object().contains("host_port"));
  EXPECT_EQ(libpod.at("resource_limits").at("memory").at("limit").to_number<std::uint64_t>(), 1ULL << 30);
  EXPECT_EQ(libpod.at("resource_limits").at("cpu").at("quota").to_number<std::uint64_t>(), 150000U);
  EXPECT_EQ(libpod.at("resource_limits").at("cpu").at("period").to_number<std::uint64_t>(), 100000U);
}

TEST(DockerClient, NoEngineIsUnavailable) {
  DockerClient client("/nonexistent/kaisar/podman.sock", milliseconds{2000});
  auto r = client.ping();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

// --- against Podman ---------------------------------------------------------------------------

class PodmanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(kaisar::testing::make_temp_dir("podman"));
    service_ = new kaisar::testing::PodmanService(*dir_ + "/engine");
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(service_->ok()) << "podman system service did not start:\n" << service_->output();
    client_ = std::make_unique<DockerClient>(service_->socket());
    auto present = client_->image_exists("localhost/kaisar/httpd:test");
    ASSERT_TRUE(present) << present.error().message;
    if (!*present) {
      const std::string tar_path = kaisar::testing::static_httpd_rootfs(*dir_);
      ASSERT_FALSE(tar_path.empty());
      std::ifstream in(tar_path, std::ios::binary);
      std::stringstream bytes;
      bytes << in.rdbuf();
      const std::string tar = bytes.str();
      auto imported = client_->import_rootfs(as_bytes(tar), "localhost/kaisar/httpd", "test");
      ASSERT_TRUE(imported) << imported.error().message;
    }
  }
  ContainerSpec httpd(const std::string& lease) {
    ContainerSpec s;
    s.image = "localhost/kaisar/httpd:test";
    s.command = {"/httpd"};
    s.env = {{"GREETING", "lease " + lease}};
    s.labels = {{"kaisar.lease", lease}};
    s.ports = {8080};
    s.memory_bytes = 64 << 20;
    s.nano_cpus = 500000000;
    return s;
  }

  static std::string* dir_;
  static kaisar::testing::PodmanService* service_;
  std::unique_ptr<DockerClient> client_;
};

std::string* PodmanTest::dir_ = nullptr;
kaisar::testing::PodmanService* PodmanTest::service_ = nullptr;

TEST_F(PodmanTest, EngineAnswers) {
  ASSERT_TRUE(client_->ping());
  auto engine = client_->engine();
  ASSERT_TRUE(engine) << engine.error().message;
  EXPECT_NE(engine->find("Podman"), std::string::npos) << *engine;
}

TEST_F(PodmanTest, ContainerLifecycle) {
  auto id = client_->create(httpd("lease-a"));
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(client_->start(*id));
  auto info = client_->inspect(*id);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->labels.at("kaisar.lease"), "lease-a");
  ASSERT_EQ(info->ports.count(8080), 1U) << "port 8080 not published";
  const std::string url = "http://127.0.0.1:" + std::to_string(info->ports.at(8080)) + "/hi";

  // The container's server answers on the published loopback port.
  std::optional<net::ClientResponse> reply;
  for (int i = 0; i < 100 && !reply; ++i) {
    auto r = net::http_request("GET", url, {}, {}, milliseconds{1000});
    if (r) reply = *r;
    else std::this_thread::sleep_for(milliseconds{50});
  }
  ASSERT_TRUE(reply) << "no answer from " << url;
  EXPECT_EQ(reply->body, "hello from kaisar lease lease-a\n");

  // Its output, demultiplexed. The container printed the request line before answering,
  // but conmon copies it into the log file on its own time, so read until it is there.
  std::string out;
  for (int i = 0; i < 100 && out.find("request: GET /hi") == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(milliseconds{50});
    out.clear();
    ASSERT_TRUE(client_->logs(*id, false, [&](const LogFrame& f) {
      out += f.data;
      return true;
    }));
  }
  EXPECT_NE(out.find("listening on 8080"), std::string::npos) << out;
  EXPECT_NE(out.find("request: GET /hi"), std::string::npos) << out;

  auto stats = client_->stats(*id);
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_GT(stats->memory_bytes, 0U);

  auto listed = client_->list("kaisar.lease", "lease-a");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ(listed->front().id, *id);
  EXPECT_TRUE(client_->list("kaisar.lease", "someone-else").value().empty());

  ASSERT_TRUE(client_->stop(*id, std::chrono::seconds{2}));
  EXPECT_FALSE(client_->inspect(*id).value().running);
  ASSERT_TRUE(client_->stop(*id));  // stopping a stopped container is fine
  ASSERT_TRUE(client_->remove(*id));
  EXPECT_EQ(client_->inspect(*id).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(client_->remove(*id));  // removing twice is fine
  EXPECT_TRUE(client_->list("kaisar.lease", "lease-a").value().empty());
}

TEST_F(PodmanTest, GpusGoToPodmanAsCdiDevices) {
  // Podman's own create endpoint takes the GPU as a CDI device; this machine has no CDI
  // specification for it, so Podman names the device it could not resolve.
  ContainerSpec spec = httpd("lease-gpu");
  spec.gpu_ids = {"GPU-00000000-0000-0000-0000-000000000000"};
  auto id = client_->create(spec);
  ASSERT_TRUE(id) << id.error().message;  // Podman resolves CDI devices when it starts
  auto info = client_->inspect(*id);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->labels.at("kaisar.lease"), "lease-gpu");
  auto started = client_->start(*id);
  ASSERT_FALSE(started) << "a fake GPU was attached";
  EXPECT_NE(started.error().message.find("nvidia.com/gpu=GPU-00000000-0000-0000-0000-000000000000"), std::string::npos)
      << started.error().message;
  ASSERT_TRUE(client_->remove(*id));
  // Without ids Podman cannot be told which GPUs: refused before anything is sent.
  spec.gpu_ids.clear();
  spec.gpu_count = 1;
  id = client_->create(spec);
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(client_->list("kaisar.lease", "lease-gpu").value().empty());
}

TEST_F(PodmanTest, FollowedLogsStreamUntilStopped) {
  auto id = client_->create(httpd("lease-follow"));
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(client_->start(*id));
  std::string seen;
  auto r = client_->logs(
      *id, true,
      [&](const LogFrame& f) {
        seen += f.data;
        return seen.find("listening") == std::string::npos;  // stop once the first line came
      },
      milliseconds{20000});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(seen.find("listening on 8080"), std::string::npos);
  ASSERT_TRUE(client_->remove(*id));
}
TEST(ContainerSpec, EveryContainerIsHardenedAndCapped) {
  ContainerSpec spec;
  spec.image = "docker.io/library/nginx:1.27";
  spec.memory_bytes = 1ULL << 30;
  spec.pids_limit = 256;
  spec.log_bytes = 8ULL << 20;
  spec.disk_bytes = 10ULL << 30;
  spec.network = "kaisar-0123456789ab";
  spec.dns = {"1.1.1.1"};
  ASSERT_TRUE(validate(spec));
  const json::array expected_caps = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                                     "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE"};

  // Docker's body.
  auto host = json::parse(create_body(spec)).at("HostConfig").as_object();
  EXPECT_EQ(host.at("CapDrop"), (json::array{"ALL"}));
  EXPECT_EQ(host.at("CapAdd"), expected_caps);
  EXPECT_EQ(host.at("SecurityOpt"), (json::array{"no-new-privileges"}));
  EXPECT_EQ(host.at("PidsLimit").as_int64(), 256);
  EXPECT_EQ(host.at("Memory").to_number<std::uint64_t>(), 1ULL << 30);
  EXPECT_EQ(host.at("MemorySwap").to_number<std::uint64_t>(), 1ULL << 30);
  EXPECT_EQ(host.at("LogConfig").at("Type").as_string(), "json-file");
  EXPECT_EQ(host.at("LogConfig").at("Config").at("max-size").as_string(), std::to_string(4ULL << 20));
  EXPECT_EQ(host.at("StorageOpt").at("size").as_string(), std::to_string(10ULL << 30));
  EXPECT_EQ(host.at("NetworkMode").as_string(), "kaisar-0123456789ab");
  EXPECT_EQ(host.at("Dns"), (json::array{"1.1.1.1"}));

  // Podman's own body says the same in its words.
  auto libpod = json::parse(libpod_create_body(spec)).as_object();
  EXPECT_EQ(libpod.at("cap_drop"), (json::array{"ALL"}));
  EXPECT_EQ(libpod.at("cap_add"), expected_caps);
  EXPECT_TRUE(libpod.at("no_new_privileges").as_bool());
  EXPECT_EQ(libpod.at("resource_limits").at("pids").at("limit").as_int64(), 256);
  EXPECT_EQ(libpod.at("log_configuration").at("size").to_number<std::uint64_t>(), 8ULL << 20);
  EXPECT_EQ(libpod.at("storage_opts").at("size").as_string(), std::to_string(10ULL << 30));
  EXPECT_EQ(libpod.at("netns").at("nsmode").as_string(), "bridge");
  EXPECT_TRUE(libpod.at("Networks").as_object().contains("kaisar-0123456789ab"));
  EXPECT_EQ(libpod.at("dns_server"), (json::array{"1.1.1.1"}));

  for (auto mutate : std::initializer_list<void (*)(ContainerSpec&)>{
           [](ContainerSpec& s) { s.pids_limit = 0; }, [](ContainerSpec& s) { s.pids_limit = -1; },
           [](ContainerSpec& s) { s.network = "../x"; }, [](ContainerSpec& s) { s.dns = {"resolver.example"}; },
           [](ContainerSpec& s) { s.dns = {"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"}; }}) {
    ContainerSpec bad = spec;
    mutate(bad);
    EXPECT_FALSE(validate(bad));
  }
}

TEST(NetworkSpec, LeaseNetworksHaveNoInterContainerTrafficAndANamedBridge) {
  const NetworkSpec spec{"kaisar-0123456789ab", "kz-0123456789ab", {{"kaisar.lease", "L1"}}};
  auto docker = json::parse(network_create_body(spec)).as_object();
  EXPECT_EQ(docker.at("Name").as_string(), "kaisar-0123456789ab");
  EXPECT_EQ(docker.at("Driver").as_string(), "bridge");
  EXPECT_FALSE(docker.at("Internal").as_bool());  // the public internet stays reachable
  EXPECT_FALSE(docker.at("EnableIPv6").as_bool());
  EXPECT_EQ(docker.at("Options").at("com.docker.network.bridge.enable_icc").as_string(), "false");
  EXPECT_EQ(docker.at("Options").at("com.docker.network.bridge.name").as_string(), "kz-0123456789ab");
  EXPECT_EQ(docker.at("Labels").at("kaisar.lease").as_string(), "L1");
  auto libpod = json::parse(libpod_network_create_body(spec)).as_object();
  EXPECT_EQ(libpod.at("network_interface").as_string(), "kz-0123456789ab");
  EXPECT_FALSE(libpod.at("dns_enabled").as_bool());
  EXPECT_FALSE(libpod.at("internal").as_bool());
  EXPECT_EQ(libpod.at("labels").at("kaisar.lease").as_string(), "L1");
}

// The demo image (built offline from Debian packages): HTTP on 8080 and SSH on 22 for the
// lease's key, reached with curl's peer (our client) and the real OpenSSH client.
TEST_F(PodmanTest, DemoImageServesHttpAndSshWithTheLeaseKey) {
  const std::string tar_path = kaisar::testing::binary_dir() + "/images/demo.tar";
  ASSERT_TRUE(std::filesystem::exists(tar_path)) << "build the demo_image target";
  std::ifstream in(tar_path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  const std::string tar = bytes.str();
  ASSERT_TRUE(client_->import_rootfs(as_bytes(tar), "localhost/kaisar/demo", "latest"));

  const std::string key = *dir_ + "/renter_key";
  const std::string other_key = *dir_ + "/other_key";
  for (const auto& k : {key, other_key}) {
    std::filesystem::remove(k);
    auto gen = kaisar::testing::run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
  }
  std::ifstream pub_in(key + ".pub");
  std::string pub;
  std::getline(pub_in, pub);

  ContainerSpec spec;
  spec.image = "localhost/kaisar/demo:latest";
  spec.command = {"/init.sh"};
  spec.env = {{"SSH_PUBLIC_KEY", pub}, {"KAISAR_LEASE", "demo-1"}};
  spec.labels = {{"kaisar.lease", "demo-1"}};
  spec.ports = {8080, 22};
  spec.memory_bytes = 128 << 20;
  auto id = client_->create(spec);
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(client_->start(*id));
  auto info = client_->inspect(*id);
  ASSERT_TRUE(info && info->ports.count(8080) && info->ports.count(22));

  std::optional<net::ClientResponse> reply;
  for (int i = 0; i < 100 && !reply; ++i) {
    auto r = net::http_request("GET", "http://127.0.0.1:" + std::to_string(info->ports.at(8080)) + "/", {}, {},
                               milliseconds{1000});
    if (r && r->status == 200) reply = *r;
    else std::this_thread::sleep_for(milliseconds{50});
  }
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "hello from a Kaisar container (lease demo-1)\n");

  auto ssh = [&](const std::string& identity) {
    return kaisar::testing::run_process(
        {"ssh", "-i", identity, "-p", std::to_string(info->ports.at(22)), "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
         "root@127.0.0.1", "echo ssh-ok; id -u"},
        {}, {}, std::chrono::seconds{30});
  };
  kaisar::testing::RunResult in_ok;
  for (int i = 0; i < 50; ++i) {  // dropbear starts beside the HTTP server
    in_ok = ssh(key);
    if (in_ok.exit_code == 0) break;
    std::this_thread::sleep_for(milliseconds{100});
  }
  EXPECT_EQ(in_ok.exit_code, 0) << in_ok.err;
  EXPECT_EQ(in_ok.out, "ssh-ok\n0\n");
  auto refused = ssh(other_key);
  EXPECT_NE(refused.exit_code, 0) << "a key that is not the lease's must not get in";
  ASSERT_TRUE(client_->remove(*id));
}

// What the engine really applies: CapEff is exactly the list (no NET_RAW), no new
// privileges, and a fork bomb stops at the PID limit.
TEST_F(PodmanTest, ContainersRunWithFewCapabilitiesAndAPidLimit) {
  const std::string tar_path = kaisar::testing::binary_dir() + "/images/demo.tar";
  std::ifstream in(tar_path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  const std::string tar = bytes.str();
  ASSERT_TRUE(client_->import_rootfs(as_bytes(tar), "localhost/kaisar/demo", "latest"));
  ContainerSpec spec;
  spec.image = "localhost/kaisar/demo:latest";
  spec.labels = {{"kaisar.lease", "caps"}};
  spec.memory_bytes = 128 << 20;
  spec.pids_limit = 32;
  // The bomb runs in a child shell (a shell that cannot fork gives up); builtins only after
  // it: with every PID taken, nothing else can start.
  spec.command = {"/bin/sh", "-c",
                  "grep -E 'CapEff|NoNewPrivs' /proc/self/status; sh -c 'i=0; while [ $i -lt 100 ]; do sleep 300 & "
                  "i=$((i+1)); done'; read max < /sys/fs/cgroup/pids.max || read max < /sys/fs/cgroup/pids/pids.max; "
                  "echo pids.max=$max; echo bomb-done"};
  auto id = client_->create(spec);
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(client_->start(*id));
  std::string out;
  for (int i = 0; i < 300 && out.find("bomb-done") == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(milliseconds{100});
    out.clear();
    ASSERT_TRUE(client_->logs(*id, false, [&](const LogFrame& f) {
      out += f.data;
      return true;
    }));
  }
  ASSERT_NE(out.find("bomb-done"), std::string::npos) << out;
  // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT AUDIT_WRITE
  EXPECT_NE(out.find("CapEff:\t00000000200405fb"), std::string::npos) << out;
  EXPECT_NE(out.find("NoNewPrivs:\t1"), std::string::npos) << out;
  EXPECT_NE(out.find("can't fork"), std::string::npos) << "100 processes started under a limit of 32:\n" << out;
  EXPECT_NE(out.find("pids.max=32"), std::string::npos) << out;
  ASSERT_TRUE(client_->remove(*id));
}

TEST_F(PodmanTest, LeaseNetworksComeAndGo) {
  const NetworkSpec spec{"kaisar-test0netwrk", "kz-test0netwrk", {{"kaisar.lease", "net-1"}}};
  ASSERT_TRUE(client_->create_network(spec));
  ASSERT_TRUE(client_->create_network(spec));  // again: already there is fine
  auto listed = client_->networks("kaisar.lease", "net-1");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ(listed->front().name, "kaisar-test0netwrk");
  ContainerSpec s = httpd("net-1");
  s.network = spec.name;
  auto id = client_->create(s);
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(client_->start(*id));
  auto info = client_->inspect(*id);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_EQ(info->addresses.size(), 1U);
  ASSERT_EQ(info->gateways.size(), 1U);
  EXPECT_EQ(info->ports.count(8080), 1U);
  ASSERT_TRUE(client_->remove(*id));
  ASSERT_TRUE(client_->remove_network(spec.name));
  ASSERT_TRUE(client_->remove_network(spec.name));  // gone is fine
  EXPECT_TRUE(client_->networks("kaisar.lease", "net-1").value().empty());
}

// Podman's own create body (used for GPU containers) is hardened the same way and joins the
// lease network: sent as is to Podman, then inspected through the compatible API.
TEST_F(PodmanTest, PodmansOwnCreateBodyIsHardenedToo) {
  const NetworkSpec network{"kaisar-test1libpod", "kz-test1libpod", {{"kaisar.lease", "libpod-1"}}};
  ASSERT_TRUE(client_->create_network(network));
  ContainerSpec spec = httpd("libpod-1");
  spec.network = network.name;
  spec.pids_limit = 48;
  auto created = unix_request(service_->socket(), "POST", "/v4.0.0/libpod/containers/create", libpod_create_body(spec));
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string id(json::parse(created->body).at("Id").as_string());
  ASSERT_TRUE(client_->start(id));
  auto info = client_->inspect(id);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->addresses.size(), 1U);
  EXPECT_EQ(info->ports.count(8080), 1U);
  auto raw = unix_request(service_->socket(), "GET", "/containers/" + id + "/json");
  ASSERT_TRUE(raw && raw->status == 200);
  const auto host = json::parse(raw->body).at("HostConfig");
  EXPECT_EQ(host.at("PidsLimit").as_int64(), 48);
  const std::string dropped = json::serialize(host.at("CapDrop"));
  EXPECT_NE(dropped.find("NET_RAW"), std::string::npos) << dropped;
  EXPECT_TRUE(json::parse(raw->body).at("NetworkSettings").at("Networks").as_object().contains(network.name));
  ASSERT_TRUE(client_->remove(id));
  ASSERT_TRUE(client_->remove_network(network.name));
}

TEST_F(PodmanTest, EngineErrorsAreClear) {
  EXPECT_EQ(client_->inspect("no-such-container").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(client_->start("no-such-container").error().code, ErrorCode::kNotFound);
  ContainerSpec missing = httpd("x");
  missing.image = "localhost/kaisar/not-there:1";
  auto created = client_->create(missing);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, ErrorCode::kNotFound) << created.error().message;
  // No registry is reachable from the test machine: a pull fails cleanly.
  auto pulled = client_->pull("localhost:1/kaisar/nothing:1");
  ASSERT_FALSE(pulled);
  EXPECT_NE(pulled.error().message.find("pulling"), std::string::npos) << pulled.error().message;
  // A name taken twice is a conflict.
  ContainerSpec named = httpd("dup");
  named.name = "kaisar-dup-test";
  auto first = client_->create(named);
  ASSERT_TRUE(first) << first.error().message;
  auto second = client_->create(named);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict) << second.error().message;
  ASSERT_TRUE(client_->remove(*first));
}

}  // namespace
}  // namespace kaisar::provider::runtime
