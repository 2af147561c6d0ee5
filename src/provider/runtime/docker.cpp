#include "provider/runtime/docker.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/image_reference.hpp"
#include "provider/runtime/unix_http.hpp"

namespace kaisar::provider::runtime {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxEnv = 128;
constexpr std::size_t kMaxPorts = 32;
constexpr std::size_t kMaxLabels = 64;

bool printable(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool valid_image(std::string_view image) { return parse_image_reference(image).has_value(); }

bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '_')) return false;
  }
  return true;
}

bool valid_name(std::string_view name) {
  if (name.size() > 128 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

// The engine's {"message": …} for a failed call, mapped to our codes.
Error engine_error(int status, const std::string& body, std::string_view what) {
  std::string message = body.substr(0, 500);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const json::value* m = v.get_object().if_contains("message"); m != nullptr && m->is_string()) {
      message = std::string(m->get_string());
    }
  }
  ErrorCode code = ErrorCode::kUnavailable;
  if (status == 404) code = ErrorCode::kNotFound;
  else if (status == 409) code = ErrorCode::kConflict;
  else if (status == 400) code = ErrorCode::kInvalidArgument;
  // Podman answers 500 for some of these; its message says what happened.
  if (message.find("already in use") != std::string::npos) code = ErrorCode::kConflict;
  if (message.find("no such") != std::string::npos || message.find("not known") != std::string::npos) {
    code = ErrorCode::kNotFound;
  }
  return Error{code, std::string(what) + ": " + message};
}

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::uint64_t u64_at(const json::object* o, std::string_view key) {
  if (o == nullptr) return 0;
  const json::value* v = o->if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  if (v->is_double() && v->get_double() > 0 && v->get_double() < 1.8e19) return static_cast<std::uint64_t>(v->get_double());
  return 0;
}

std::string string_at(const json::object* o, std::string_view key) {
  if (o == nullptr) return {};
  const json::value* v = o->if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

Result<ContainerInfo> parse_inspect(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kUnavailable, "container engine: inspect answer is not JSON");
  const json::object& o = v.get_object();
  ContainerInfo info;
  info.id = string_at(&o, "Id");
  info.name = string_at(&o, "Name");
  if (!info.name.empty() && info.name.front() == '/') info.name.erase(0, 1);
  const json::object* config = object_at(o, "Config");
  info.image = string_at(config, "Image");
  if (config != nullptr) {
    if (const json::object* labels = object_at(*config, "Labels")) {
      for (const auto& [k, val] : *labels) {
        if (val.is_string()) info.labels[std::string(k)] = std::string(val.get_string());
      }
    }
  }
  const json::object* state = object_at(o, "State");
  info.status = string_at(state, "Status");
  if (state != nullptr) {
    if (const json::value* r = state->if_contains("Running"); r != nullptr && r->is_bool()) info.running = r->get_bool();
    if (const json::value* c = state->if_contains("ExitCode"); c != nullptr && c->is_int64()) {
      info.exit_code = static_cast<int>(c->get_int64());
    }
  }
  if (const json::object* network = object_at(o, "NetworkSettings")) {
    if (const json::object* networks = object_at(*network, "Networks")) {
      for (const auto& [name, n] : *networks) {
        if (!n.is_object()) continue;
        if (auto ip = string_at(&n.get_object(), "IPAddress"); !ip.empty()) info.addresses.push_back(std::move(ip));
        if (auto gw = string_at(&n.get_object(), "Gateway"); !gw.empty()) info.gateways.push_back(std::move(gw));
      }
    }
    if (const json::object* ports = object_at(*network, "Ports")) {
      for (const auto& [key, bindings] : *ports) {
        const std::string spec(key);
        if (spec.size() < 5 || spec.substr(spec.size() - 4) != "/tcp" || !bindings.is_array()) continue;
        const unsigned long container_port = std::strtoul(spec.c_str(), nullptr, 10);
        for (const auto& b : bindings.get_array()) {
          if (!b.is_object()) continue;
          const std::string host_port = string_at(&b.get_object(), "HostPort");
          const unsigned long hp = std::strtoul(host_port.c_str(), nullptr, 10);
          if (container_port > 0 && container_port < 65536 && hp > 0 && hp < 65536) {
            info.ports[static_cast<std::uint16_t>(container_port)] = static_cast<std::uint16_t>(hp);
          }
        }
      }
    }
  }
  if (info.id.empty()) return fail(ErrorCode::kUnavailable, "container engine: inspect answer has no Id");
  return info;
}

