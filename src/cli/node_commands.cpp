// Long-running roles: onenode, provider init|run|status, dev.
#include <charconv>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

#include "chain/http_transport.hpp"
#include "chain/node_binding.hpp"
#include "cli/commands.hpp"
#include "eth/rpc.hpp"
#include "eth/uint256.hpp"
#include "crypto/keystore.hpp"
#include "crypto/random.hpp"
#include "gateway/gateway.hpp"
#include "gateway/link.hpp"
#include "gateway/ports.hpp"
#include "net/client.hpp"
#include "onenode/onenode.hpp"
#include "checker/checker.hpp"
#include "provider/agent.hpp"
#include "provider/identity.hpp"
#include "provider/inventory.hpp"
#include "provider/runtime/docker.hpp"
#include "store/files.hpp"

namespace kaisar::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// SIGINT/SIGTERM are blocked in every thread and taken by sigwait, so that shutdown runs as
// ordinary code and not inside a signal handler.
class ShutdownSignals {
 public:
  ShutdownSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  int wait() {
    int sig = 0;
    sigwait(&set_, &sig);
    return sig;
  }

 private:
  sigset_t set_{};
};

void announce(const std::string& base_url) {
  // Scripts and tests read this exact line to learn the bound port.
  std::cout << "listening on " << base_url << std::endl;
}

Result<onenode::OneNodeConfig> onenode_config(const OneNodeArgs& a) {
  onenode::OneNodeConfig c;
  if (!a.config_file.empty()) {
    auto loaded = onenode::OneNodeConfig::load_toml(a.config_file);
    if (!loaded) return std::unexpected(loaded.error());
    c = *loaded;
  }
  if (!a.listen.empty()) c.listen = a.listen;
  if (!a.data.empty()) c.data_dir = a.data;
  if (!a.public_url.empty()) c.public_url = a.public_url;
  if (a.chain_id != 0) c.chain_id = a.chain_id;
  if (a.heartbeat_interval > 0) c.heartbeat_interval = std::chrono::seconds{a.heartbeat_interval};
  if (a.offline_after > 0) c.offline_after = std::chrono::seconds{a.offline_after};
  else if (a.heartbeat_interval > 0) c.offline_after = 3 * c.heartbeat_interval;
  if (a.threads > 0) c.threads = a.threads;
  if (!a.rpc_url.empty()) c.rpc_url = a.rpc_url;
  if (!a.operator_keystore.empty()) c.operator_keystore = a.operator_keystore;
  if (!a.operator_password_file.empty()) c.operator_password_file = a.operator_password_file;
  if (!a.contracts_file.empty()) c.contracts_file = a.contracts_file;
  if (a.deploy_contracts) c.deploy_contracts = true;
  if (a.confirmations > 0) c.confirmations = a.confirmations;
  if (!a.gateway_tunnel_port.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(a.gateway_tunnel_port.data(), a.gateway_tunnel_port.data() + a.gateway_tunnel_port.size(), port);
    if (ec != std::errc{} || end != a.gateway_tunnel_port.data() + a.gateway_tunnel_port.size() || port > 65535) {
      return fail(ErrorCode::kInvalidArgument, "--gateway-tunnel-port must be a port number (0 picks a free one)");
    }
    c.gateway_tunnel_port = static_cast<std::uint16_t>(port);
  }
  if (!a.gateway_public_host.empty()) c.gateway_public_host = a.gateway_public_host;
  if (!a.gateway_ports.empty()) c.gateway_ports = a.gateway_ports;
  if (a.no_gateway) c.gateway = false;
  return c;
}

// The anvil binary for `kaisar dev`: --anvil, $KAISAR_ANVIL, the native binary from the
// repository's node_modules (next to the build tree), or `anvil` on PATH.
std::string find_anvil(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("KAISAR_ANVIL"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
#if defined(__aarch64__)
    const char* platform = "anvil-linux-arm64";
#else
    const char* platform = "anvil-linux-amd64";
#endif
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      fs::path native = dir / "node_modules" / "@foundry-rs" / platform / "bin" / "anvil";
      if (fs::exists(native, ec)) return native.string();
    }
  }
  return "anvil";
}

// The demo image tarball the build made next to this binary (build/<preset>/images/demo.tar).
std::string default_demo_image() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  fs::path tar = exe.parent_path() / "images" / "demo.tar";
  return fs::exists(tar, ec) ? tar.string() : std::string{};
}

