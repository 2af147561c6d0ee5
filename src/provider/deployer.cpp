#include "provider/deployer.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/image_reference.hpp"
#include "crypto/keccak.hpp"
#include "provider/firewall.hpp"
#include "provider/image_policy.hpp"

namespace kaisar::provider {

namespace json = boost::json;

namespace {

constexpr std::string_view kDemoImage = "localhost/kaisar/demo:latest";

std::string text(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

std::uint64_t number(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v != nullptr && v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  if (v != nullptr && v->is_uint64()) return v->get_uint64();
  return 0;
}

// "GPU-a,GPU-b" (a container's kaisar.gpus label) → its ids.
std::vector<std::string> split_ids(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

json::object status(const std::string& id, std::string_view state, const std::string& reason) {
  return json::object{{"type", "lease_status"}, {"lease_id", id}, {"state", state}, {"reason", reason}};
}

}  // namespace

runtime::NetworkSpec lease_network(const std::string& lease_id) {
  const std::string hash = to_hex(crypto::sha256(as_bytes(lease_id)), false).substr(0, 12);
  return runtime::NetworkSpec{"kaisar-" + hash, std::string(kLeaseBridgePrefix) + hash, {{"kaisar.lease", lease_id}}};
}

Deployer::Deployer(std::string engine_socket, std::string demo_image_tar,
                   std::function<void(const json::object&)> report, std::vector<Gpu> gpus, LeasePolicy policy)
    : shared_(std::make_shared<Shared>()),
      engine_socket_(engine_socket),
      demo_image_tar_(std::move(demo_image_tar)),
      engine_(std::move(engine_socket)),
      report_(std::move(report)),
      gpus_(std::move(gpus)),
      policy_(std::move(policy)) {
  shared_->report = report_;
  if (!gpus_.empty()) sampler_ = std::make_unique<GpuSampler>(nvml_library());
  worker_ = std::thread([this] { work(); });
}

Deployer::~Deployer() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->alive = false;
    for (auto& [id, cancel] : shared_->cancels) cancel->store(true);
  }
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Deployer::deploy(json::object lease) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(lease));
  }
  cv_.notify_all();
}

void Deployer::stop(const std::string& lease_id) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(json::object{{"stop", lease_id}});
  }
  cv_.notify_all();
}

std::optional<std::uint16_t> Deployer::published(const std::string& lease_id, std::uint16_t port) const {
  std::lock_guard lock(published_mutex_);
  auto lease = published_.find(lease_id);
  if (lease == published_.end()) return std::nullopt;
  auto it = lease->second.find(port);
  if (it == lease->second.end()) return std::nullopt;
  return it->second;
}

void Deployer::reconcile(std::vector<std::string> live) {
  json::array ids;
  for (auto& id : live) ids.push_back(json::value(std::move(id)));
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(json::object{{"reconcile", std::move(ids)}});
  }
  cv_.notify_all();
}

void Deployer::logs(const std::string& request_id, const std::string& lease_id, bool follow) {
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->readers >= 16 || request_id.empty() || request_id.size() > 64 || lease_id.size() > 64) return;
    shared_->cancels[request_id] = cancel;
    ++shared_->readers;
  }
  // A thread per reader: a followed log can wait long for its next line.
  std::thread([shared = shared_, socket = engine_socket_, request_id, lease_id, follow, cancel] {
    auto send = [&](const json::object& message) {
      std::lock_guard lock(shared->mutex);
      if (shared->alive) shared->report(message);
    };
    runtime::DockerClient engine(socket, std::chrono::seconds{30});
    auto containers = engine.list("kaisar.lease", lease_id);
    if (containers && !containers->empty()) {
      (void)engine.logs(
          containers->front().id, follow,
          [&](const runtime::LogFrame& frame) {
            if (cancel->load()) return false;
            std::string text = frame.data;
            for (char& c : text) {  // JSON text: keep it printable ASCII, tabs and newlines
              const auto u = static_cast<unsigned char>(c);
              if (u >= 0x80 || (u < 0x20 && c != '\n' && c != '\t')) c = '?';
            }
            send(json::object{{"type", "log"},
                              {"request_id", request_id},
                              {"stream", frame.stream == runtime::LogFrame::Stream::kStderr ? "stderr" : "stdout"},
                              {"data", text}});
            return true;
          },
          std::chrono::minutes{10});
    }
    send(json::object{{"type", "log_end"}, {"request_id", request_id}});
    std::lock_guard lock(shared->mutex);
    shared->cancels.erase(request_id);
    --shared->readers;
  }).detach();
}

