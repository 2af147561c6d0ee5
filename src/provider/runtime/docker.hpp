#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "provider/runtime/docker_stream.hpp"

namespace kaisar::provider::runtime {

// Every container runs with all capabilities dropped but these (no NET_RAW: no forged
// packets, no ARP or raw-socket tricks on the bridge), and no-new-privileges.
inline constexpr std::array<std::string_view, 11> kCapabilities = {
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE",
    "SYS_CHROOT", "AUDIT_WRITE"};
inline constexpr std::int64_t kDefaultPidsLimit = 1024;
inline constexpr std::uint64_t kDefaultLogBytes = 16ULL << 20;

// What a lease's container needs. Ports are published on 127.0.0.1 only, each on a free
// host port the engine picks (the gateway reaches them; nothing else can).
struct ContainerSpec {
  std::string name;   // optional; the engine names it otherwise
  std::string image;  // "localhost/kaisar/demo:latest", "docker.io/library/nginx:1.27"
  std::vector<std::string> command;  // empty: the image's default
  std::vector<std::pair<std::string, std::string>> env;
  std::map<std::string, std::string> labels;
  std::vector<std::uint16_t> ports;  // container TCP ports to publish
  std::uint64_t memory_bytes = 0;    // 0: no limit
  std::uint64_t nano_cpus = 0;       // 1e9 per CPU; 0: no limit
  // GPUs: empty for none. Docker gets a DeviceRequest for these device ids (or `gpu_count`
  // when no ids are given); Podman gets the CDI devices nvidia.com/gpu=<id>, which only its
  // own (libpod) create endpoint takes, so Podman needs ids.
  std::vector<std::string> gpu_ids;
  std::uint32_t gpu_count = 0;
  // The engine network to join (the lease's own); empty: the engine's default bridge.
  std::string network;
  std::int64_t pids_limit = kDefaultPidsLimit;  // processes and threads together
  std::uint64_t log_bytes = kDefaultLogBytes;   // the output the engine keeps
  // Quota on the container's writable layer (StorageOpt size); 0: none. Only some storage
  // drivers can (DockerClient::create drops it where the engine says it cannot).
  std::uint64_t disk_bytes = 0;
  // Name servers the container resolves with (the host's own may be private and unreachable).
  std::vector<std::string> dns;
};

// Checks what the engine would take: image reference, env names, label keys, ports, name.
Result<void> validate(const ContainerSpec& spec);
// The Docker Engine API body for POST /containers/create.
std::string create_body(const ContainerSpec& spec);
// The same container for Podman's own POST /libpod/containers/create, used for containers
// with GPUs: Podman's Docker-compatible create ignores DeviceRequests and refuses CDI names
// in HostConfig.Devices (seen on 4.3), while its own endpoint resolves CDI devices.
std::string libpod_create_body(const ContainerSpec& spec);

// A lease's own network: a bridge named `bridge` (the host firewall matches lease traffic
// by this name), no traffic between its containers, no engine DNS service on the host.
struct NetworkSpec {
  std::string name;
  std::string bridge;  // at most 15 characters (a Linux interface name)
  std::map<std::string, std::string> labels;
};
// The Docker Engine API body for POST /networks/create.
std::string network_create_body(const NetworkSpec& spec);
// Podman's own POST /libpod/networks/create: its compatible endpoint cannot name the bridge
// nor turn off its DNS service.
std::string libpod_network_create_body(const NetworkSpec& spec);

struct NetworkInfo {
  std::string name;
  std::map<std::string, std::string> labels;
};

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::string status;  // created, running, exited, …
  bool running = false;
  int exit_code = 0;
  std::map<std::string, std::string> labels;
  std::map<std::uint16_t, std::uint16_t> ports;  // container port → host port on 127.0.0.1
  std::vector<std::string> addresses;             // its IP address on each network
  std::vector<std::string> gateways;              // each network's gateway (the host's side)
};

struct ContainerStats {
  std::uint64_t cpu_total_ns = 0;  // CPU time used so far
  std::uint64_t memory_bytes = 0;
  std::uint64_t network_rx_bytes = 0;
  std::uint64_t network_tx_bytes = 0;
};

// A Docker Engine API client on a unix socket; works against Docker and against Podman's
// compatible service (`podman system service`). No docker CLI is involved.
class DockerClient {
 public:
  explicit DockerClient(std::string socket_path, std::chrono::milliseconds timeout = std::chrono::seconds{60})
      : socket_(std::move(socket_path)), timeout_(timeout) {}

  Result<void> ping();
  // "Docker Engine 27.1.1" or "Podman Engine 4.3.1".
  Result<std::string> engine();

  Result<bool> image_exists(const std::string& image);
  // The tags of the images the engine has ("localhost/kaisar/demo:latest", …).
  Result<std::vector<std::string>> image_tags();
  // Pulls `image` (unless present, or always with `refresh`), reporting progress lines;
  // kNotFound when the registry has no such image, kUnavailable when it cannot be reached.
  Result<void> pull(const std::string& image, bool refresh = false,
                    const std::function<void(const PullProgress&)>& progress = {});
  // Imports a root filesystem tarball as `repo:tag` (how the offline demo image is made).
  Result<void> import_rootfs(ByteView tar, const std::string& repo, const std::string& tag);
  Result<void> remove_image(const std::string& image);

  // Creates the network unless one of that name exists.
  Result<void> create_network(const NetworkSpec& spec);
  Result<void> remove_network(const std::string& name);  // gone is success
  // Networks carrying label `key` (with `value` when given).
  Result<std::vector<NetworkInfo>> networks(const std::string& key, const std::string& value = {});
  // Whether the storage driver can cap a container's writable layer (asked once).
  Result<bool> disk_quota();

  Result<std::string> create(const ContainerSpec& spec);
  Result<void> start(const std::string& id);
  Result<ContainerInfo> inspect(const std::string& id);
  Result<void> stop(const std::string& id, std::chrono::seconds grace = std::chrono::seconds{5});
  Result<void> remove(const std::string& id);  // forced; gone is success
  // Containers (running or not) carrying label `key` (with `value` when given).
  Result<std::vector<ContainerInfo>> list(const std::string& key, const std::string& value = {});
  Result<ContainerStats> stats(const std::string& id);
  // The output so far; `follow` keeps reading until `on_frame` returns false or the
  // container stops.
  Result<void> logs(const std::string& id, bool follow, const std::function<bool(const LogFrame&)>& on_frame,
                    std::optional<std::chrono::milliseconds> timeout = std::nullopt);

 private:
  Result<std::string> call(std::string_view method, const std::string& target, std::string_view body = {},
                           std::string_view content_type = "application/json");

  // Whether the engine is Podman (asked once, on the first create with GPUs).
  Result<bool> is_podman();

  std::string socket_;
  std::chrono::milliseconds timeout_;
  std::optional<bool> podman_;
  std::optional<bool> disk_quota_;
};

// Percent-encodes a query value.
std::string url_encode(std::string_view text);

}  // namespace kaisar::provider::runtime