// "registry/name:tag" → ("registry/name", "tag"); a digest reference stays whole.
std::pair<std::string, std::string> split_reference(const std::string& image) {
  if (image.find('@') != std::string::npos) return {image, ""};
  const std::size_t slash = image.rfind('/');
  const std::size_t colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {image.substr(0, colon), image.substr(colon + 1)};
  }
  return {image, "latest"};
}

}  // namespace

std::string url_encode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<void> validate(const ContainerSpec& spec) {
  if (!valid_image(spec.image)) {
    return fail(ErrorCode::kInvalidArgument, "image must be a reference like registry/name:tag (letters, digits, /:.-_@)");
  }
  if (!spec.name.empty() && !valid_name(spec.name)) {
    return fail(ErrorCode::kInvalidArgument, "container name may hold letters, digits, '_', '.' and '-'");
  }
  if (spec.command.size() > 256) return fail(ErrorCode::kInvalidArgument, "command has too many arguments");
  for (const auto& arg : spec.command) {
    if (arg.find('\0') != std::string::npos || arg.size() > 4096) {
      return fail(ErrorCode::kInvalidArgument, "command arguments must be text of at most 4096 bytes");
    }
  }
  if (spec.env.size() > kMaxEnv) return fail(ErrorCode::kInvalidArgument, "at most 128 environment variables");
  for (const auto& [name, value] : spec.env) {
    if (!valid_env_name(name)) {
      return fail(ErrorCode::kInvalidArgument, "environment name '" + name.substr(0, 64) + "' is not [A-Za-z_][A-Za-z0-9_]*");
    }
    if (value.find('\0') != std::string::npos || value.size() > 32768) {
      return fail(ErrorCode::kInvalidArgument, "environment value of " + name + " is not text of at most 32 KiB");
    }
  }
  if (spec.labels.size() > kMaxLabels) return fail(ErrorCode::kInvalidArgument, "at most 64 labels");
  for (const auto& [key, value] : spec.labels) {
    if (key.empty() || key.size() > 256 || !printable(key) || !printable(value) || value.size() > 4096) {
      return fail(ErrorCode::kInvalidArgument, "labels must be printable text");
    }
  }
  if (spec.ports.size() > kMaxPorts) return fail(ErrorCode::kInvalidArgument, "at most 32 ports");
  std::set<std::uint16_t> seen;
  for (std::uint16_t p : spec.ports) {
    if (p == 0) return fail(ErrorCode::kInvalidArgument, "port 0 cannot be published");
    if (!seen.insert(p).second) return fail(ErrorCode::kInvalidArgument, "port " + std::to_string(p) + " given twice");
  }
  if (spec.memory_bytes != 0 && spec.memory_bytes < (6u << 20)) {
    return fail(ErrorCode::kInvalidArgument, "a memory limit must be at least 6 MiB");
  }
  if (spec.pids_limit < 16) return fail(ErrorCode::kInvalidArgument, "a PID limit must be at least 16");
  if (!spec.network.empty() && !valid_name(spec.network)) {
    return fail(ErrorCode::kInvalidArgument, "network name may hold letters, digits, '_', '.' and '-'");
  }
  if (spec.dns.size() > 3) return fail(ErrorCode::kInvalidArgument, "at most 3 name servers");
  for (const auto& server : spec.dns) {
    if (!ip_literal(server) || server.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos) {
      return fail(ErrorCode::kInvalidArgument, "name servers are IP addresses");
    }
  }
  return {};
}

