#include "cli/cli.hpp"

#include <sys/resource.h>

#include <iostream>

#include "cli/commands.hpp"

namespace kaisar::cli {

void add_client_flags(CLI::App& cmd, ClientOptions& options) {
  cmd.add_option("--onenode", options.onenode, "OneNode URL (env KAISAR_ONENODE; default http://127.0.0.1:8080)");
  cmd.add_option("--wallet", options.wallet, "wallet keystore file (env KAISAR_WALLET)");
  cmd.add_option("--password-file", options.password_file, "file holding the wallet password (or env KAISAR_PASSWORD)");
  cmd.add_flag("--json", options.json, "print JSON instead of a table");
}

int run(int argc, char** argv) {
  // Servers hold many sockets: take the whole file-descriptor allowance the system grants.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  CLI::App app{"kaisar — decentralized GPU compute network", "kaisar"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kaisar " KAISAR_VERSION);
  CommandArgs args;
  ClientOptions& options = args.client;
  Action action;
  add_wallet_commands(app, args, action);
  add_client_commands(app, args, action);
  add_node_commands(app, args, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  options.resolve();
  if (!action) return kExitUsage;
  try {
    return action();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace kaisar::cli