// A background program `kaisar dev` owns: started with its output in a log file, stopped
// with SIGTERM (SIGKILL after 10 s), and killed with us if we die first.
class ChildService {
 public:
  static Result<std::unique_ptr<ChildService>> spawn(std::vector<std::string> argv,
                                                     const std::vector<std::pair<std::string, std::string>>& env,
                                                     const std::string& log) {
    // Everything the child needs is made before fork: between fork and exec a child of a
    // threaded process may only make async-signal-safe calls (no malloc: another thread
    // may have held its lock at the fork, and the child would hang there).
    std::string program;
    if (argv[0].find('/') != std::string::npos) {
      program = argv[0];
    } else if (const char* path = std::getenv("PATH")) {
      std::string_view dirs(path);
      while (program.empty()) {
        const auto colon = dirs.find(':');
        const std::string candidate = std::string(dirs.substr(0, colon)) + "/" + argv[0];
        if (::access(candidate.c_str(), X_OK) == 0) program = candidate;
        if (colon == std::string_view::npos) break;
        dirs.remove_prefix(colon + 1);
      }
    }
    if (program.empty()) return fail(ErrorCode::kNotFound, argv[0] + " is not installed (not found in PATH)");
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const auto key = entry.substr(0, entry.find('='));
      if (std::none_of(env.begin(), env.end(), [&](const auto& kv) { return kv.first == key; })) {
        environment.emplace_back(entry);
      }
    }
    for (const auto& [k, v] : env) environment.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) return fail(ErrorCode::kUnavailable, "cannot write " + log);
    sigset_t none;
    sigemptyset(&none);

    std::unique_ptr<ChildService> child(new ChildService());
    const pid_t parent = getpid();
    child->pid_ = fork();
    if (child->pid_ < 0) {
      ::close(log_fd);
      return fail(ErrorCode::kUnavailable, "fork failed");
    }
    if (child->pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(1);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      if (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) _exit(127);
      execve(program.c_str(), cargv.data(), envp.data());
      _exit(127);
    }
    ::close(log_fd);
    return child;
  }

  ~ChildService() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  // True once the program has exited (it is then reaped).
  bool exited() {
    if (pid_ <= 0) return true;
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
    return pid_ <= 0;
  }

 private:
  ChildService() = default;
  pid_t pid_ = -1;
};