namespace {

json::array strings(const auto& list) {
  json::array out;
  for (const auto& item : list) out.push_back(json::value(std::string_view(item)));
  return out;
}

json::object label_object(const std::map<std::string, std::string>& labels) {
  json::object out;
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

}  // namespace

std::string network_create_body(const NetworkSpec& spec) {
  return json::serialize(json::object{
      {"Name", spec.name},
      {"CheckDuplicate", true},
      {"Driver", "bridge"},
      {"Internal", false},
      {"EnableIPv6", false},
      {"Labels", label_object(spec.labels)},
      {"Options", json::object{{"com.docker.network.bridge.name", spec.bridge},
                               {"com.docker.network.bridge.enable_icc", "false"},
                               {"com.docker.network.bridge.enable_ip_masquerade", "true"}}}});
}

std::string libpod_network_create_body(const NetworkSpec& spec) {
  // No subnets given: Podman picks a free one. Each lease holds one container, so its own
  // bridge already keeps leases apart; the host firewall does the rest.
  return json::serialize(json::object{{"name", spec.name},
                                      {"driver", "bridge"},
                                      {"network_interface", spec.bridge},
                                      {"internal", false},
                                      {"ipv6_enabled", false},
                                      {"dns_enabled", false},
                                      {"labels", label_object(spec.labels)}});
}

std::string create_body(const ContainerSpec& spec) {
  json::object body;
  body["Image"] = spec.image;
  if (!spec.command.empty()) {
    json::array cmd;
    for (const auto& a : spec.command) cmd.push_back(json::value(a));
    body["Cmd"] = std::move(cmd);
  }
  json::array env;
  for (const auto& [k, v] : spec.env) env.push_back(json::value(k + "=" + v));
  body["Env"] = std::move(env);
  json::object labels;
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  body["Labels"] = std::move(labels);
  json::object exposed;
  json::object bindings;
  for (std::uint16_t p : spec.ports) {
    const std::string key = std::to_string(p) + "/tcp";
    exposed[key] = json::object{};
    bindings[key] = json::array{json::object{{"HostIp", "127.0.0.1"}, {"HostPort", ""}}};
  }
  body["ExposedPorts"] = std::move(exposed);
  json::object host;
  host["PortBindings"] = std::move(bindings);
  if (spec.memory_bytes != 0) {
    host["Memory"] = spec.memory_bytes;
    host["MemorySwap"] = spec.memory_bytes;  // no swap beyond the limit
  }
  if (spec.nano_cpus != 0) host["NanoCpus"] = spec.nano_cpus;
  host["CapDrop"] = json::array{"ALL"};
  host["CapAdd"] = strings(kCapabilities);
  host["SecurityOpt"] = json::array{"no-new-privileges"};
  host["PidsLimit"] = spec.pids_limit;
  host["LogConfig"] = json::object{
      {"Type", "json-file"},
      {"Config", json::object{{"max-size", std::to_string(std::max<std::uint64_t>(spec.log_bytes / 2, 1)) }, {"max-file", "2"}}}};
  if (spec.disk_bytes != 0) host["StorageOpt"] = json::object{{"size", std::to_string(spec.disk_bytes)}};
  if (!spec.network.empty()) host["NetworkMode"] = spec.network;
  if (!spec.dns.empty()) host["Dns"] = strings(spec.dns);
  if (!spec.gpu_ids.empty() || spec.gpu_count != 0) {
    json::object request{{"Driver", "nvidia"}, {"Capabilities", json::array{json::array{"gpu"}}}};
    if (!spec.gpu_ids.empty()) {
      json::array ids;
      for (const auto& id : spec.gpu_ids) ids.push_back(json::value(id));
      request["DeviceIDs"] = std::move(ids);
    } else {
      request["Count"] = spec.gpu_count;
    }
    host["DeviceRequests"] = json::array{std::move(request)};
  }
  body["HostConfig"] = std::move(host);
  return json::serialize(body);
}

std::string libpod_create_body(const ContainerSpec& spec) {
  json::object body;
  body["image"] = spec.image;
  if (!spec.name.empty()) body["name"] = spec.name;
  if (!spec.command.empty()) {
    json::array cmd;
    for (const auto& a : spec.command) cmd.push_back(json::value(a));
    body["command"] = std::move(cmd);
  }
  json::object env;
  for (const auto& [k, v] : spec.env) env[k] = v;
  body["env"] = std::move(env);
  json::object labels;
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  body["labels"] = std::move(labels);
  json::array ports;
  for (std::uint16_t p : spec.ports) {
    // No host_port: Podman picks a free one, as with Docker's empty HostPort.
    ports.push_back(json::object{{"container_port", p}, {"host_ip", "127.0.0.1"}, {"protocol", "tcp"}});
  }
  body["portmappings"] = std::move(ports);
  json::object limits;
  if (spec.memory_bytes != 0) limits["memory"] = json::object{{"limit", spec.memory_bytes}, {"swap", spec.memory_bytes}};
  if (spec.nano_cpus != 0) {
    constexpr std::uint64_t kPeriod = 100000;  // microseconds, as `--cpus` uses
    limits["cpu"] = json::object{{"quota", spec.nano_cpus * kPeriod / 1000000000ULL}, {"period", kPeriod}};
  }
  limits["pids"] = json::object{{"limit", spec.pids_limit}};
  body["resource_limits"] = std::move(limits);
  body["cap_drop"] = json::array{"ALL"};
  body["cap_add"] = strings(kCapabilities);
  body["no_new_privileges"] = true;
  body["log_configuration"] = json::object{{"driver", "k8s-file"}, {"size", spec.log_bytes}};
  if (spec.disk_bytes != 0) body["storage_opts"] = json::object{{"size", std::to_string(spec.disk_bytes)}};
  if (!spec.network.empty()) {
    body["netns"] = json::object{{"nsmode", "bridge"}};
    body["Networks"] = json::object{{spec.network, json::object{}}};  // Podman 4 spells it so
  }
  if (!spec.dns.empty()) body["dns_server"] = strings(spec.dns);
  json::array devices;
  for (const auto& id : spec.gpu_ids) devices.push_back(json::object{{"path", "nvidia.com/gpu=" + id}});
  body["devices"] = std::move(devices);
  return json::serialize(body);
}

Result<bool> DockerClient::is_podman() {
  if (!podman_) {
    auto name = engine();
    if (!name) return std::unexpected(name.error());
    podman_ = name->find("Podman") != std::string::npos;
  }
  return *podman_;
}

Result<std::string> DockerClient::call(std::string_view method, const std::string& target, std::string_view body,
                                       std::string_view content_type) {
  auto r = unix_request(socket_, method, target, body, content_type, timeout_);
  if (!r) return std::unexpected(r.error());
  if (r->status == 304) return std::string{};  // "already in that state"
  if (r->status < 200 || r->status >= 300) {
    return std::unexpected(engine_error(r->status, r->body, std::string(method) + " " + target.substr(0, target.find('?'))));
  }
  return std::move(r->body);
}

Result<void> DockerClient::ping() {
  auto r = call("GET", "/_ping");
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::string> DockerClient::engine() {
  auto r = call("GET", "/version");
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kUnavailable, "container engine: /version is not JSON");
  const json::object& o = v.get_object();
  std::string name = "Docker Engine";
  if (const json::value* components = o.if_contains("Components"); components != nullptr && components->is_array()) {
    for (const auto& c : components->get_array()) {
      if (c.is_object()) {
        const std::string n = string_at(&c.get_object(), "Name");
        if (n.find("Podman") != std::string::npos) name = n;
      }
    }
  }
  return name + " " + string_at(&o, "Version");
}

Result<bool> DockerClient::image_exists(const std::string& image) {
  auto r = call("GET", "/images/" + image + "/json");
  if (r) return true;
  if (r.error().code == ErrorCode::kNotFound) return false;
  return std::unexpected(r.error());
}

Result<std::vector<std::string>> DockerClient::image_tags() {
  auto r = call("GET", "/images/json");
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_array()) return fail(ErrorCode::kUnavailable, "container engine: /images/json is not a JSON array");
  std::vector<std::string> tags;
  for (const auto& image : v.get_array()) {
    const json::value* repo_tags = image.is_object() ? image.get_object().if_contains("RepoTags") : nullptr;
    if (repo_tags == nullptr || !repo_tags->is_array()) continue;
    for (const auto& t : repo_tags->get_array()) {
      if (t.is_string() && t.get_string() != "<none>:<none>") tags.emplace_back(t.get_string());
    }
  }
  return tags;
}

