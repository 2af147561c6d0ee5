#include "onenode/config.hpp"

#include <charconv>
#include <toml++/toml.h>

namespace kaisar::onenode {

Result<OneNodeConfig> OneNodeConfig::load_toml(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return fail(ErrorCode::kInvalidArgument,
                "config " + path + ": " + std::string(e.description()) + " at line " +
                    std::to_string(e.source().begin.line));
  }
  OneNodeConfig c;
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    auto want_string = [&](std::string& out) -> Result<void> {
      if (auto v = node.value<std::string>()) { out = *v; return {}; }
      return fail(ErrorCode::kInvalidArgument, "config " + path + ": " + k + " must be a string");
    };
    auto want_int = [&](auto& out) -> Result<void> {
      auto v = node.value<std::int64_t>();
      if (!v || *v < 0) return fail(ErrorCode::kInvalidArgument, "config " + path + ": " + k + " must be a non-negative integer");
      out = static_cast<std::remove_reference_t<decltype(out)>>(*v);
      return {};
    };
    auto want_seconds = [&](std::chrono::seconds& out) -> Result<void> {
      auto v = node.value<std::int64_t>();
      if (!v || *v <= 0) return fail(ErrorCode::kInvalidArgument, "config " + path + ": " + k + " must be a positive number of seconds");
      out = std::chrono::seconds{*v};
      return {};
    };
    auto want_bool = [&](bool& out) -> Result<void> {
      if (auto v = node.value<bool>()) { out = *v; return {}; }
      return fail(ErrorCode::kInvalidArgument, "config " + path + ": " + k + " must be true or false");
    };
    Result<void> r;
    if (k == "listen") r = want_string(c.listen);
    else if (k == "data_dir") r = want_string(c.data_dir);
    else if (k == "public_url") r = want_string(c.public_url);
    else if (k == "geoip_database") r = want_string(c.geoip_database);
    else if (k == "chain_id") r = want_int(c.chain_id);
    else if (k == "rpc_url") r = want_string(c.rpc_url);
    else if (k == "wallet_rpc_url") r = want_string(c.wallet_rpc_url);
    else if (k == "operator_keystore") r = want_string(c.operator_keystore);
    else if (k == "operator_password_file") r = want_string(c.operator_password_file);
    else if (k == "contracts_file") r = want_string(c.contracts_file);
    else if (k == "deploy_contracts") r = want_bool(c.deploy_contracts);
    else if (k == "payment_token") r = want_string(c.payment_token);
    else if (k == "confirmations") r = want_int(c.confirmations);
    else if (k == "faucet") r = want_bool(c.faucet);
    else if (k == "payment_timeout") r = want_seconds(c.payment_timeout);
    else if (k == "gateway") r = want_bool(c.gateway);
    else if (k == "gateway_listen") r = want_string(c.gateway_listen);
    else if (k == "gateway_tunnel_port") {
      std::uint64_t port = 0;
      r = want_int(port);
      if (r && port > 65535) r = fail(ErrorCode::kInvalidArgument, "config " + path + ": gateway_tunnel_port must be 0 to 65535");
      c.gateway_tunnel_port = static_cast<std::uint16_t>(port);
    }
    else if (k == "gateway_public_host") r = want_string(c.gateway_public_host);
    else if (k == "gateway_ports") r = want_string(c.gateway_ports);
    else if (k == "gateway_cool_down") r = want_seconds(c.gateway_cool_down);
    else if (k == "gateway_link_token_file") r = want_string(c.gateway_link_token_file);
    else if (k == "checks") r = want_bool(c.checks);
    else if (k == "check_interval") r = want_seconds(c.check_interval);
    else if (k == "first_check_within") r = want_seconds(c.first_check_within);
    else if (k == "check_target") {
      auto v = node.value<double>();
      if (!v || *v <= 0 || *v > 3600) r = fail(ErrorCode::kInvalidArgument, "config " + path + ": check_target must be 0 to 3600 seconds");
      else c.check_target = *v;
    }
    else if (k == "check_matrix_n") r = want_int(c.check_matrix_n);
    else if (k == "check_samples") r = want_int(c.check_samples);
    else if (k == "check_memory_bytes") r = want_int(c.check_memory_bytes);
    else if (k == "check_redundancy") {
      auto v = node.value<double>();
      if (!v || *v < 0 || *v > 1) r = fail(ErrorCode::kInvalidArgument, "config " + path + ": check_redundancy must be 0 to 1");
      else c.check_redundancy = *v;
    }
    else if (k == "check_timeout") r = want_seconds(c.check_timeout);
    else if (k == "check_allowance_ms") {
      r = want_int(c.check_allowance_ms);
      if (r && c.check_allowance_ms > 600000) r = fail(ErrorCode::kInvalidArgument, "config " + path + ": check_allowance_ms must be at most 600000");
    }
    else if (k == "epoch_length") r = want_seconds(c.epoch_length);
    else if (k == "lease_probe_interval") {  // 0: off
      std::int64_t seconds = 0;
      r = want_int(seconds);
      if (r) c.lease_probe_interval = std::chrono::seconds{seconds};
    }
    else if (k == "epoch_reward") r = want_string(c.epoch_reward);
    else if (k == "check_reward_cap") r = want_string(c.check_reward_cap);
    else if (k == "fund_rewards") r = want_bool(c.fund_rewards);
    else if (k == "body_limit") r = want_int(c.body_limit);
    else if (k == "threads") r = want_int(c.threads);
    else if (k == "heartbeat_interval") r = want_seconds(c.heartbeat_interval);
    else if (k == "offline_after") r = want_seconds(c.offline_after);
    else if (k == "nonce_ttl") r = want_seconds(c.nonce_ttl);
    else if (k == "session_ttl") r = want_seconds(c.session_ttl);
    else if (k == "max_connections") r = want_int(c.max_connections);
    else if (k == "max_connections_per_address") r = want_int(c.max_connections_per_address);
    else if (k == "max_event_streams") r = want_int(c.max_event_streams);
    else if (k == "max_event_streams_per_address") r = want_int(c.max_event_streams_per_address);
    else if (k == "max_websockets") r = want_int(c.max_websockets);
    else if (k == "max_websockets_per_address") r = want_int(c.max_websockets_per_address);
    else if (k == "admission_reserve") r = want_int(c.admission_reserve);
    else if (k == "websocket_hello_limit") {
      r = want_int(c.websocket_hello_limit);
      if (r && (c.websocket_hello_limit < 1024 || c.websocket_hello_limit > (1 << 20))) {
        r = fail(ErrorCode::kInvalidArgument, "config " + path + ": websocket_hello_limit must be 1024 to 1048576 bytes");
      }
    }
    else if (k == "log_streams_per_renter") r = want_int(c.log_streams_per_renter);
    else if (k == "log_streams_per_lease") r = want_int(c.log_streams_per_lease);
    else r = fail(ErrorCode::kInvalidArgument, "config " + path + ": unknown key \"" + k + "\"");
    if (!r) return std::unexpected(r.error());
  }
  return c;
}

Result<std::pair<std::string, std::uint16_t>> OneNodeConfig::split_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return fail(ErrorCode::kInvalidArgument, "listen address \"" + listen + "\" must be HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto digits = std::string_view(listen).substr(colon + 1);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc{} || p != digits.data() + digits.size() || port > 65535) {
    return fail(ErrorCode::kInvalidArgument, "listen address \"" + listen + "\" has a bad port (0-65535)");
  }
  return std::pair{host, static_cast<std::uint16_t>(port)};
}

}  // namespace kaisar::onenode
