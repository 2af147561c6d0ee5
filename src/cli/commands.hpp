#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/common.hpp"

namespace kaisar::cli {

// Each registers its subcommands on `app`; `action` receives the command to run after
// parsing (so that main decides about exit codes in one place).
using Action = std::function<int()>;
void add_wallet_commands(CLI::App& app, ClientOptions& options, Action& action);
void add_client_commands(CLI::App& app, ClientOptions& options, Action& action);
void add_node_commands(CLI::App& app, ClientOptions& options, Action& action);

// Adds --onenode, --wallet, --password-file and --json to a client command.
void add_client_flags(CLI::App& cmd, ClientOptions& options);

}  // namespace kaisar::cli