Result<void> DockerClient::pull(const std::string& image, bool refresh,
                                const std::function<void(const PullProgress&)>& progress) {
  if (!valid_image(image)) return fail(ErrorCode::kInvalidArgument, "bad image reference '" + image + "'");
  if (!refresh) {
    auto present = image_exists(image);
    if (!present) return std::unexpected(present.error());
    if (*present) return {};
  }
  auto [name, tag] = split_reference(image);
  std::string target = "/images/create?fromImage=" + url_encode(name);
  if (!tag.empty()) target += "&tag=" + url_encode(tag);
  PullProgressReader reader;
  std::string failure;
  auto streamed = unix_stream(socket_, "POST", target, {}, "application/json",
                              [&](std::string_view data) {
                                auto lines = reader.feed(data);
                                if (!lines) {
                                  failure = lines.error().message;
                                  return false;
                                }
                                for (const auto& p : *lines) {
                                  if (!p.error.empty()) failure = p.error;
                                  if (progress) progress(p);
                                }
                                return failure.empty();
                              },
                              std::chrono::minutes{30});
  if (!streamed) {
    const bool missing = streamed.error().message.find("not found") != std::string::npos ||
                         streamed.error().message.find("manifest unknown") != std::string::npos;
    return fail(missing ? ErrorCode::kNotFound : streamed.error().code, "pulling " + image + ": " + streamed.error().message);
  }
  if (!failure.empty()) {
    const bool missing = failure.find("not found") != std::string::npos || failure.find("manifest unknown") != std::string::npos;
    return fail(missing ? ErrorCode::kNotFound : ErrorCode::kUnavailable, "pulling " + image + ": " + failure);
  }
  auto now = image_exists(image);
  if (!now) return std::unexpected(now.error());
  if (!*now) return fail(ErrorCode::kUnavailable, "pulling " + image + ": the engine reported no image afterwards");
  return {};
}

