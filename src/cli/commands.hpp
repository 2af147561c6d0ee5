#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "cli/common.hpp"

namespace kaisar::cli {

// What the flags of each command are parsed into; one instance lives in run() for the
// whole parse-and-execute cycle.
struct WalletArgs {
  std::string key_file;
  std::string address;  // wallet balance --address
  std::string lease;    // pay --lease
  std::string amount;   // pay --amount
  std::int64_t locked_until = 0;  // pay --locked-until (unix seconds)
  bool force = false;
  bool light_kdf = false;
};

struct OneNodeArgs {
  std::string config_file;
  std::string listen;
  std::string data;
  std::string public_url;
  std::uint64_t chain_id = 0;
  std::int64_t heartbeat_interval = 0;
  std::int64_t offline_after = 0;
  std::size_t threads = 0;
  std::string rpc_url;
  std::string operator_keystore;
  std::string operator_password_file;
  std::string contracts_file;
  bool deploy_contracts = false;
  std::uint64_t confirmations = 0;
  std::string gateway_tunnel_port;  // "" or a port
  std::string gateway_public_host;
  std::string gateway_ports;
  bool no_gateway = false;
  std::string anvil;  // dev: the anvil binary
};

struct GatewayArgs {
  std::string onenode;
  std::string token_file;
  std::string data;
  std::string listen = "127.0.0.1";
  std::uint16_t tunnel_port = 0;
  std::string public_host;
  std::string ports;
  std::int64_t cool_down = 300;
  std::int64_t handshake_timeout = 10;
  std::size_t max_connections_per_address = 64;
};

struct ProviderArgs {
  std::string data;
  std::string region;
  std::string price_gpu_hour;       // token base units
  std::string price_cpu_core_hour;
  std::string price_ram_gb_hour;
  std::string engine_socket;   // Docker/Podman API socket
  std::string gateway_url;     // override of the gateway tunnel's URL
  std::string gateway_sha256;  // and its certificate pin
  std::string demo_image;      // demo image tarball
  bool insecure_dev = false;   // plain http:// OneNode off this machine
  std::vector<std::string> local_images;  // --allow-local-image
  bool no_firewall = false;
  bool import_wallet = false;
  bool light_kdf = false;
};

struct OffersArgs {
  std::string query;
  std::string sort;
  std::uint32_t limit = 0;  // 0: OneNode's default (100)
};

struct RentArgs {
  std::string offer;
  std::string query;  // instead of --offer: OneNode places the lease
  std::string image;
  std::uint32_t gpus = 0;
  std::string gpu_model;
  std::uint32_t cpus = 1;
  std::uint32_t memory_gb = 1;
  std::uint32_t hours = 1;
  std::vector<std::string> ports;  // PORT, PORT/tcp, PORT/http or PORT/public
  std::vector<std::string> env;
  std::string ssh_key_file;
  std::string lease_id;  // lease show
  std::vector<std::string> ssh_args;  // ssh ID -- ARGS
  std::uint32_t extend_hours = 1;     // lease extend
  bool follow = false;                // lease logs -f
  std::uint32_t wait_seconds = 120;
};

struct CommandArgs {
  ClientOptions client;
  OffersArgs offers;
  RentArgs rent;
  WalletArgs wallet;
  std::string status_filter;
  OneNodeArgs onenode;
  OneNodeArgs dev;
  ProviderArgs provider;
  GatewayArgs gateway;
};

// Each registers its subcommands on `app`; `action` receives the command to run after
// parsing (so that main decides about exit codes in one place).
using Action = std::function<int()>;
void add_wallet_commands(CLI::App& app, CommandArgs& args, Action& action);
// wallet balance | faucet (the wallet's side of the chain).
void add_wallet_chain_commands(CLI::App& wallet, CommandArgs& args, Action& action);
// pay --lease ID --amount N: the renter's deposit into the escrow.
void add_pay_command(CLI::App& app, CommandArgs& args, Action& action);
void add_reclaim_command(CLI::App& app, CommandArgs& args, Action& action);
void add_rewards_command(CLI::App& app, CommandArgs& args, Action& action);
void add_client_commands(CLI::App& app, CommandArgs& args, Action& action);
void add_node_commands(CLI::App& app, CommandArgs& args, Action& action);

// Adds --onenode, --wallet, --password-file and --json to a client command.
void add_client_flags(CLI::App& cmd, ClientOptions& options);

}  // namespace kaisar::cli
