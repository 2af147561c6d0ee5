#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chain/contracts.hpp"
#include "chain/http_transport.hpp"
#include "core/error.hpp"
#include "eth/rpc.hpp"
#include "crypto/secp256k1.hpp"
#include "net/http.hpp"

namespace kaisar::cli {

// Exit codes scripts can rely on (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAuth = 3;         // not signed in, bad password, refused credentials
inline constexpr int kExitNotFound = 4;
inline constexpr int kExitUnavailable = 5;  // OneNode unreachable or not ready
inline constexpr int kExitConflict = 6;

int exit_code_for(ErrorCode code);
// Prints "error: <message>" to stderr (or {"error":…} to stdout with --json) and returns
// the matching exit code.
int report(const Error& error, bool json);

// Options every client command takes (flags, else KAISAR_* environment, else defaults).
struct ClientOptions {
  std::string onenode;        // --onenode / KAISAR_ONENODE / http://127.0.0.1:8080
  std::string wallet;         // --wallet / KAISAR_WALLET / <data>/wallet.json
  std::string password_file;  // --password-file / (KAISAR_PASSWORD holds the password itself)
  bool json = false;
  void resolve();
};

// OneNode's chain (GET /api/v1/chain), checked against the RPC node it names.
struct ChainView {
  chain::Deployment deployment;
  std::unique_ptr<chain::HttpRpcTransport> transport;
  std::unique_ptr<eth::RpcClient> rpc;
};
Result<ChainView> chain_view(const ClientOptions& options);

std::string xdg_data_dir();    // $XDG_DATA_HOME/kaisar or ~/.local/share/kaisar
std::string xdg_config_dir();  // $XDG_CONFIG_HOME/kaisar or ~/.config/kaisar

// The wallet password: --password-file, else $KAISAR_PASSWORD, else a prompt on the
// terminal (twice when `confirm`). Fails when none is available (no terminal).
Result<std::string> read_password(const std::string& password_file, bool confirm);
Result<crypto::PrivateKey> unlock_wallet(const ClientOptions& options);

// Calls the OneNode API; turns a non-2xx answer into its {"error"} as an Error.
Result<boost::json::value> api_call(const ClientOptions& options, std::string_view method, std::string_view path,
                                    const boost::json::value* body = nullptr, bool authenticated = false,
                                    const net::Headers& extra_headers = {});

// Bearer tokens saved by `kaisar login`, per OneNode URL, in <config>/sessions.json (0600).
std::optional<std::string> saved_token(const std::string& onenode);
Result<void> save_token(const std::string& onenode, const std::string& token, const std::string& address,
                        const std::string& expires_at);
Result<void> forget_token(const std::string& onenode);

// Prints rows as an aligned table with a header.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
void print_json(const boost::json::value& v);
std::string human_bytes(std::uint64_t bytes);

}  // namespace kaisar::cli