Result<void> DockerClient::import_rootfs(ByteView tar, const std::string& repo, const std::string& tag) {
  if (!valid_image(repo + ":" + tag)) return fail(ErrorCode::kInvalidArgument, "bad image name " + repo + ":" + tag);
  auto r = call("POST", "/images/create?fromSrc=-&repo=" + url_encode(repo) + "&tag=" + url_encode(tag),
                std::string_view(reinterpret_cast<const char*>(tar.data()), tar.size()), "application/x-tar");
  if (!r) return std::unexpected(r.error());
  // The answer is one or more JSON objects; the last names the image ("sha256:…").
  std::string image_id;
  std::size_t at = 0;
  while (true) {
    const std::size_t key = r->find("\"id\":\"", at);
    if (key == std::string::npos) break;
    const std::size_t start = key + 6;
    const std::size_t end = r->find('"', start);
    if (end == std::string::npos) break;
    image_id = r->substr(start, end - start);
    at = end;
  }
  if (r->find("\"error\"") != std::string::npos || image_id.empty() || !valid_image(image_id)) {
    return fail(ErrorCode::kUnavailable, "import failed: " + r->substr(0, 300));
  }
  // Podman names imports REPO:latest whatever the tag; name it as asked either way.
  auto tagged = call("POST", "/images/" + image_id + "/tag?repo=" + url_encode(repo) + "&tag=" + url_encode(tag));
  if (!tagged) return std::unexpected(tagged.error());
  return {};
}

Result<void> DockerClient::remove_image(const std::string& image) {
  if (!valid_image(image)) return fail(ErrorCode::kInvalidArgument, "bad image reference '" + image + "'");
  auto r = call("DELETE", "/images/" + image + "?force=1");
  if (!r && r.error().code != ErrorCode::kNotFound) return std::unexpected(r.error());
  return {};
}

