#pragma once

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
};

// Checks what the engine would take: image reference, env names, label keys, ports, name.
Result<void> validate(const ContainerSpec& spec);
// The Docker Engine API body for POST /containers/create.
std::string create_body(const ContainerSpec& spec);
// The same container for Podman's own POST /libpod/containers/create, used for containers
// with GPUs: Podman's Docker-compatible create ignores DeviceRequests and refuses CDI names
// in HostConfig.Devices (seen on 4.3), while its own endpoint resolves CDI devices.
std::string libpod_create_body(const ContainerSpec& spec);

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::string status;  // created, running, exited, …
  bool running = false;
  int exit_code = 0;
  std::map<std::string, std::string> labels;
  std::map<std::uint16_t, std::uint16_t> ports;  // container port → host port on 127.0.0.1
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
  // Pulls `image` (unless present), reporting progress lines; kNotFound when the registry
  // has no such image, kUnavailable when it cannot be reached.
  Result<void> pull(const std::string& image, const std::function<void(const PullProgress&)>& progress = {});
  // Imports a root filesystem tarball as `repo:tag` (how the offline demo image is made).
  Result<void> import_rootfs(ByteView tar, const std::string& repo, const std::string& tag);
  Result<void> remove_image(const std::string& image);

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
};

// Percent-encodes a query value.
std::string url_encode(std::string_view text);

}  // namespace kaisar::provider::runtime
