// Long-running roles: onenode, provider init|run|status, dev.
#include <pthread.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "crypto/keystore.hpp"
#include "crypto/random.hpp"
#include "onenode/onenode.hpp"
#include "provider/agent.hpp"
#include "provider/identity.hpp"
#include "provider/inventory.hpp"
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
  return c;
}

std::string provider_data_dir(const ProviderArgs& a) {
  return a.data.empty() ? (fs::path(xdg_data_dir()) / "provider").string() : a.data;
}

// Runs the agent until `stop` is called; logs to stderr.
void run_agent(provider::Agent& agent) {
  agent.log = [](const std::string& line) { spdlog::info("agent: {}", line); };
  agent.run();
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

  auto* provider_cmd = app.add_subcommand("provider", "The provider agent: init, run, status");
  provider_cmd->require_subcommand(1);

  auto* init = provider_cmd->add_subcommand("init", "Create or import the owner wallet and a node key");
  add_client_flags(*init, o);
  init->add_option("--data", pa.data, "agent data directory (default: $XDG_DATA_HOME/kaisar/provider)");
  init->add_flag("--import-wallet", pa.import_wallet, "use the existing keystore given by --wallet as owner");
  init->add_flag("--light-kdf", pa.light_kdf, "faster, weaker scrypt for a new wallet (dev only)");
  init->callback([&] {
    action = [&] {
      const std::string dir = provider_data_dir(pa);
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
                                       pa.light_kdf ? crypto::kLightScrypt : crypto::ScryptParams{});
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(json::object{{"owner", r->owner.to_checksum()},
                                {"node", r->node.to_checksum()},
                                {"data", dir},
                                {"created_wallet", r->created_wallet}});
      } else {
        std::cout << (r->created_wallet ? "created" : "using") << " owner wallet " << r->owner.to_checksum() << "\n"
                  << "node key " << r->node.to_checksum() << " bound to it\n"
                  << "data: " << dir << "\n"
                  << "next: kaisar provider run --data " << dir << " --onenode URL\n";
      }
      return kExitOk;
    };
  });

  auto* run_cmd = provider_cmd->add_subcommand("run", "Detect hardware, register and stay online");
  add_client_flags(*run_cmd, o);
  run_cmd->add_option("--data", pa.data, "agent data directory (default: $XDG_DATA_HOME/kaisar/provider)");
  run_cmd->add_option("--region", pa.region, "declared region shown next to the GeoIP country, e.g. eu-west");
  run_cmd->callback([&] {
    action = [&] {
      ShutdownSignals signals;
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
      if (!pa.region.empty()) options.region = pa.region;
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

  auto* dev_cmd = app.add_subcommand("dev", "The whole network on this machine: OneNode and a provider agent");
  dev_cmd->add_option("--listen", dev.listen, "HOST:PORT for OneNode (default 127.0.0.1:8080)");
  dev_cmd->add_option("--data", dev.data, "directory for all state (default .kaisar-dev)");
  dev_cmd->add_option("--heartbeat-interval", dev.heartbeat_interval, "seconds between heartbeats");
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
      if (!provider_wallet) return report(provider_wallet.error(), false);
      if (!renter_wallet) return report(renter_wallet.error(), false);

      const std::string provider_dir = (root / "provider").string();
      auto pw = read_password((wallets / "provider.password").string(), false);
      if (!pw) return report(pw.error(), false);
      if (!fs::exists(fs::path(provider_dir) / "node.key")) {
        auto initialized = provider::init_identity(provider_dir, *provider_wallet, *pw, false, crypto::kLightScrypt);
        if (!initialized) return report(initialized.error(), false);
      }
      auto identity = provider::load_identity(provider_dir);
      if (!identity) return report(identity.error(), false);

      onenode::OneNode node(*config);
      auto url = node.start();
      if (!url) return report(url.error(), false);
      announce(*url);
      provider::AgentOptions agent_options;
      agent_options.onenode_url = *url;
      agent_options.region = "dev";
      provider::Agent agent(agent_options, *identity, provider::detect_hardware(provider_dir));
      std::thread agent_thread([&] { run_agent(agent); });

      std::cout << "\nKaisar dev network is up.\n"
                << "  API:          " << *url << "/api/v1/status\n"
                << "  OpenAPI:      " << *url << "/api/v1/openapi.json\n"
                << "  live events:  " << *url << "/api/v1/events\n"
                << "  metrics:      " << *url << "/metrics\n"
                << "  provider:     " << identity->node_key.address().to_checksum() << " (data " << provider_dir << ")\n"
                << "  wallets:      " << wallets.string() << "/{renter,provider}.json with .password files\n"
                << "                renter   " << renter_wallet->address().to_checksum() << "\n"
                << "                provider " << provider_wallet->address().to_checksum() << "\n"
                << "Try:\n"
                << "  kaisar providers --onenode " << *url << "\n"
                << "  kaisar login --onenode " << *url << " --wallet " << (wallets / "renter.json").string()
                << " --password-file " << (wallets / "renter.password").string() << "\n"
                << "Press Ctrl-C to stop.\n"
                << std::flush;
      int sig = signals.wait();
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      agent.stop();
      agent_thread.join();
      node.stop();
      spdlog::info("stopped cleanly");
      return kExitOk;
    };
  });
}

}  // namespace kaisar::cli