void Deployer::logs_stop(const std::string& request_id) {
  std::lock_guard lock(shared_->mutex);
  if (auto it = shared_->cancels.find(request_id); it != shared_->cancels.end()) it->second->store(true);
}

std::optional<std::vector<std::string>> Deployer::local_images() const {
  runtime::DockerClient engine(engine_socket_, std::chrono::seconds{10});
  auto tags = engine.image_tags();
  if (!tags) return std::nullopt;
  // The machine's other local images are the operator's, not for rent: not named either.
  std::erase_if(*tags, [&](const std::string& tag) {
    return tag.starts_with("localhost/") && !policy_.local_images.contains(tag);
  });
  if (!demo_image_tar_.empty() && policy_.local_images.contains(std::string(kDemoImage)) &&
      std::ifstream(demo_image_tar_).good() &&
      std::find(tags->begin(), tags->end(), std::string(kDemoImage)) == tags->end()) {
    tags->emplace_back(kDemoImage);
  }
  return *tags;
}

void Deployer::report_usage() {
  {
    std::lock_guard lock(mutex_);
    for (const auto& job : jobs_) {
      if (job.contains("usage")) return;  // one at a time
    }
    jobs_.push_back(json::object{{"usage", true}});
  }
  cv_.notify_all();
}

void Deployer::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    json::object job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    run_one(job);
    lock.lock();
  }
}

Result<void> Deployer::ensure_image(const std::string& image, const std::function<void(const std::string&)>& progress) {
  const bool local = image.starts_with("localhost/");
  // A registry image is pulled every time (a manifest check when it is current), so an image
  // the operator built under a registry's name is never what a lease gets.
  if (local) {
    auto present = engine_.image_exists(image);
    if (!present) return std::unexpected(present.error());
    if (*present) return {};
  }
  // The demo image is made locally (no registry): import it from the tarball.
  if (image == kDemoImage && !demo_image_tar_.empty()) {
    std::ifstream in(demo_image_tar_, std::ios::binary);
    if (!in) return fail(ErrorCode::kNotFound, "demo image tarball " + demo_image_tar_ + " is missing");
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string tar = bytes.str();
    return engine_.import_rootfs(as_bytes(tar), "localhost/kaisar/demo", "latest");
  }
  if (local) return fail(ErrorCode::kNotFound, "the provider does not have the image " + image);
  progress("pulling the image " + image);
  auto last = std::chrono::steady_clock::now();
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> layers;  // id → (current, total)
  return engine_.pull(image, true, [&](const runtime::PullProgress& p) {
    if (!p.id.empty() && p.total && *p.total > 0) layers[p.id] = {p.current.value_or(0), *p.total};
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds{1}) return;
    last = now;
    std::uint64_t current = 0;
    std::uint64_t total = 0;
    for (const auto& [id, ct] : layers) {
      current += std::min(ct.first, ct.second);
      total += ct.second;
    }
    progress("pulling the image " + image +
             (total > 0 ? ": " + std::to_string(current >> 20) + " of " + std::to_string(total >> 20) + " MiB"
                        : ": " + p.status));
  });
}

