#pragma once

#include <boost/json/object.hpp>

#include <condition_variable>
#include <atomic>
#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "provider/inventory.hpp"
#include "provider/runtime/docker.hpp"

namespace kaisar::provider {

// What leases may run and how they are fenced in (docs/providers.md, "Isolation").
struct LeasePolicy {
  // Images without a registry (localhost/…) that leases may run: the demo image in dev and
  // tests. Any other local image of the machine stays the operator's.
  std::set<std::string> local_images;
  // Refuse to deploy while the host firewall cannot be installed (fail closed). False only
  // on development machines where the agent is not root: leases there are not fenced in.
  bool require_firewall = true;
  std::int64_t pids_limit = runtime::kDefaultPidsLimit;
  std::uint64_t log_bytes = runtime::kDefaultLogBytes;
  std::uint64_t default_memory_bytes = 1ULL << 30;  // for a lease that names no memory
  // Public name servers: the host's own are often private, which leases cannot reach.
  std::vector<std::string> dns = {"1.1.1.1", "8.8.8.8"};
  // Hears what renters are not told (engine errors, firewall trouble), a line each.
  std::function<void(const std::string&)> log;
};

// The engine network and bridge of a lease: kaisar-<12 hex>, kz-<12 hex> (a hash of its id).
runtime::NetworkSpec lease_network(const std::string& lease_id);

// Runs leases' containers on this machine through the container engine, one job at a time
// on its own thread. Containers carry the label kaisar.lease=<id>, so a lease that is
// deployed again (after a reconnect) is adopted instead of started twice.
class Deployer {
 public:
  // `report` receives lease_status messages (called on the deployer's thread). `gpus` are
  // the machine's GPUs: a lease gets whole GPUs (of its gpu_model, when it names one) that
  // no other lease container holds (label kaisar.gpus), sampled through NVML for its usage.
  Deployer(std::string engine_socket, std::string demo_image_tar,
           std::function<void(const boost::json::object&)> report, std::vector<Gpu> gpus = {},
           LeasePolicy policy = {});
  ~Deployer();
  Deployer(const Deployer&) = delete;
  Deployer& operator=(const Deployer&) = delete;

  // A deploy message's "lease" object.
  void deploy(boost::json::object lease);
  // Removes the lease's containers.
  void stop(const std::string& lease_id);
  // Streams a lease container's output as "log" messages (then "log_end") for the
  // request; with `follow` until the container stops, logs_stop(request) or 10 minutes.
  void logs(const std::string& request_id, const std::string& lease_id, bool follow);
  void logs_stop(const std::string& request_id);

  // The images leases can use without pulling: the engine's and the demo image when its
  // tarball is at hand. Blocking (asks the engine); empty when the engine cannot be asked.
  std::optional<std::vector<std::string>> local_images() const;

  // Reports the usage of every lease container (lease_usage messages), unless a report is
  // still pending.
  void report_usage();
  // Removes every container labelled kaisar.lease whose lease is not in `live` (orphans
  // of leases that ended while the agent was away).
  void reconcile(std::vector<std::string> live);

  // The host port a running lease container publishes `port` on (the gateway's tunnel
  // reaches only these). Thread-safe, no engine call.
  std::optional<std::uint16_t> published(const std::string& lease_id, std::uint16_t port) const;

 private:
  void work();
  void run_one(const boost::json::object& lease);
  // `progress` hears what a pull is doing (at most about once a second).
  Result<void> ensure_image(const std::string& image, const std::function<void(const std::string&)>& progress);
  // Removes the lease's containers and its network.
  void remove_lease(const std::string& lease_id);
  // Logs `detail` for the operator and returns `what` for the renter.
  std::string keep_detail(const std::string& lease_id, const std::string& what, const Error& detail) const;

  // What log readers (detached threads) share with us; `alive` turns false when we go.
  struct Shared {
    std::mutex mutex;
    bool alive = true;
    std::function<void(const boost::json::object&)> report;
    std::map<std::string, std::shared_ptr<std::atomic<bool>>> cancels;
    std::size_t readers = 0;
  };
  std::shared_ptr<Shared> shared_;
  std::string engine_socket_;
  std::string demo_image_tar_;
  runtime::DockerClient engine_;
  std::function<void(const boost::json::object&)> report_;
  std::vector<Gpu> gpus_;
  LeasePolicy policy_;
  std::unique_ptr<GpuSampler> sampler_;  // only when the machine has GPUs
  mutable std::mutex published_mutex_;
  std::map<std::string, std::map<std::uint16_t, std::uint16_t>> published_;  // lease → port → host port
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<boost::json::object> jobs_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace kaisar::provider