Result<std::string> DockerClient::create(const ContainerSpec& spec) {
  if (auto v = validate(spec); !v) return std::unexpected(v.error());
  bool libpod = false;
  if (!spec.gpu_ids.empty() || spec.gpu_count != 0) {
    auto podman = is_podman();
    if (!podman) return std::unexpected(podman.error());
    libpod = *podman;
    if (libpod && spec.gpu_ids.empty()) return fail(ErrorCode::kInvalidArgument, "Podman needs the GPUs' ids (CDI names)");
  }
  std::string target = libpod ? "/v4.0.0/libpod/containers/create" : "/containers/create";
  if (!libpod && !spec.name.empty()) target += "?name=" + url_encode(spec.name);
  ContainerSpec asked = spec;
  if (asked.disk_bytes != 0) {
    auto quota = disk_quota();
    if (!quota) return std::unexpected(quota.error());
    if (!*quota) asked.disk_bytes = 0;
  }
  auto r = call("POST", target, libpod ? libpod_create_body(asked) : create_body(asked));
  if (!r && asked.disk_bytes != 0 && r.error().message.find("storage") != std::string::npos) {
    // The driver looked able but is not (overlay2 on xfs without pquota): no quota from now on.
    disk_quota_ = false;
    asked.disk_bytes = 0;
    r = call("POST", target, libpod ? libpod_create_body(asked) : create_body(asked));
  }
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kUnavailable, "container engine: create answer is not JSON");
  std::string id = string_at(&v.get_object(), "Id");
  if (id.empty()) return fail(ErrorCode::kUnavailable, "container engine: create answer has no Id");
  return id;
}

Result<void> DockerClient::create_network(const NetworkSpec& spec) {
  if (!valid_name(spec.name) || spec.bridge.empty() || spec.bridge.size() > 15 || !valid_name(spec.bridge)) {
    return fail(ErrorCode::kInvalidArgument, "a network needs a name and a bridge name of at most 15 characters");
  }
  auto podman = is_podman();
  if (!podman) return std::unexpected(podman.error());
  auto r = *podman ? call("POST", "/v4.0.0/libpod/networks/create", libpod_network_create_body(spec))
                   : call("POST", "/networks/create", network_create_body(spec));
  if (!r && r.error().code == ErrorCode::kConflict) return {};  // made before (a redeploy)
  if (!r && r.error().message.find("already exists") != std::string::npos) return {};
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> DockerClient::remove_network(const std::string& name) {
  if (!valid_name(name)) return fail(ErrorCode::kInvalidArgument, "bad network name");
  auto r = call("DELETE", "/networks/" + url_encode(name));
  if (!r && r.error().code != ErrorCode::kNotFound) return std::unexpected(r.error());
  return {};
}

Result<std::vector<NetworkInfo>> DockerClient::networks(const std::string& key, const std::string& value) {
  const std::string label = value.empty() ? key : key + "=" + value;
  const std::string filters = json::serialize(json::object{{"label", json::array{json::value(label)}}});
  auto r = call("GET", "/networks?filters=" + url_encode(filters));
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_array()) return fail(ErrorCode::kUnavailable, "container engine: network list is not a JSON array");
  std::vector<NetworkInfo> out;
  for (const auto& n : v.get_array()) {
    if (!n.is_object()) continue;
    NetworkInfo info;
    info.name = string_at(&n.get_object(), "Name");
    if (const json::object* labels = object_at(n.get_object(), "Labels")) {
      for (const auto& [k, val] : *labels) {
        if (val.is_string()) info.labels[std::string(k)] = std::string(val.get_string());
      }
    }
    // The engine filtered already; check again, the answer is not trusted blindly.
    auto it = info.labels.find(key);
    if (info.name.empty() || it == info.labels.end() || (!value.empty() && it->second != value)) continue;
    out.push_back(std::move(info));
  }
  return out;
}

Result<bool> DockerClient::disk_quota() {
  if (disk_quota_) return *disk_quota_;
  auto r = call("GET", "/info");
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kUnavailable, "container engine: /info is not JSON");
  const std::string driver = string_at(&v.get_object(), "Driver");
  std::string backing;
  if (const json::value* status = v.get_object().if_contains("DriverStatus"); status != nullptr && status->is_array()) {
    for (const auto& pair : status->get_array()) {
      if (pair.is_array() && pair.get_array().size() == 2 && pair.get_array()[0].is_string() &&
          pair.get_array()[0].get_string() == "Backing Filesystem" && pair.get_array()[1].is_string()) {
        backing = std::string(pair.get_array()[1].get_string());
      }
    }
  }
  // Docker's storage-opt size: btrfs, zfs, devicemapper, and overlay2 on xfs with pquota
  // (tried, then dropped if refused). vfs and overlay on ext4 cannot cap a container.
  disk_quota_ = driver == "btrfs" || driver == "zfs" || driver == "devicemapper" ||
                ((driver == "overlay2" || driver == "overlay") && backing == "xfs");
  return *disk_quota_;
}

