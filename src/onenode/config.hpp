#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace kaisar::onenode {

struct OneNodeConfig {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string data_dir = "kaisar-data";
  // The URL users reach this OneNode at; its authority is the SIWE domain.
  // Empty: http://<bound listen address>.
  std::string public_url;
  std::uint64_t chain_id = 31337;
  std::size_t body_limit = 1 << 20;
  std::size_t threads = 2;
  std::chrono::seconds heartbeat_interval{5};
  // A provider is offline once no heartbeat arrived for this long (3 heartbeats).
  std::chrono::seconds offline_after{15};
  std::chrono::seconds nonce_ttl{600};
  std::chrono::seconds session_ttl{std::chrono::hours{24}};
  // What clients may hold open before signing in (docs/operators.md): caps in all and per
  // client address (0: none); `admission_reserve` of each cap is kept for /healthz and
  // signed-in requests, so that anonymous peers cannot take every slot.
  std::size_t max_connections = 16384;
  std::size_t max_connections_per_address = 256;
  std::size_t max_event_streams = 4096;
  std::size_t max_event_streams_per_address = 32;
  std::size_t max_websockets = 16384;
  std::size_t max_websockets_per_address = 256;
  std::size_t admission_reserve = 32;
  // Largest WebSocket message before the peer's hello is verified (then 16 MiB).
  std::size_t websocket_hello_limit = 16 << 10;
  // Concurrent log streams per renter and per lease.
  std::size_t log_streams_per_renter = 8;
  std::size_t log_streams_per_lease = 4;
  std::string geoip_database = "/usr/share/GeoIP/GeoIP.dat";

  // Settlement on an EVM chain. Empty rpc_url: no chain (sign-in and the registry only).
  std::string rpc_url;
  std::string wallet_rpc_url;          // what wallets are told to use; default rpc_url
  std::string operator_keystore;       // keystore v3 of the operator key (used by the outbox only)
  std::string operator_password_file;  // its password
  // Contract addresses (JSON as written by a deployment); default DATA/contracts.json.
  std::string contracts_file;
  bool deploy_contracts = false;       // deploy when contracts_file does not exist yet
  std::string payment_token;           // an existing ERC-20 to deploy with instead of KaiToken
  std::uint64_t confirmations = 1;     // blocks holding a write or log before it is final
  bool faucet = false;                 // POST /api/v1/faucet (dev chains only)
  // A lease not paid within this time is failed and its capacity freed.
  std::chrono::seconds payment_timeout{900};

  // The gateway (in this process): agents' tunnels and leases' public ports.
  bool gateway = true;
  std::string gateway_listen;        // host its ports listen on; default the listen host
  std::uint16_t gateway_tunnel_port = 0;  // where agents dial (wss); 0 picks a free one
  std::string gateway_public_host;   // how renters and agents reach it; default public_url's host
  std::string gateway_ports;         // "FIRST-LAST" for leases' public ports; empty: any free port
  std::chrono::seconds gateway_cool_down{300};
  // A file holding the token of a `kaisar gateway` process: with it OneNode runs no gateway
  // of its own and takes that one's link (GET /api/v1/gateway/link) instead.
  std::string gateway_link_token_file;

  // Proof of Physical Work (docs/checkers.md): how often each online provider is checked
  // (a random time with this mean; the first check within first_check_within of it coming
  // online), what the work is sized to (check_target seconds on the claimed hardware, or
  // check_matrix_n when set), the audit's sample count, the memory phase's size (0: 90 % of
  // the claimed GPU memory, 256 MiB on CPU-only machines), the share of checks a second
  // checker verifies, and how long a checker has to attest.
  bool checks = true;
  std::chrono::seconds check_interval{3600};
  std::chrono::seconds first_check_within{300};
  double check_target = 5.0;
  std::uint32_t check_matrix_n = 0;
  std::uint32_t check_samples = 128;
  std::uint64_t check_memory_bytes = 0;
  double check_redundancy = 0.1;
  std::uint32_t check_allowance_ms = 250;  // time granted per phase for relaying and scheduling
  std::chrono::seconds check_timeout{600};
  // Epochs: every epoch_length the attestations and uptime records form one Merkle tree
  // whose root goes on chain (EpochLog), and epoch_reward token base units are shared out
  // (RewardDistributor). fund_rewards: OneNode mints the pool into the distributor (dev
  // chains, whose token the operator owns).
  std::chrono::seconds epoch_length{3600};
  // How often OneNode probes each running lease's first exposed port through the gateway
  // (LeaseProbe); a lease whose container does not answer earns no job time. 0: off.
  std::chrono::seconds lease_probe_interval{60};
  std::string epoch_reward = "0";
  // The most one check (an attestation OneNode's judgement agrees with) earns its checker,
  // base units; checkers together get at most a fifth of the pool (docs/checkers.md).
  std::string check_reward_cap = "100000000000000000";
  bool fund_rewards = false;

  // Reads a TOML file; keys are the field names above (durations in seconds).
  static Result<OneNodeConfig> load_toml(const std::string& path);
  // "host:port" → pieces; the error says what is wrong.
  static Result<std::pair<std::string, std::uint16_t>> split_listen(const std::string& listen);
};

}  // namespace kaisar::onenode