// A Podman API service private to `kaisar dev` (its own configuration and storage under
// DIR), so the dev provider can run containers without touching the user's Podman.
class DevEngine {
 public:
  static Result<std::unique_ptr<DevEngine>> start(const fs::path& dir) {
    std::error_code ec;
    for (const char* sub : {"", "/tmp", "/net", "/xdg"}) fs::create_directories(dir.string() + sub, ec);
    if (ec) return fail(ErrorCode::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
    const std::string d = fs::absolute(dir).string();
    if (auto w = store::write_file_atomic(d + "/containers.conf",
                                          "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n"
                                          "cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
                                          "events_logfile_path = \"" + d + "/events.log\"\ntmp_dir = \"" + d +
                                              "/tmp\"\n[network]\nnetwork_config_dir = \"" + d + "/net\"\n",
                                          0644);
        !w) {
      return std::unexpected(w.error());
    }
    if (auto w = store::write_file_atomic(d + "/storage.conf",
                                          "[storage]\ndriver = \"vfs\"\ngraphroot = \"" + d +
                                              "/root\"\nrunroot = \"" + d + "/run\"\n",
                                          0644);
        !w) {
      return std::unexpected(w.error());
    }
    std::unique_ptr<DevEngine> engine(new DevEngine());
    engine->socket_ = d + "/podman.sock";
    fs::remove(engine->socket_, ec);
    const std::string log = d + "/podman.log";
    auto child = ChildService::spawn({"podman", "system", "service", "--time=0", "unix://" + engine->socket_},
                                     {{"CONTAINERS_CONF", d + "/containers.conf"},
                                      {"CONTAINERS_STORAGE_CONF", d + "/storage.conf"},
                                      {"XDG_RUNTIME_DIR", d + "/xdg"}},
                                     log);
    if (!child) return std::unexpected(child.error());
    engine->child_ = std::move(*child);
    for (int i = 0; i < 1200; ++i) {
      // Up once a Ping answers (the socket file appears before the service accepts).
      if (fs::exists(engine->socket_, ec) && provider::runtime::DockerClient(engine->socket_, std::chrono::seconds{2}).ping()) {
        return engine;
      }
      if (engine->child_->exited()) {
        return fail(ErrorCode::kUnavailable, "podman system service exited at start; see " + log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    return fail(ErrorCode::kTimeout, "podman system service did not start within 60 s; see " + log);
  }

  ~DevEngine() {
    if (!child_ || child_->exited()) return;
    // Leases' containers go with the dev network; after a restart OneNode deploys the
    // leases that are still live again.
    provider::runtime::DockerClient engine(socket_, std::chrono::seconds{20});
    if (auto containers = engine.list("kaisar.lease")) {
      for (const auto& c : *containers) (void)engine.remove(c.id);
    }
  }

  const std::string& socket() const { return socket_; }

  // Imports localhost/kaisar/demo:latest from its tarball unless the engine has it.
  Result<void> import_demo_image(const std::string& tarball) {
    provider::runtime::DockerClient engine(socket_, std::chrono::seconds{120});
    auto present = engine.image_exists("localhost/kaisar/demo:latest");
    if (!present) return std::unexpected(present.error());
    if (*present) return {};
    auto tar = store::read_file(tarball, 1ULL << 30);
    if (!tar) return fail(ErrorCode::kNotFound, "demo image tarball " + tarball + " is missing");
    return engine.import_rootfs(as_bytes(*tar), "localhost/kaisar/demo", "latest");
  }

 private:
  DevEngine() = default;
  std::string socket_;
  std::unique_ptr<ChildService> child_;
};

// A local anvil chain for `kaisar dev`. Its state is written to DIR/state.json when it
// stops and loaded when it starts, so the dev chain survives restarts of `kaisar dev`.
class DevChain {
 public:
  static Result<std::unique_ptr<DevChain>> start(const std::string& anvil, const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail(ErrorCode::kUnavailable, "cannot create " + dir.string() + ": " + ec.message());
    const std::string log = (dir / "anvil.log").string();
    const std::string state = (dir / "state.json").string();
    fs::remove(log, ec);  // so that the line we wait for is this run's
    std::unique_ptr<DevChain> chain(new DevChain());
    auto child = ChildService::spawn({anvil, "--host", "127.0.0.1", "--port", "0", "--chain-id", "31337", "--state", state},
                                     {}, log);
    if (!child) return std::unexpected(child.error());
    chain->child_ = std::move(*child);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      const std::string content = text.str();
      if (auto at = content.find("Listening on "); at != std::string::npos) {
        auto end = content.find('\n', at);
        if (end != std::string::npos) {
          chain->url_ = "http://" + content.substr(at + 13, end - at - 13);
          while (!chain->url_.empty() && std::isspace(static_cast<unsigned char>(chain->url_.back()))) {
            chain->url_.pop_back();
          }
          return chain;
        }
      }
      if (chain->child_->exited()) {
        return fail(ErrorCode::kUnavailable, "anvil (" + anvil + ") exited at start; see " + log +
                                                 " (run `make setup` to install it)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    return fail(ErrorCode::kTimeout, "anvil did not start within 30 s; see " + log);
  }

  const std::string& url() const { return url_; }

 private:
  DevChain() = default;
  std::unique_ptr<ChildService> child_;  // anvil writes its state when it stops
  std::string url_;
};

std::string provider_data_dir(const ProviderArgs& a) {
  return a.data.empty() ? (fs::path(xdg_data_dir()) / "provider").string() : a.data;
}

// Runs the agent until `stop` is called; logs to stderr.
void run_agent(provider::Agent& agent) {
  agent.log = [](const std::string& line) { spdlog::info("agent: {}", line); };
  agent.run();
}

std::string checker_data_dir(const ProviderArgs& a) {
  return a.data.empty() ? (fs::path(xdg_data_dir()) / "checker").string() : a.data;
}

// `kaisar provider init` and `kaisar checker init`: the owner wallet (new, imported, or the
// one already in DIR), the node key, and the owner's binding for `role`.
int init_node_identity(const ClientOptions& o, const ProviderArgs& pa, const std::string& dir, provider::Role role) {
  std::optional<crypto::PrivateKey> owner;
  bool created = false;
  if (pa.import_wallet) {
    auto key = unlock_wallet(o);
    if (!key) return report(key.error(), o.json);
    owner = *key;
  } else if (fs::exists(fs::path(dir) / "owner.json")) {
    ClientOptions existing = o;
    existing.wallet = (fs::path(dir) / "owner.json").string();
    auto key = unlock_wallet(existing);
    if (!key) return report(key.error(), o.json);
    owner = *key;
  } else {
    owner = crypto::PrivateKey::generate();
    created = true;
  }
  std::string password;
  if (created || pa.import_wallet) {
    auto pw = read_password(o.password_file, created);
    if (!pw) return report(pw.error(), o.json);
    password = *pw;
  }
  auto r = provider::init_identity(dir, *owner, password, created,
                                   pa.light_kdf ? crypto::kLightScrypt : crypto::ScryptParams{}, role);
  if (!r) return report(r.error(), o.json);
  const std::string command = role == provider::Role::kChecker ? "checker" : "provider";
  if (o.json) {
    print_json(json::object{{"owner", r->owner.to_checksum()},
                            {"node", r->node.to_checksum()},
                            {"data", dir},
                            {"created_wallet", r->created_wallet}});
  } else {
    std::cout << (r->created_wallet ? "created" : "using") << " owner wallet " << r->owner.to_checksum() << "\n"
              << (role == provider::Role::kChecker ? "checker " : "") << "node key " << r->node.to_checksum()
              << " bound to it\n"
              << "data: " << dir << "\n"
              << "next: kaisar " << command << " run --data " << dir << " --onenode URL\n";
  }
  return kExitOk;
}

void run_checker(checker::Checker& c) {
  c.log = [](const std::string& line) { spdlog::info("checker: {}", line); };
  c.run();
}

// `kaisar dev`: a new provider is checked within 30 s, an epoch lasts 60 s, the work is
// small enough for a laptop, and each epoch shares 10 KAI that OneNode mints.
void dev_check_settings(onenode::OneNodeConfig& c) {
  c.first_check_within = std::chrono::seconds{20};
  c.check_interval = std::chrono::seconds{120};
  c.check_target = 0.5;
  c.check_samples = 32;
  c.check_memory_bytes = 32ULL << 20;
  c.check_timeout = std::chrono::seconds{60};
  c.check_allowance_ms = 2000;  // a laptop busy with other things still passes
  c.epoch_length = std::chrono::seconds{60};
  c.epoch_reward = "10000000000000000000";
  c.fund_rewards = true;
}

// Creates DIR/wallets/NAME.json with a random password in NAME.password, unless present.
Result<crypto::PrivateKey> dev_wallet(const fs::path& dir, const std::string& name) {
  const std::string keystore_path = (dir / (name + ".json")).string();
  const std::string password_path = (dir / (name + ".password")).string();
  if (fs::exists(keystore_path) && fs::exists(password_path)) {
    auto pw = read_password(password_path, false);
    auto ks = store::read_file(keystore_path, 1 << 16);
    if (!pw || !ks) return fail(ErrorCode::kInvalidArgument, "cannot read dev wallet " + keystore_path);
    return crypto::keystore_decrypt(*ks, *pw);
  }
  auto key = crypto::PrivateKey::generate();
  const std::string password = crypto::random_token(16);
  if (auto w = store::write_file_atomic(password_path, password + "\n", 0600); !w) return std::unexpected(w.error());
  if (auto w = store::write_file_atomic(keystore_path, crypto::keystore_encrypt(key, password, crypto::kLightScrypt), 0600);
      !w) {
    return std::unexpected(w.error());
  }
  return key;
}

}  // namespace

constexpr const char* kInsecureDevHelp =
    "allow a plain http:// OneNode off this machine (private dev networks only: OneNode can make this machine run "
    "and remove containers)";

void add_node_commands(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  OneNodeArgs& on = all.onenode;
  ProviderArgs& pa = all.provider;
  OneNodeArgs& dev = all.dev;
  auto* onenode_cmd = app.add_subcommand("onenode", "Run the coordinator: API, agents' control channel, registry");
  onenode_cmd->add_option("--config", on.config_file, "TOML config file (flags override it)");
  onenode_cmd->add_option("--listen", on.listen, "HOST:PORT to listen on; port 0 picks a free one (default 127.0.0.1:8080)");
  onenode_cmd->add_option("--data", on.data, "data directory (SQLite database)");
  onenode_cmd->add_option("--public-url", on.public_url, "URL users reach this OneNode at (SIWE domain)");
  onenode_cmd->add_option("--chain-id", on.chain_id, "EVM chain id for sign-in (default 31337)");
  onenode_cmd->add_option("--heartbeat-interval", on.heartbeat_interval, "seconds between agent heartbeats (default 5)");
  onenode_cmd->add_option("--offline-after", on.offline_after, "seconds without heartbeat before offline (default 3 heartbeats)");
  onenode_cmd->add_option("--threads", on.threads, "server threads (default 2)");
  onenode_cmd->add_option("--rpc-url", on.rpc_url, "JSON-RPC URL of the EVM chain (enables settlement)");
  onenode_cmd->add_option("--operator-keystore", on.operator_keystore, "keystore of the operator key that sends chain writes");
  onenode_cmd->add_option("--operator-password-file", on.operator_password_file, "password of the operator keystore");
  onenode_cmd->add_option("--contracts-file", on.contracts_file, "contract addresses (JSON; default DATA/contracts.json)");
  onenode_cmd->add_flag("--deploy-contracts", on.deploy_contracts, "deploy the contracts when the contracts file is missing");
  onenode_cmd->add_option("--confirmations", on.confirmations, "blocks before a chain write or event is final (default 1)");
  onenode_cmd->add_option("--gateway-tunnel-port", on.gateway_tunnel_port, "port agents dial for their tunnel (default: any free)");
  onenode_cmd->add_option("--gateway-public-host", on.gateway_public_host,
                          "host renters and agents reach the gateway at (default: public URL's host or the listen host)");
  onenode_cmd->add_option("--gateway-ports", on.gateway_ports, "FIRST-LAST: public ports for leases (default: any free port)");
  onenode_cmd->add_flag("--no-gateway", on.no_gateway, "run without the gateway (leases' ports stay on providers' machines)");
  onenode_cmd->callback([&] {
    action = [&] {
      ShutdownSignals signals;
      auto config = onenode_config(on);
      if (!config) return report(config.error(), false);
      onenode::OneNode node(*config);
      auto url = node.start();
      if (!url) return report(url.error(), false);
      announce(*url);
      spdlog::info("OneNode serving {} with data in {}", *url, config->data_dir);
      int sig = signals.wait();
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      node.stop();
      spdlog::info("stopped cleanly");
      return kExitOk;
    };
  });

  GatewayArgs& ga = all.gateway;
  auto* gateway_cmd = app.add_subcommand("gateway", "Run a gateway of its own, linked to OneNode (which then runs none)");
  gateway_cmd->add_option("--onenode", ga.onenode, "OneNode's URL")->required();
  gateway_cmd->add_option("--token-file", ga.token_file, "file with the link token (OneNode's gateway_link_token_file)")->required();
  gateway_cmd->add_option("--data", ga.data, "data directory: certificate, key, secret, allocations (default: $XDG_DATA_HOME/kaisar/gateway)");
  gateway_cmd->add_option("--listen", ga.listen, "host the tunnel port and the public ports listen on (default 127.0.0.1)");
  gateway_cmd->add_option("--tunnel-port", ga.tunnel_port, "port agents dial (default: any free port)");
  gateway_cmd->add_option("--public-host", ga.public_host, "host renters and agents reach this gateway at (default: --listen)");
  gateway_cmd->add_option("--ports", ga.ports, "FIRST-LAST: public ports for leases (default: any free port)");
  gateway_cmd->add_option("--cool-down", ga.cool_down, "seconds a freed public port rests (default 300)");
  gateway_cmd->add_option("--handshake-timeout", ga.handshake_timeout,
                          "seconds a tunnel connection has to authenticate, and an HTTP client to send its first request (default 10)");
  gateway_cmd->add_option("--max-connections-per-address", ga.max_connections_per_address,
                          "connections one address may hold to one public port of a lease (default 64)");
  gateway_cmd->callback([&] {
    action = [&] {
      ShutdownSignals signals;
      auto token = store::read_file(ga.token_file, 4096);
      if (!token) return report(Error{ErrorCode::kInvalidArgument, "cannot read the link token from " + ga.token_file}, false);
      std::string link_token = *token;
      while (!link_token.empty() && (link_token.back() == '\n' || link_token.back() == '\r' || link_token.back() == ' ')) {
        link_token.pop_back();
      }
      gateway::GatewayOptions options;
      options.listen_host = ga.listen;
      options.tunnel_port = ga.tunnel_port;
      options.public_host = ga.public_host;
      if (!ga.ports.empty()) {
        auto range = gateway::parse_port_range(ga.ports);
        if (!range) return report(range.error(), false);
        options.first_port = range->first;
        options.last_port = range->second;
      }
      if (ga.cool_down < 0) return report(Error{ErrorCode::kInvalidArgument, "--cool-down cannot be negative"}, false);
      options.cool_down = std::chrono::seconds{ga.cool_down};
      if (ga.handshake_timeout < 1) return report(Error{ErrorCode::kInvalidArgument, "--handshake-timeout must be at least 1"}, false);
      options.handshake_timeout = std::chrono::seconds{ga.handshake_timeout};
      options.max_connections_per_address = ga.max_connections_per_address;
      // Each relayed connection is a descriptor: take what the system allows, not the default 1024.
      rlimit files{};
      if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &files);
      }
      const fs::path dir = ga.data.empty() ? fs::path(xdg_data_dir()) / "gateway" : fs::path(ga.data);
      std::error_code ec;
      fs::create_directories(dir, ec);
      options.certificate = dir / "gateway.crt";
      options.private_key = dir / "gateway.key";
      options.secret = dir / "gateway.secret";
      options.log = [](const std::string& line) { spdlog::info("gateway: {}", line); };
      static const std::vector<store::Migration> kMigrations = {{1, "gateway ports", gateway::Gateway::migration_sql()}};
      auto db = store::open_sqlite((dir / "gateway.db").string(), kMigrations);
      if (!db) return report(db.error(), false);
      auto online = std::make_shared<gateway::OnlineProviders>();
      auto started = gateway::Gateway::start(
          options, [online](const crypto::Address& provider) { return online->contains(provider); }, db->get());
      if (!started) return report(started.error(), false);
      gateway::LinkedGateway linked(
          gateway::LinkOptions{ga.onenode, link_token, std::chrono::milliseconds{500}, std::chrono::milliseconds{30000},
                               [](const std::string& line) { spdlog::info("gateway: {}", line); }},
          **started, online);
      std::thread link([&] { linked.run(); });
      // Scripts and tests read this line.
      std::cout << "gateway tunnels at " << (*started)->tunnel_url() << " sha256 " << (*started)->certificate_sha256()
                << std::endl;
      int sig = signals.wait();
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      linked.stop();
      link.join();
      (*started)->stop();
      return kExitOk;
    };
  });

  auto* provider_cmd = app.add_subcommand("provider", "The provider agent: init, run, status");
  provider_cmd->require_subcommand(1);

  auto* init = provider_cmd->add_subcommand("init", "Create or import the owner wallet and a node key");
  add_client_flags(*init, o);
  init->add_option("--data", pa.data, "agent data directory (default: $XDG_DATA_HOME/kaisar/provider)");
  init->add_flag("--import-wallet", pa.import_wallet, "use the existing keystore given by --wallet as owner");
  init->add_flag("--light-kdf", pa.light_kdf, "faster, weaker scrypt for a new wallet (dev only)");
  init->callback([&] {
    action = [&] { return init_node_identity(o, pa, provider_data_dir(pa), provider::Role::kProvider); };
  });

  auto* run_cmd = provider_cmd->add_subcommand("run", "Detect hardware, register and stay online");
  add_client_flags(*run_cmd, o);
  run_cmd->add_option("--data", pa.data, "agent data directory (default: $XDG_DATA_HOME/kaisar/provider)");
  run_cmd->add_option("--region", pa.region, "declared region shown next to the GeoIP country, e.g. eu-west");
  run_cmd->add_option("--price-gpu-hour", pa.price_gpu_hour, "price per GPU-hour in token base units (1 KAI = 10^18)");
  run_cmd->add_option("--price-cpu-core-hour", pa.price_cpu_core_hour, "price per CPU-core-hour in token base units");
  run_cmd->add_option("--price-ram-gb-hour", pa.price_ram_gb_hour, "price per GB-of-RAM-hour in token base units");
  run_cmd->add_option("--engine-socket", pa.engine_socket,
                      "Docker or Podman API socket for leases' containers (e.g. /run/podman/podman.sock)");
  run_cmd->add_option("--demo-image", pa.demo_image, "root filesystem tarball of localhost/kaisar/demo:latest");
  run_cmd->add_option("--allow-local-image", pa.local_images,
                      "a local image (localhost/NAME:TAG) leases may run, e.g. localhost/kaisar/demo:latest; "
                      "repeat for more (other images come from registries)");
  run_cmd->add_flag("--no-firewall", pa.no_firewall,
                    "run leases even when the host firewall cannot be installed (development only: leases can "
                    "then reach each other and this machine)");
  run_cmd->add_option("--gateway", pa.gateway_url, "the gateway's tunnel URL (wss://HOST:PORT/); default: as OneNode says");
  run_cmd->add_option("--gateway-sha256", pa.gateway_sha256,
                      "SHA-256 of the gateway's certificate to pin (without it: the system's CAs must trust it)");
  run_cmd->add_flag("--insecure-dev", pa.insecure_dev, kInsecureDevHelp);
  run_cmd->callback([&] {
    action = [&] {
      ShutdownSignals signals;
      if (auto secure = net::require_secure_channel(o.onenode, pa.insecure_dev); !secure) return report(secure.error(), false);
      const std::string dir = provider_data_dir(pa);
      auto identity = provider::load_identity(dir);
      if (!identity) return report(identity.error(), false);
      auto hardware = provider::detect_hardware(dir);
      spdlog::info("hardware: {}, {} cores, {} RAM, {} GPU(s)", hardware.cpu_model, hardware.cpu_cores,
                   human_bytes(hardware.ram_bytes), hardware.gpus.size());
      for (const auto& g : hardware.gpus) {
        spdlog::info("  GPU {} {} ({} VRAM, driver {})", g.uuid, g.name, human_bytes(g.vram_bytes), g.driver);
      }
      provider::AgentOptions options;
      options.onenode_url = o.onenode;
      options.insecure_dev = pa.insecure_dev;
      if (!pa.region.empty()) options.region = pa.region;
      options.engine_socket = pa.engine_socket;
      options.gateway_url = pa.gateway_url;
      options.gateway_sha256 = pa.gateway_sha256;
      options.demo_image_tar = pa.demo_image.empty() ? default_demo_image() : pa.demo_image;
      options.local_images.insert(pa.local_images.begin(), pa.local_images.end());
      options.require_firewall = !pa.no_firewall;
      if (options.engine_socket.empty()) {
        spdlog::warn("no --engine-socket: this machine can be listed but runs no containers");
      }
      if (!pa.price_gpu_hour.empty() || !pa.price_cpu_core_hour.empty() || !pa.price_ram_gb_hour.empty()) {
        provider::Prices prices;
        for (auto [flag, text, out] : {std::tuple{"--price-gpu-hour", &pa.price_gpu_hour, &prices.gpu_hour},
                                       std::tuple{"--price-cpu-core-hour", &pa.price_cpu_core_hour, &prices.cpu_core_hour},
                                       std::tuple{"--price-ram-gb-hour", &pa.price_ram_gb_hour, &prices.ram_gb_hour}}) {
          if (text->empty()) continue;
          auto amount = eth::Uint256::from_decimal(*text);
          if (!amount) {
            return report(Error{ErrorCode::kInvalidArgument,
                                std::string(flag) + " must be a whole number of token base units"},
                          false);
          }
          *out = amount->to_decimal();
        }
        options.prices = prices;
      } else {
        spdlog::warn("no prices set (--price-gpu-hour, --price-cpu-core-hour, --price-ram-gb-hour): "
                     "this machine registers but offers nothing for rent");
      }
      provider::Agent agent(options, *identity, hardware);
      std::thread waiter([&] {
        signals.wait();
        agent.stop();
      });
      run_agent(agent);
      pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if run ended first
      waiter.join();
      spdlog::info("agent stopped");
      return kExitOk;
    };
  });

  // The on-chain binding: the owner's transaction carries the node key's EIP-712 signature,
  // so nobody can register a node id whose key they do not hold.
  auto* register_cmd =
      provider_cmd->add_subcommand("register", "Bind this node to its owner wallet on chain (ProviderRegistry)");
  add_client_flags(*register_cmd, o);
  register_cmd->add_option("--data", pa.data, "agent data directory (default: $XDG_DATA_HOME/kaisar/provider)");
  register_cmd->callback([&] {
    action = [&] {
      const std::string dir = provider_data_dir(pa);
      auto identity = provider::load_identity(dir);
      if (!identity) return report(identity.error(), o.json);
      ClientOptions owner = o;
      owner.wallet = (fs::path(dir) / "owner.json").string();
      auto key = unlock_wallet(owner);
      if (!key) return report(key.error(), o.json);
      auto view = chain_view(o);
      if (!view) return report(view.error(), o.json);
      eth::NonceManager nonces(*view->rpc);
      auto bound = chain::register_node(*view->rpc, *key, nonces, view->deployment.registry, identity->node_key);
      if (!bound) return report(bound.error(), o.json);
      json::object out{{"node", identity->node_key.address().to_checksum()},
                       {"owner", key->address().to_checksum()},
                       {"registry", view->deployment.registry.to_checksum()},
                       {"tx", to_hex(bound->transaction_hash)},
                       {"gas_used", bound->gas_used}};
      if (o.json) {
        print_json(out);
      } else {
        std::cout << "node " << identity->node_key.address().to_checksum() << " bound to "
                  << key->address().to_checksum() << " in " << to_hex(bound->transaction_hash) << "\n";
      }
      return kExitOk;
    };
  });

  auto* status_cmd = provider_cmd->add_subcommand("status", "Show this node's registration as OneNode sees it");
  add_client_flags(*status_cmd, o);
  status_cmd->add_option("--data", pa.data, "agent data directory");
  status_cmd->callback([&] {
    action = [&] {
      auto identity = provider::load_identity(provider_data_dir(pa));
      if (!identity) return report(identity.error(), o.json);
      auto r = api_call(o, "GET", "/api/v1/providers/" + identity->node_key.address().to_checksum());
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
      } else {
        const auto& p = r->as_object();
        std::cout << "provider: " << p.at("id").as_string() << "\nowner:    " << p.at("owner").as_string()
                  << "\nstatus:   " << p.at("status").as_string() << "\nlast seen: " << p.at("last_seen").as_string()
                  << "\n";
      }
      return kExitOk;
    };
  });

  auto* checker_cmd = app.add_subcommand("checker", "The checker agent: init, run (Proof of Physical Work)");
  checker_cmd->require_subcommand(1);
  auto* checker_init = checker_cmd->add_subcommand("init", "Create or import the owner wallet and a checker node key");
  add_client_flags(*checker_init, o);
  checker_init->add_option("--data", pa.data, "checker data directory (default: $XDG_DATA_HOME/kaisar/checker)");
  checker_init->add_flag("--import-wallet", pa.import_wallet, "use the existing keystore given by --wallet as owner");
  checker_init->add_flag("--light-kdf", pa.light_kdf, "faster, weaker scrypt for a new wallet (dev only)");
  checker_init->callback([&] {
    action = [&] { return init_node_identity(o, pa, checker_data_dir(pa), provider::Role::kChecker); };
  });
  auto* checker_run = checker_cmd->add_subcommand("run", "Connect to OneNode, take assignments, challenge, verify and attest");
  add_client_flags(*checker_run, o);
  checker_run->add_option("--data", pa.data, "checker data directory (default: $XDG_DATA_HOME/kaisar/checker)");
  checker_run->add_flag("--insecure-dev", pa.insecure_dev, kInsecureDevHelp);
  checker_run->callback([&] {
    action = [&] {
      ShutdownSignals signals;
      if (auto secure = net::require_secure_channel(o.onenode, pa.insecure_dev); !secure) return report(secure.error(), false);
      auto identity = provider::load_identity(checker_data_dir(pa), provider::Role::kChecker);
      if (!identity) return report(identity.error(), false);
      checker::CheckerOptions options;
      options.onenode_url = o.onenode;
      options.insecure_dev = pa.insecure_dev;
      options.dishonest = std::getenv("KAISAR_CHECKER_DISHONEST") != nullptr;  // fault injection (tests)
      checker::Checker c(options, *identity);
      std::thread waiter([&] {
        signals.wait();
        c.stop();
      });
      run_checker(c);
      pthread_kill(waiter.native_handle(), SIGTERM);
      waiter.join();
      spdlog::info("checker stopped");
      return kExitOk;
    };
  });

  auto* dev_cmd = app.add_subcommand("dev", "The whole network on this machine: OneNode and a provider agent");
  dev_cmd->add_option("--listen", dev.listen, "HOST:PORT for OneNode (default 127.0.0.1:8080)");
  dev_cmd->add_option("--data", dev.data, "directory for all state (default .kaisar-dev)");
  dev_cmd->add_option("--heartbeat-interval", dev.heartbeat_interval, "seconds between heartbeats");
  dev_cmd->add_option("--anvil", dev.anvil, "anvil binary (default: the one `make setup` installed, else PATH)");
  dev_cmd->callback([&] {
    action = [&] {
      ShutdownSignals signals;
      OneNodeArgs args = dev;
      const fs::path root = args.data.empty() ? fs::path(".kaisar-dev") : fs::path(args.data);
      args.data = (root / "onenode").string();
      auto config = onenode_config(args);
      if (!config) return report(config.error(), false);
      const fs::path wallets = root / "wallets";
      auto provider_wallet = dev_wallet(wallets, "provider");
      auto renter_wallet = dev_wallet(wallets, "renter");
      auto checker_wallet = dev_wallet(wallets, "checker");
      auto operator_wallet = dev_wallet(wallets, "operator");
      for (auto* w : {&provider_wallet, &renter_wallet, &checker_wallet, &operator_wallet}) {
        if (!*w) return report(w->error(), false);
      }

      // The chain: anvil, the operator funded with gas money; OneNode deploys the contracts.
      auto chain = DevChain::start(find_anvil(args.anvil), root / "chain");
      if (!chain) return report(chain.error(), false);
      {
        chain::HttpRpcTransport transport((*chain)->url());
        eth::RpcClient rpc(transport);
        const eth::Uint256 gas_money = eth::Uint256(10000) * 1000000000000000000ULL;
        auto funded = rpc.request("anvil_setBalance",
                                  json::array{operator_wallet->address().to_lower_hex(), gas_money.to_hex()});
        if (!funded) return report(funded.error(), false);
      }
      config->rpc_url = (*chain)->url();
      config->chain_id = 31337;
      config->operator_keystore = (wallets / "operator.json").string();
      config->operator_password_file = (wallets / "operator.password").string();
      config->deploy_contracts = true;
      config->faucet = true;
      if (args.config_file.empty()) dev_check_settings(*config);

      const std::string provider_dir = (root / "provider").string();
      auto pw = read_password((wallets / "provider.password").string(), false);
      if (!pw) return report(pw.error(), false);
      if (!fs::exists(fs::path(provider_dir) / "node.key")) {
        auto initialized = provider::init_identity(provider_dir, *provider_wallet, *pw, false, crypto::kLightScrypt);
        if (!initialized) return report(initialized.error(), false);
      }
      auto identity = provider::load_identity(provider_dir);
      if (!identity) return report(identity.error(), false);
      const std::string checker_dir = (root / "checker").string();
      auto checker_pw = read_password((wallets / "checker.password").string(), false);
      if (!checker_pw) return report(checker_pw.error(), false);
      if (!fs::exists(fs::path(checker_dir) / "node.key")) {
        auto initialized = provider::init_identity(checker_dir, *checker_wallet, *checker_pw, false, crypto::kLightScrypt,
                                                   provider::Role::kChecker);
        if (!initialized) return report(initialized.error(), false);
      }
      auto checker_identity = provider::load_identity(checker_dir, provider::Role::kChecker);
      if (!checker_identity) return report(checker_identity.error(), false);

      onenode::OneNode node(*config);
      auto url = node.start();
      if (!url) return report(url.error(), false);
      announce(*url);
      for (auto* w : {&renter_wallet, &provider_wallet, &checker_wallet}) {
        if (auto f = node.faucet((*w)->address()); !f) spdlog::warn("faucet: {}", f.error().message);
      }
      provider::AgentOptions agent_options;
      agent_options.onenode_url = *url;
      agent_options.insecure_dev = true;  // the dev network is this machine
      agent_options.region = "dev";
      // Dev prices: 0.5 KAI per GPU-hour, 0.01 per core-hour, 0.002 per GB-hour.
      agent_options.prices = provider::Prices{"500000000000000000", "10000000000000000", "2000000000000000"};
      agent_options.demo_image_tar = default_demo_image();
      agent_options.local_images = {"localhost/kaisar/demo:latest"};
      agent_options.require_firewall = false;  // a developer's machine: warned about at start
      std::unique_ptr<DevEngine> engine;
      if (auto started = DevEngine::start(root / "engine")) {
        engine = std::move(*started);
        agent_options.engine_socket = engine->socket();
        // The demo image is in the engine before anyone rents, so the first rent is as
        // quick as the next.
        if (auto present = engine->import_demo_image(agent_options.demo_image_tar); !present) {
          spdlog::warn("the demo image is not in the dev engine ({}); the first rent imports it", present.error().message);
        }
      } else {
        spdlog::warn("no container engine for the dev provider: {}", started.error().message);
      }
      provider::Agent agent(agent_options, *identity, provider::detect_hardware(provider_dir));
      std::thread agent_thread([&] { run_agent(agent); });
      checker::CheckerOptions checker_options;
      checker_options.onenode_url = *url;
      checker_options.insecure_dev = true;
      checker::Checker checker_agent(checker_options, *checker_identity);
      std::thread checker_thread([&] { run_checker(checker_agent); });

      std::cout << "\nKaisar dev network is up.\n"
                << "  API:          " << *url << "/api/v1/status\n"
                << "  OpenAPI:      " << *url << "/api/v1/openapi.json\n"
                << "  live events:  " << *url << "/api/v1/events\n"
                << "  metrics:      " << *url << "/metrics\n"
                << "  provider:     " << identity->node_key.address().to_checksum() << " (data " << provider_dir << ")\n"
                << "  checker:      " << checker_identity->node_key.address().to_checksum() << " (data " << checker_dir
                << "; checks a new provider within 30 s, epochs of 60 s)\n"
                << "  epochs:       " << *url << "/api/v1/epochs\n"
                << "  chain:        " << (*chain)->url() << " (anvil, chain id 31337; contracts in "
                << (fs::path(config->data_dir) / "contracts.json").string() << ")\n"
                << "  wallets:      " << wallets.string()
                << "/{renter,provider,checker}.json with .password files (faucet: 100 ETH, +1,000 KAI each start)\n"
                << "                renter   " << renter_wallet->address().to_checksum() << "\n"
                << "                provider " << provider_wallet->address().to_checksum() << "\n"
                << "                checker  " << checker_wallet->address().to_checksum() << "\n"
                << "Try:\n"
                << "  kaisar providers --onenode " << *url << "\n"
                << "  kaisar login --onenode " << *url << " --wallet " << (wallets / "renter.json").string()
                << " --password-file " << (wallets / "renter.password").string() << "\n"
                << "  kaisar wallet balance --onenode " << *url << " --wallet " << (wallets / "renter.json").string()
                << "\n"
                << "Press Ctrl-C to stop.\n"
                << std::flush;
      int sig = signals.wait();
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      checker_agent.stop();
      checker_thread.join();
      agent.stop();
      agent_thread.join();
      node.stop();
      spdlog::info("stopped cleanly");
      return kExitOk;
    };
  });
}

}  // namespace kaisar::cli