Result<void> DockerClient::start(const std::string& id) {
  auto r = call("POST", "/containers/" + url_encode(id) + "/start");
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<ContainerInfo> DockerClient::inspect(const std::string& id) {
  auto r = call("GET", "/containers/" + url_encode(id) + "/json");
  if (!r) return std::unexpected(r.error());
  return parse_inspect(*r);
}

Result<void> DockerClient::stop(const std::string& id, std::chrono::seconds grace) {
  auto r = call("POST", "/containers/" + url_encode(id) + "/stop?t=" + std::to_string(grace.count()));
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> DockerClient::remove(const std::string& id) {
  auto r = call("DELETE", "/containers/" + url_encode(id) + "?force=1&v=1");
  if (!r && r.error().code != ErrorCode::kNotFound) return std::unexpected(r.error());
  return {};
}

Result<std::vector<ContainerInfo>> DockerClient::list(const std::string& key, const std::string& value) {
  const std::string label = value.empty() ? key : key + "=" + value;
  const std::string filters = json::serialize(json::object{{"label", json::array{json::value(label)}}});
  auto r = call("GET", "/containers/json?all=1&filters=" + url_encode(filters));
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_array()) return fail(ErrorCode::kUnavailable, "container engine: list answer is not a JSON array");
  std::vector<ContainerInfo> out;
  for (const auto& c : v.get_array()) {
    if (!c.is_object()) continue;
    const std::string id = string_at(&c.get_object(), "Id");
    if (id.empty()) continue;
    auto info = inspect(id);
    if (!info) {
      if (info.error().code == ErrorCode::kNotFound) continue;  // removed meanwhile
      return std::unexpected(info.error());
    }
    // The engine filtered already; check again, the answer is not trusted blindly.
    auto it = info->labels.find(key);
    if (it == info->labels.end() || (!value.empty() && it->second != value)) continue;
    out.push_back(std::move(*info));
  }
  return out;
}

Result<ContainerStats> DockerClient::stats(const std::string& id) {
  auto r = call("GET", "/containers/" + url_encode(id) + "/stats?stream=false&one-shot=true");  // one sample, no 1 s wait
  if (!r) return std::unexpected(r.error());
  boost::system::error_code ec;
  json::value v = json::parse(*r, ec);
  if (ec || !v.is_object()) return fail(ErrorCode::kUnavailable, "container engine: stats answer is not JSON");
  const json::object& o = v.get_object();
  ContainerStats s;
  if (const json::object* cpu = object_at(o, "cpu_stats")) s.cpu_total_ns = u64_at(object_at(*cpu, "cpu_usage"), "total_usage");
  s.memory_bytes = u64_at(object_at(o, "memory_stats"), "usage");
  if (const json::object* networks = object_at(o, "networks")) {
    for (const auto& [name, n] : *networks) {
      if (!n.is_object()) continue;
      s.network_rx_bytes += u64_at(&n.get_object(), "rx_bytes");
      s.network_tx_bytes += u64_at(&n.get_object(), "tx_bytes");
    }
  }
  return s;
}

Result<void> DockerClient::logs(const std::string& id, bool follow, const std::function<bool(const LogFrame&)>& on_frame,
                                std::optional<std::chrono::milliseconds> timeout) {
  LogDemuxer demux;
  std::optional<Error> broken;
  auto r = unix_stream(socket_, "GET",
                       "/containers/" + url_encode(id) + "/logs?stdout=1&stderr=1&follow=" + (follow ? "1" : "0"), {},
                       "application/json",
                       [&](std::string_view data) {
                         auto frames = demux.feed(data);
                         if (!frames) {
                           broken = frames.error();
                           return false;
                         }
                         for (const auto& f : *frames) {
                           if (!on_frame(f)) return false;
                         }
                         return true;
                       },
                       timeout.value_or(follow ? std::chrono::milliseconds{std::chrono::hours{24}} : timeout_));
  if (!r) {
    if (r.error().message.find("404") != std::string::npos || r.error().message.find("no such") != std::string::npos) {
      return fail(ErrorCode::kNotFound, "no container " + id);
    }
    return std::unexpected(r.error());
  }
  if (broken) return std::unexpected(*broken);
  return {};
}

}  // namespace kaisar::provider::runtime