void Deployer::run_one(const json::object& lease) {
  if (lease.contains("usage")) {
    auto all = engine_.list("kaisar.lease");
    if (!all) return;
    for (const auto& c : *all) {
      if (!c.running) continue;
      auto label = c.labels.find("kaisar.lease");
      auto stats = engine_.stats(c.id);
      if (label == c.labels.end() || !stats) continue;
      json::object usage{{"type", "lease_usage"},
                         {"lease_id", label->second},
                         {"cpu_ns", stats->cpu_total_ns},
                         {"memory_bytes", stats->memory_bytes},
                         {"network_rx_bytes", stats->network_rx_bytes},
                         {"network_tx_bytes", stats->network_tx_bytes}};
      if (auto held = c.labels.find("kaisar.gpus"); held != c.labels.end() && sampler_) {
        json::array gpus;
        for (const auto& uuid : split_ids(held->second)) {
          if (auto g = sampler_->sample(uuid)) {
            gpus.push_back(json::object{{"uuid", g->uuid},
                                        {"utilization_percent", g->utilization_percent},
                                        {"memory_used_bytes", g->memory_used_bytes}});
          }
        }
        usage["gpus"] = std::move(gpus);
      }
      report_(usage);
    }
    return;
  }
  if (const json::value* live = lease.if_contains("reconcile"); live != nullptr && live->is_array()) {
    std::set<std::string> keep;
    for (const auto& id : live->get_array()) {
      if (id.is_string()) keep.insert(std::string(id.get_string()));
    }
    if (auto all = engine_.list("kaisar.lease")) {
      for (const auto& c : *all) {
        auto label = c.labels.find("kaisar.lease");
        if (label != c.labels.end() && !keep.contains(label->second)) (void)engine_.remove(c.id);
      }
    }
    if (auto networks = engine_.networks("kaisar.lease")) {
      for (const auto& n : *networks) {
        if (!keep.contains(n.labels.at("kaisar.lease"))) (void)engine_.remove_network(n.name);
      }
    }
    std::lock_guard lock(published_mutex_);
    std::erase_if(published_, [&](const auto& entry) { return !keep.contains(entry.first); });
    return;
  }
  if (const std::string stop_id = text(lease, "stop"); !stop_id.empty()) {
    remove_lease(stop_id);
    {
      std::lock_guard lock(published_mutex_);
      published_.erase(stop_id);
    }
    report_(status(stop_id, "stopped", "container removed"));
    return;
  }
  const std::string id = text(lease, "id");
  if (id.empty() || id.size() > 64) return;
  auto report_running = [&](const runtime::ContainerInfo& info) {
    json::array endpoints;
    for (const auto& [port, host_port] : info.ports) endpoints.push_back(json::object{{"port", port}, {"host_port", host_port}});
    {
      std::lock_guard lock(published_mutex_);
      auto& ports = published_[id];
      ports.clear();
      for (const auto& [port, host_port] : info.ports) ports[port] = host_port;
    }
    json::object message = status(id, "running", "container " + info.id.substr(0, 12) + " is running");
    message["endpoints"] = std::move(endpoints);
    report_(message);
  };
  // Adopt what is already there (a redeploy after a reconnect or an agent restart).
  if (auto existing = engine_.list("kaisar.lease", id)) {
    for (const auto& c : *existing) {
      if (c.running) {
        report_running(c);
        return;
      }
      (void)engine_.remove(c.id);  // a stopped leftover: start over
    }
  }
  runtime::ContainerSpec spec;
  auto image = admit_image(text(lease, "image"), policy_.local_images);
  if (!image) {
    report_(status(id, "failed", image.error().message));
    return;
  }
  spec.image = *image;
  spec.labels = {{"kaisar.lease", id}};
  if (const json::value* env = lease.if_contains("env"); env != nullptr && env->is_object()) {
    for (const auto& [k, v] : env->get_object()) {
      if (v.is_string()) spec.env.emplace_back(std::string(k), std::string(v.get_string()));
    }
  }
  spec.env.emplace_back("KAISAR_LEASE", id);
  if (const std::string key = text(lease, "ssh_key"); !key.empty()) spec.env.emplace_back("SSH_PUBLIC_KEY", key);
  if (const json::value* ports = lease.if_contains("ports"); ports != nullptr && ports->is_array()) {
    for (const auto& p : ports->get_array()) {
      if (p.is_int64() && p.get_int64() > 0 && p.get_int64() < 65536) spec.ports.push_back(static_cast<std::uint16_t>(p.get_int64()));
    }
  }
  if (const json::value* command = lease.if_contains("command"); command != nullptr && command->is_array()) {
    for (const auto& a : command->get_array()) {
      if (a.is_string()) spec.command.emplace_back(a.get_string());
    }
  }
  if (spec.command.empty() && spec.image == kDemoImage) spec.command = {"/init.sh"};
  // Every container is capped: memory, CPU, processes, output, and disk where the engine can.
  spec.memory_bytes = number(lease, "memory_gb") << 30;
  if (spec.memory_bytes == 0) spec.memory_bytes = policy_.default_memory_bytes;
  spec.nano_cpus = std::max<std::uint64_t>(number(lease, "cpus"), 1) * 1000000000ULL;
  spec.pids_limit = policy_.pids_limit;
  spec.log_bytes = policy_.log_bytes;
  spec.disk_bytes = number(lease, "disk_gb") << 30;
  spec.dns = policy_.dns;
  if (const auto wanted = static_cast<std::uint32_t>(number(lease, "gpus")); wanted > 0) {
    // Whole GPUs that no other lease container holds, named by uuid so the engine cannot
    // hand out one that is taken.
    auto all = engine_.list("kaisar.lease");
    if (!all) {
      report_(status(id, "failed", "listing the containers to find free GPUs: " + all.error().message));
      return;
    }
    std::set<std::string> used;
    for (const auto& c : *all) {
      if (auto held = c.labels.find("kaisar.gpus"); held != c.labels.end()) {
        for (auto& uuid : split_ids(held->second)) used.insert(std::move(uuid));
      }
    }
    const std::string model = text(lease, "gpu_model");
    auto picked = pick_gpus(gpus_, used, wanted, model);
    if (!picked) {
      report_(status(id, "failed", "the lease asks for " + std::to_string(wanted) + " GPUs" +
                                       (model.empty() ? std::string{} : " of model '" + model + "'") +
                                       "; this machine has " + std::to_string(gpus_.size()) + ", " +
                                       std::to_string(used.size()) + " in use"));
      return;
    }
    spec.gpu_ids = *picked;
    std::string label;
    for (const auto& uuid : *picked) label += (label.empty() ? "" : ",") + uuid;
    spec.labels["kaisar.gpus"] = label;
  }
  if (auto v = runtime::validate(spec); !v) {
    report_(status(id, "failed", "the lease's container spec is not valid: " + v.error().message));
    return;
  }
  // The fence first: no lease container runs on this host without it (unless the operator
  // said so, for development).
  if (auto fenced = install_firewall(); !fenced) {
    if (policy_.require_firewall) {
      report_(status(id, "failed", keep_detail(id, "this provider cannot isolate leases right now", fenced.error())));
      return;
    }
    if (policy_.log) policy_.log("lease " + id + " runs WITHOUT the host firewall: " + fenced.error().message);
  }
  auto progress = [&](const std::string& what) { report_(status(id, "deploying", what)); };
  if (auto got = ensure_image(spec.image, progress); !got) {
    const std::string what = got.error().code == ErrorCode::kNotFound
                                 ? "the image " + spec.image + " was not found (a private image or a wrong name?)"
                                 : "the image " + spec.image + " could not be pulled from its registry";
    report_(status(id, "failed", keep_detail(id, what, got.error())));
    return;
  }
  const runtime::NetworkSpec network = lease_network(id);
  if (auto made = engine_.create_network(network); !made) {
    report_(status(id, "failed", keep_detail(id, "the container engine could not make the lease's network", made.error())));
    return;
  }
  spec.network = network.name;
  progress("creating the container");
  auto created = engine_.create(spec);
  if (!created) {
    remove_lease(id);
    report_(status(id, "failed", keep_detail(id, "the container engine could not create the container", created.error())));
    return;
  }
  progress("starting the container");
  if (auto started = engine_.start(*created); !started) {
    remove_lease(id);
    report_(status(id, "failed", keep_detail(id, "the container engine could not start the container", started.error())));
    return;
  }
  auto info = engine_.inspect(*created);
  if (!info || !info->running) {
    const std::string exit = info ? " (exit code " + std::to_string(info->exit_code) + ")" : std::string{};
    remove_lease(id);  // a failed lease leaves nothing behind
    report_(status(id, "failed", "the container stopped right after starting" + exit));
    return;
  }
  report_running(*info);
}

void Deployer::remove_lease(const std::string& lease_id) {
  if (auto existing = engine_.list("kaisar.lease", lease_id)) {
    for (const auto& c : *existing) (void)engine_.remove(c.id);
  }
  if (auto networks = engine_.networks("kaisar.lease", lease_id)) {
    for (const auto& n : *networks) (void)engine_.remove_network(n.name);
  }
}

std::string Deployer::keep_detail(const std::string& lease_id, const std::string& what, const Error& detail) const {
  // Engine and nft messages can name the host's addresses, paths and registries' IPs.
  if (policy_.log) policy_.log("lease " + lease_id + ": " + what + ": " + detail.message);
  return what;
}

}  // namespace kaisar::provider
