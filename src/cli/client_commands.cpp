// Wallet and client commands: wallet new|import|address, login, logout, providers, status.
#include <charconv>
#include <unistd.h>

#include <boost/json.hpp>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <thread>

#include "chain/contracts.hpp"
#include "chain/http_transport.hpp"
#include "chain/payments.hpp"
#include "cli/commands.hpp"
#include "net/client.hpp"
#include "crypto/random.hpp"
#include "onenode/query.hpp"
#include "crypto/eip191.hpp"
#include "crypto/keystore.hpp"
#include "store/files.hpp"

namespace kaisar::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

int write_wallet(const ClientOptions& o, const crypto::PrivateKey& key, const WalletArgs& args, bool created) {
  if (fs::exists(o.wallet) && !args.force) {
    return report(Error{ErrorCode::kConflict, o.wallet + " already exists; pass --force to replace it"}, o.json);
  }
  auto password = read_password(o.password_file, true);
  if (!password) return report(password.error(), o.json);
  auto keystore = crypto::keystore_encrypt(key, *password, args.light_kdf ? crypto::kLightScrypt : crypto::ScryptParams{});
  if (auto w = store::write_file_atomic(o.wallet, keystore, 0600); !w) return report(w.error(), o.json);
  if (o.json) {
    print_json(json::object{{"address", key.address().to_checksum()}, {"keystore", o.wallet}, {"created", created}});
  } else {
    std::cout << (created ? "created" : "imported") << " wallet " << key.address().to_checksum() << "\n"
              << "keystore: " << o.wallet << "\n";
  }
  return kExitOk;
}

std::string field(const json::value& v, std::string_view key) {
  if (!v.is_object()) return {};
  auto* f = v.as_object().if_contains(key);
  if (f == nullptr) return {};
  if (f->is_string()) return std::string(f->as_string());
  if (f->is_null()) return "-";
  return json::serialize(*f);
}

// How to reach a running lease: through the gateway, or on the provider's loopback when
// this OneNode runs none.
void print_endpoints(const json::value& lease) {
  bool token_needed = false;
  for (const auto& ep : lease.at("endpoints").as_array()) {
    const std::string port = field(ep, "port");
    if (!ep.as_object().contains("public_port")) {
      const std::string host_port = field(ep, "host_port");
      if (port == "22") std::cout << "  ssh:  ssh -p " << host_port << " root@127.0.0.1   (on the provider's machine)\n";
      else std::cout << "  port " << port << ": http://127.0.0.1:" << host_port << "/   (on the provider's machine)\n";
      continue;
    }
    if (field(ep, "protocol") == "tcp") {
      if (port == "22") std::cout << "  ssh:  " << field(ep, "ssh") << "\n";
      else std::cout << "  port " << port << ": tcp " << field(ep, "address") << "\n";
    } else {
      const bool open = field(ep, "open") == "true";
      token_needed = token_needed || !open;
      std::cout << "  port " << port << ": " << field(ep, "url") << (open ? "   (open to anyone)" : "") << "\n";
    }
  }
  if (token_needed) {
    std::cout << "  access token: " << field(lease, "access_token")
              << "   (HTTP ports need it: Authorization: Bearer <token>, or ?kaisar_token=<token>)\n";
  }
}

}  // namespace

void add_wallet_commands(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  WalletArgs& args = all.wallet;
  auto* wallet = app.add_subcommand("wallet", "Create, import and show wallets (keystore v3 files)");
  wallet->require_subcommand(1);

  auto* create = wallet->add_subcommand("new", "Create a wallet; the keystore goes to --wallet");
  add_client_flags(*create, o);
  create->add_flag("--force", args.force, "replace an existing keystore");
  create->add_flag("--light-kdf", args.light_kdf, "faster, weaker scrypt (for throw-away dev wallets)");
  create->callback([&] { action = [&] { return write_wallet(o, crypto::PrivateKey::generate(), args, true); }; });

  auto* import = wallet->add_subcommand("import", "Import a private key (hex) from --key-file or standard input");
  add_client_flags(*import, o);
  import->add_option("--key-file", args.key_file, "file holding the private key as hex (default: read stdin)");
  import->add_flag("--force", args.force, "replace an existing keystore");
  import->add_flag("--light-kdf", args.light_kdf, "faster, weaker scrypt (for throw-away dev wallets)");
  import->callback([&] {
    action = [&] {
      std::string text;
      if (!args.key_file.empty()) {
        auto r = store::read_file(args.key_file, 4096);
        if (!r) return report(r.error(), o.json);
        text = *r;
      } else {
        std::getline(std::cin, text);
      }
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
      auto key = crypto::PrivateKey::from_hex(text);
      if (!key) return report(Error{ErrorCode::kInvalidArgument, "private key: " + key.error().message}, o.json);
      return write_wallet(o, *key, args, false);
    };
  });

  add_wallet_chain_commands(*wallet, all, action);
  add_pay_command(app, all, action);
  add_reclaim_command(app, all, action);
  add_rewards_command(app, all, action);

  auto* address = wallet->add_subcommand("address", "Print the wallet's address (no password needed)");
  add_client_flags(*address, o);
  address->callback([&] {
    action = [&] {
      auto text = store::read_file(o.wallet, 1 << 16);
      if (!text) return report(Error{ErrorCode::kNotFound, "no wallet at " + o.wallet}, o.json);
      auto a = crypto::keystore_address(*text);
      if (!a) return report(a.error(), o.json);
      if (o.json) print_json(json::object{{"address", a->to_checksum()}, {"keystore", o.wallet}});
      else std::cout << a->to_checksum() << "\n";
      return kExitOk;
    };
  });
}

namespace {

// 10^18 base units as "1.5" (trailing zeros dropped).
std::string format_units(const eth::Uint256& value, unsigned decimals = 18) {
  std::string digits = value.to_decimal();
  if (digits.size() <= decimals) digits = std::string(decimals + 1 - digits.size(), '0') + digits;
  std::string whole = digits.substr(0, digits.size() - decimals);
  std::string frac = digits.substr(digits.size() - decimals);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return frac.empty() ? whole : whole + "." + frac;
}

Result<crypto::Address> wallet_address(const ClientOptions& o, const std::string& explicit_address) {
  if (!explicit_address.empty()) {
    auto a = crypto::Address::parse(explicit_address);
    if (!a) return fail(ErrorCode::kInvalidArgument, "--address: " + a.error().message);
    return *a;
  }
  auto text = store::read_file(o.wallet, 1 << 16);
  if (!text) return fail(ErrorCode::kNotFound, "no wallet at " + o.wallet + " (give --wallet or --address)");
  return crypto::keystore_address(*text);
}

// Percent-encodes a query-string value.
std::string query_escape(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

Result<ChainView> chain_view(const ClientOptions& o) {
  auto info = api_call(o, "GET", "/api/v1/chain");
  if (!info) return std::unexpected(info.error());
  const json::object* chain_info = info->if_object();
  if (chain_info == nullptr || !chain_info->contains("enabled") || !chain_info->at("enabled").is_bool() ||
      !chain_info->at("enabled").as_bool()) {
    return fail(ErrorCode::kNotFound, "OneNode " + o.onenode + " has no chain configured");
  }
  const json::value* rpc_url = chain_info->if_contains("rpc_url");
  const json::value* contracts = chain_info->if_contains("contracts");
  if (rpc_url == nullptr || !rpc_url->is_string() || contracts == nullptr || !contracts->is_object()) {
    return fail(ErrorCode::kUnavailable, "OneNode's /api/v1/chain answer is incomplete");
  }
  auto deployment_json = contracts->as_object();
  deployment_json["chain_id"] = chain_info->at("chain_id");
  auto deployment = chain::deployment_from_json(json::value(deployment_json));
  if (!deployment) return std::unexpected(deployment.error());
  ChainView view;
  view.deployment = *deployment;
  view.transport = std::make_unique<chain::HttpRpcTransport>(std::string(rpc_url->as_string()));
  view.rpc = std::make_unique<eth::RpcClient>(*view.transport);
  auto chain_id = view.rpc->chain_id();
  if (!chain_id) return std::unexpected(chain_id.error());
  if (*chain_id != deployment->chain_id) {
    return fail(ErrorCode::kConflict, "the RPC node is on chain " + std::to_string(*chain_id) + ", OneNode says " +
                                          std::to_string(deployment->chain_id));
  }
  return view;
}

namespace {

// Pays what a lease from OneNode asks for (its "payment"), from the wallet, on OneNode's chain.
Result<chain::PaymentResult> pay_from_wallet(const ClientOptions& o, const json::value& lease) {
  auto payment = chain::payment_from_json(lease.at("payment"));
  if (!payment) return std::unexpected(payment.error());
  auto view = chain_view(o);
  if (!view) return std::unexpected(view.error());
  auto key = unlock_wallet(o);
  if (!key) return std::unexpected(key.error());
  eth::NonceManager nonces(*view->rpc);
  return chain::pay_lease(*view->rpc, *key, nonces, *payment);
}

// --lease of pay and reclaim: the escrow's 0x lease id, or the id OneNode gave.
Result<Hash32> escrow_lease_arg(const std::string& lease) {
  if (lease.empty() || lease.size() > 200) return fail(ErrorCode::kInvalidArgument, "--lease must be 1 to 200 characters");
  auto explicit_id = eth::parse_hash(lease);
  return explicit_id ? *explicit_id : chain::escrow_lease_id(lease);
}

}  // namespace

void add_pay_command(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  WalletArgs& args = all.wallet;
  auto* pay = app.add_subcommand("pay", "Pay a lease into the escrow: approve the token, then deposit");
  add_client_flags(*pay, o);
  pay->add_option("--lease", args.lease, "the lease id OneNode gave (or the escrow's 0x lease id)")->required();
  pay->add_option("--amount", args.amount, "token base units (the quote's amount)")->required();
  pay->add_option("--locked-until", args.locked_until,
                  "unix seconds until which the deposit stays in the escrow (the quote's locked_until; default: "
                  "none, reclaimable at once)");
  pay->callback([&] {
    action = [&] {
      auto amount = eth::Uint256::from_decimal(args.amount);
      if (!amount || amount->is_zero()) {
        return report(Error{ErrorCode::kInvalidArgument, "--amount must be a positive whole number of base units"},
                      o.json);
      }
      auto lease_id = escrow_lease_arg(args.lease);
      if (!lease_id) return report(lease_id.error(), o.json);
      auto view = chain_view(o);
      if (!view) return report(view.error(), o.json);
      auto key = unlock_wallet(o);
      if (!key) return report(key.error(), o.json);
      chain::LeasePayment payment;
      payment.chain_id = view->deployment.chain_id;
      payment.escrow = view->deployment.escrow;
      payment.token = view->deployment.token;
      payment.lease_id = *lease_id;
      payment.amount = *amount;
      payment.locked_until = std::chrono::sys_seconds{std::chrono::seconds{std::max<std::int64_t>(0, args.locked_until)}};
      eth::NonceManager nonces(*view->rpc);
      if (!o.json) std::cerr << "paying " << amount->to_decimal() << " base units into escrow " << payment.escrow.to_checksum() << "\n";
      auto paid = chain::pay_lease(*view->rpc, *key, nonces, payment);
      if (!paid) return report(paid.error(), o.json);
      json::object out = chain::to_json(payment);
      out["approve_tx"] = paid->approve_tx ? json::value(to_hex(*paid->approve_tx)) : json::value(nullptr);
      out["deposit_tx"] = paid->deposit_tx ? json::value(to_hex(*paid->deposit_tx)) : json::value(nullptr);
      out["gas_used"] = paid->gas_used;
      if (o.json) {
        print_json(out);
      } else if (!paid->deposit_tx) {
        std::cout << "already paid: lease " << to_hex(payment.lease_id) << "\n";
      } else {
        std::cout << "paid: lease " << to_hex(payment.lease_id) << " in " << to_hex(*paid->deposit_tx) << " ("
                  << paid->gas_used << " gas)\n";
      }
      return kExitOk;
    };
  });
}

// kaisar reclaim: a deposit of this wallet that OneNode did not settle (a stray payment,
// a lease that was never paid in full or was cancelled) goes back once its lock has passed.
void add_reclaim_command(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  WalletArgs& args = all.wallet;
  auto* reclaim = app.add_subcommand("reclaim", "Take back this wallet's unsettled deposit for a lease after its lock");
  add_client_flags(*reclaim, o);
  reclaim->add_option("--lease", args.lease, "the lease id OneNode gave (or the escrow's 0x lease id)")->required();
  reclaim->callback([&] {
    action = [&] {
      auto lease_id = escrow_lease_arg(args.lease);
      if (!lease_id) return report(lease_id.error(), o.json);
      auto view = chain_view(o);
      if (!view) return report(view.error(), o.json);
      auto key = unlock_wallet(o);
      if (!key) return report(key.error(), o.json);
      eth::NonceManager nonces(*view->rpc);
      auto back = chain::reclaim_deposit(*view->rpc, *key, nonces, view->deployment.escrow, *lease_id);
      if (!back) return report(back.error(), o.json);
      json::object out{{"lease_id", to_hex(*lease_id)},
                       {"amount", back->amount.to_decimal()},
                       {"tx", to_hex(back->tx_hash)},
                       {"gas_used", back->gas_used}};
      if (o.json) {
        print_json(out);
      } else {
        std::cout << "reclaimed " << back->amount.to_decimal() << " base units of lease " << to_hex(*lease_id) << " in "
                  << to_hex(back->tx_hash) << "\n";
      }
      return kExitOk;
    };
  });
}

// kaisar rewards [claim]: what the wallet earned per epoch (as a provider's owner or a
// checker's), and claiming it from the RewardDistributor with the Merkle proofs OneNode serves.
void add_rewards_command(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  WalletArgs& args = all.wallet;
  auto* rewards = app.add_subcommand("rewards", "Rewards your wallet earned per epoch; `rewards claim` collects them");
  add_client_flags(*rewards, o);
  rewards->add_option("--address", args.address, "any address instead of the wallet's");
  auto list_rewards = [&o](const crypto::Address& account) {
    return api_call(o, "GET", "/api/v1/rewards?account=" + account.to_checksum());
  };
  rewards->callback([&, list_rewards] {
    if (action) return;  // `rewards claim` ran its own callback
    action = [&, list_rewards] {
      auto address = wallet_address(o, args.address);
      if (!address) return report(address.error(), o.json);
      auto r = list_rewards(*address);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
        return kExitOk;
      }
      const auto& list = r->at("rewards").as_array();
      if (list.empty()) std::cout << "no rewards yet for " << address->to_checksum() << "\n";
      eth::Uint256 total;
      for (const auto& e : list) {
        auto amount = eth::Uint256::from_decimal(e.at("amount").as_string()).value_or(eth::Uint256{});
        total = total + amount;
        std::cout << "epoch " << e.at("epoch").to_number<std::uint64_t>() << ": " << format_units(amount) << " KAI  "
                  << json::serialize(e.at("for")) << "\n";
      }
      if (!list.empty()) std::cout << "total: " << format_units(total) << " KAI (claim with: kaisar rewards claim)\n";
      return kExitOk;
    };
  });
  auto* claim = rewards->add_subcommand("claim", "Claim every unclaimed epoch's reward into your wallet");
  add_client_flags(*claim, o);
  claim->callback([&, list_rewards] {
    action = [&, list_rewards] {
      auto key = unlock_wallet(o);
      if (!key) return report(key.error(), o.json);
      const crypto::Address account = key->address();
      auto r = list_rewards(account);
      if (!r) return report(r.error(), o.json);
      auto view = chain_view(o);
      if (!view) return report(view.error(), o.json);
      eth::NonceManager nonces(*view->rpc);
      json::array claimed;
      eth::Uint256 total;
      for (const auto& e : r->at("rewards").as_array()) {
        const std::uint64_t epoch = e.at("epoch").to_number<std::uint64_t>();
        auto amount = eth::Uint256::from_decimal(e.at("amount").as_string());
        if (!amount) return report(amount.error(), o.json);
        // Already claimed, or the root is not on chain yet: skipped.
        auto done = chain::call_view(*view->rpc, view->deployment.distributor, "claimed(uint64,address)",
                                     {eth::AbiValue::uint(epoch), eth::AbiValue::address(account)}, "(bool)");
        if (!done) return report(done.error(), o.json);
        if (std::get<bool>(done->at(0).value)) continue;
        auto root = chain::call_view(*view->rpc, view->deployment.distributor, "rootOf(uint64)",
                                     {eth::AbiValue::uint(epoch)}, "(bytes32)");
        if (!root) return report(root.error(), o.json);
        const auto& root_bytes = std::get<Bytes>(root->at(0).value);
        if (std::all_of(root_bytes.begin(), root_bytes.end(), [](std::uint8_t b) { return b == 0; })) {
          if (!o.json) std::cerr << "epoch " << epoch << ": its reward root is not on chain yet\n";
          continue;
        }
        eth::AbiValue::List proof;
        for (const auto& h : e.at("proof").as_array()) {
          auto hash = from_hex(h.as_string());
          if (!hash) return report(hash.error(), o.json);
          proof.push_back(eth::AbiValue::bytes(std::move(*hash)));
        }
        auto receipt = chain::transact(*view->rpc, *key, nonces, view->deployment.distributor,
                                       "claim(uint64,address,uint256,bytes32[])",
                                       {eth::AbiValue::uint(epoch), eth::AbiValue::address(account),
                                        eth::AbiValue::uint(*amount), eth::AbiValue::list(std::move(proof))});
        if (!receipt) return report(receipt.error(), o.json);
        total = total + *amount;
        claimed.push_back(json::object{{"epoch", epoch}, {"amount", amount->to_decimal()}, {"tx", to_hex(receipt->transaction_hash)}});
        if (!o.json) std::cout << "epoch " << epoch << ": claimed " << format_units(*amount) << " KAI\n";
      }
      if (o.json) {
        print_json(json::object{{"account", account.to_checksum()}, {"claimed", std::move(claimed)}, {"total", total.to_decimal()}});
      } else if (claimed.empty()) {
        std::cout << "nothing to claim\n";
      } else {
        std::cout << "claimed " << format_units(total) << " KAI in total\n";
      }
      return kExitOk;
    };
  });
}

void add_wallet_chain_commands(CLI::App& wallet, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  WalletArgs& args = all.wallet;
  auto* balance = wallet.add_subcommand("balance", "Show the wallet's ETH and payment-token balance on OneNode's chain");
  add_client_flags(*balance, o);
  balance->add_option("--address", args.address, "any address instead of the wallet's");
  balance->callback([&] {
    action = [&] {
      auto address = wallet_address(o, args.address);
      if (!address) return report(address.error(), o.json);
      auto view = chain_view(o);
      if (!view) return report(view.error(), o.json);
      eth::RpcClient& rpc = *view->rpc;
      const chain::Deployment& deployment = view->deployment;
      auto eth_balance = rpc.get_balance(*address);
      if (!eth_balance) return report(eth_balance.error(), o.json);
      auto token_balance = chain::token_balance(rpc, deployment.token, *address);
      if (!token_balance) return report(token_balance.error(), o.json);
      if (o.json) {
        print_json(json::object{{"address", address->to_checksum()},
                                {"chain_id", deployment.chain_id},
                                {"eth_wei", eth_balance->to_decimal()},
                                {"token", deployment.token.to_checksum()},
                                {"token_base_units", token_balance->to_decimal()}});
      } else {
        std::cout << "address:  " << address->to_checksum() << " (chain " << deployment.chain_id << ")\n"
                  << "ETH:      " << format_units(*eth_balance) << "\n"
                  << "KAI:      " << format_units(*token_balance) << "  (token " << deployment.token.to_checksum()
                  << ")\n";
      }
      return kExitOk;
    };
  });

  auto* faucet = wallet.add_subcommand("faucet", "Dev chains: get 100 ETH and 1,000 KAI for the signed-in wallet");
  add_client_flags(*faucet, o);
  faucet->callback([&] {
    action = [&] {
      if (!saved_token(o.onenode)) {
        return report(Error{ErrorCode::kUnauthenticated, "sign in first: kaisar login --onenode " + o.onenode}, o.json);
      }
      json::value body = json::object{};
      auto r = api_call(o, "POST", "/api/v1/faucet", &body, true);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
      } else {
        std::cout << "faucet: 100 ETH now, 1,000 KAI on its way (chain write " << field(*r, "write") << ")\n"
                  << "check with: kaisar wallet balance --onenode " << o.onenode << "\n";
      }
      return kExitOk;
    };
  });
}

void add_client_commands(CLI::App& app, CommandArgs& all, Action& action) {
  ClientOptions& o = all.client;
  std::string& status_filter = all.status_filter;
  auto* login = app.add_subcommand("login", "Sign in to OneNode with your wallet (Sign-In with Ethereum)");
  add_client_flags(*login, o);
  login->callback([&] {
    action = [&] {
      auto key = unlock_wallet(o);
      if (!key) return report(key.error(), o.json);
      json::value req = json::object{{"address", key->address().to_checksum()}};
      auto nonce = api_call(o, "POST", "/api/v1/auth/nonce", &req);
      if (!nonce) return report(nonce.error(), o.json);
      const std::string message = field(*nonce, "message");
      auto sig = crypto::personal_sign(*key, message);
      json::value login_req = json::object{{"message", message}, {"signature", sig.to_hex()}};
      auto session = api_call(o, "POST", "/api/v1/auth/login", &login_req);
      if (!session) return report(session.error(), o.json);
      if (auto s = save_token(o.onenode, field(*session, "token"), field(*session, "address"),
                              field(*session, "expires_at"));
          !s) {
        return report(s.error(), o.json);
      }
      if (o.json) {
        print_json(json::object{{"address", field(*session, "address")},
                                {"onenode", o.onenode},
                                {"expires_at", field(*session, "expires_at")}});
      } else {
        std::cout << "signed in to " << o.onenode << " as " << field(*session, "address") << " until "
                  << field(*session, "expires_at") << "\n";
      }
      return kExitOk;
    };
  });

  auto* logout = app.add_subcommand("logout", "Revoke the saved token and forget it");
  add_client_flags(*logout, o);
  logout->callback([&] {
    action = [&] {
      auto r = api_call(o, "POST", "/api/v1/auth/logout", nullptr, true);
      (void)forget_token(o.onenode);
      if (!r && r.error().code != ErrorCode::kUnauthenticated) return report(r.error(), o.json);
      if (o.json) print_json(json::object{{"signed_out", true}});
      else std::cout << "signed out of " << o.onenode << "\n";
      return kExitOk;
    };
  });

  auto* providers = app.add_subcommand("providers", "List providers registered with OneNode");
  add_client_flags(*providers, o);
  providers->add_option("--status", status_filter, "only online or offline ones")->check(CLI::IsMember({"online", "offline"}));
  providers->callback([&] {
    action = [&] {
      std::string path = "/api/v1/providers";
      if (!status_filter.empty()) path += "?status=" + status_filter;
      auto r = api_call(o, "GET", path);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : r->as_object().at("providers").as_array()) {
        const auto& po = p.as_object();
        const auto& hw = po.at("hardware").as_object();
        std::string gpus = "-";
        if (auto* g = hw.if_contains("gpus"); g != nullptr && g->is_array() && !g->as_array().empty()) {
          gpus = std::to_string(g->as_array().size()) + "x " + std::string(g->as_array()[0].as_object().at("name").as_string());
        }
        const auto& loc = po.at("location").as_object();
        std::string where = std::string(loc.at("country").as_string());
        if (loc.at("region").is_string()) where += "/" + std::string(loc.at("region").as_string());
        char uptime[16];
        std::snprintf(uptime, sizeof uptime, "%.1f%%", po.at("uptime").as_object().at("ratio_24h").to_number<double>() * 100);
        rows.push_back({field(p, "id"), field(p, "status"), gpus,
                        field(hw, "cpu_cores") + " cores", human_bytes(hw.at("ram_bytes").to_number<std::uint64_t>()),
                        where, uptime, field(p, "last_seen")});
      }
      if (rows.empty()) {
        std::cout << "no providers yet\n";
        return kExitOk;
      }
      print_table({"PROVIDER", "STATUS", "GPUS", "CPU", "RAM", "LOCATION", "UPTIME 24H", "LAST SEEN"}, rows);
      return kExitOk;
    };
  });

  OffersArgs& oa = all.offers;
  auto* offers = app.add_subcommand("offers", "Search what can be rented now, e.g. 'gpu_name=RTX_4090 num_gpus>=2'");
  add_client_flags(*offers, o);
  offers->add_option("query", oa.query, "conditions, all of which must hold: FIELD OP VALUE …");
  {
    std::string fields = "Fields:\n";
    for (const auto& f : onenode::offer_fields()) fields += "  " + std::string(f.name) + "  " + std::string(f.help) + "\n";
    fields += "Operators: = != < <= > >=; text: '_' is a space, \"quotes\" allow spaces, A,B means any of.";
    offers->footer(fields);
  }
  offers->add_option("--sort", oa.sort, "price_hour (default), -reliability, perf_per_price-, …");
  offers->add_option("--limit", oa.limit, "at most this many offers, 1 to 1000 (default 100)");
  offers->callback([&] {
    action = [&] {
      std::string path = "/api/v1/offers?q=" + query_escape(oa.query);
      if (!oa.sort.empty()) path += "&sort=" + query_escape(oa.sort);
      if (oa.limit != 0) path += "&limit=" + std::to_string(oa.limit);
      auto r = api_call(o, "GET", path);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& offer : r->as_object().at("offers").as_array()) {
        const auto& of = offer.as_object();
        char price[32];
        std::snprintf(price, sizeof price, "%.4f", of.at("price_hour").to_number<double>());
        char reliability[16];
        std::snprintf(reliability, sizeof reliability, "%.1f%%", of.at("reliability").to_number<double>() * 100);
        std::string gpus = "-";
        if (of.at("num_gpus").to_number<double>() > 0) {
          gpus = field(offer, "num_gpus") + "x " + (of.at("gpu_name").is_string() ? std::string(of.at("gpu_name").as_string()) : "GPU");
        }
        std::string vram = "-";
        if (of.at("num_gpus").to_number<double>() > 0) {
          char gb[32];
          std::snprintf(gb, sizeof gb, "%.1f GiB", of.at("gpu_ram").to_number<double>());
          vram = gb;
        }
        rows.push_back({field(offer, "id"), gpus, vram, field(offer, "cpu_cores"),
                        field(offer, "ram") + " GiB", price, reliability, field(offer, "country"),
                        of.at("verified").as_bool() ? "yes" : "no"});
      }
      if (rows.empty()) {
        std::cout << "no offers match\n";
        return kExitOk;
      }
      print_table({"OFFER", "GPUS", "VRAM", "CORES", "RAM", "KAI/HOUR", "RELIABILITY", "COUNTRY", "VERIFIED"}, rows);
      const auto& total = r->as_object().at("total");
      if (total.is_number() && total.to_number<std::size_t>() > rows.size()) {
        std::cout << rows.size() << " of " << field(*r, "total") << " matching offers (--limit for more)\n";
      }
      return kExitOk;
    };
  });

  RentArgs& ra = all.rent;
  auto* rent = app.add_subcommand("rent", "Rent an offer: reserve, pay from your wallet, and follow the lease");
  add_client_flags(*rent, o);
  auto* offer_opt = rent->add_option("--offer", ra.offer, "offer id from `kaisar offers`");
  auto* query_opt = rent->add_option("--query", ra.query,
                                     "instead of --offer: OneNode picks the cheapest online offer that matches "
                                     "(same language as `kaisar offers`) and has the resources free");
  offer_opt->excludes(query_opt);
  rent->add_option("--image", ra.image, "container image, e.g. localhost/kaisar/demo:latest")->required();
  rent->add_option("--gpus", ra.gpus, "GPUs (default 0)");
  rent->add_option("--gpu-model", ra.gpu_model, "only GPUs of this model, e.g. RTX_4090 or H100");
  rent->add_option("--cpus", ra.cpus, "CPU cores (default 1)");
  rent->add_option("--memory-gb", ra.memory_gb, "memory in GiB (default 1)");
  rent->add_option("--hours", ra.hours, "hours paid in advance (default 1)");
  rent->add_option("--port", ra.ports,
                   "container port to expose through the gateway (repeatable): PORT (HTTP behind the lease's "
                   "access token; 22 is TCP), PORT/tcp (raw TCP), PORT/public (HTTP open to anyone)");
  rent->add_option("--env", ra.env, "NAME=value for the container (repeatable)");
  rent->add_option("--ssh-key", ra.ssh_key_file, "your SSH public key file (e.g. ~/.ssh/id_ed25519.pub)");
  rent->add_option("--wait", ra.wait_seconds, "seconds to wait for the payment to be seen (default 120)");
  rent->callback([&] {
    action = [&] {
      if (ra.offer.empty() && ra.query.empty()) {
        return report(Error{ErrorCode::kInvalidArgument, "rent needs --offer ID or --query 'CONDITIONS'"}, o.json);
      }
      json::object body{{"image", ra.image}, {"gpus", ra.gpus}, {"cpus", ra.cpus}, {"memory_gb", ra.memory_gb},
                        {"hours", ra.hours}};
      if (!ra.gpu_model.empty()) body["gpu_model"] = ra.gpu_model;
      if (!ra.offer.empty()) body["offer"] = ra.offer;
      else body["query"] = ra.query;
      json::array ports;
      json::array tcp_ports;
      json::array public_ports;
      for (const auto& spec : ra.ports) {
        const auto slash = spec.find('/');
        const std::string number = spec.substr(0, slash);
        const std::string kind = slash == std::string::npos ? "" : spec.substr(slash + 1);
        unsigned port = 0;
        auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), port);
        if (number.empty() || ec != std::errc{} || end != number.data() + number.size() || port == 0 || port > 65535 ||
            (kind != "" && kind != "tcp" && kind != "http" && kind != "public")) {
          return report(Error{ErrorCode::kInvalidArgument,
                              "--port " + spec + ": give PORT, PORT/tcp, PORT/http or PORT/public (PORT 1 to 65535)"},
                        o.json);
        }
        ports.push_back(port);
        if (kind == "tcp" || (kind.empty() && port == 22)) tcp_ports.push_back(port);
        if (kind == "public") public_ports.push_back(port);
      }
      body["ports"] = std::move(ports);
      body["tcp_ports"] = std::move(tcp_ports);
      body["public_ports"] = std::move(public_ports);
      json::object env;
      for (const auto& kv : ra.env) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
          return report(Error{ErrorCode::kInvalidArgument, "--env takes NAME=value, got '" + kv + "'"}, o.json);
        }
        env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      body["env"] = std::move(env);
      if (!ra.ssh_key_file.empty()) {
        auto key = store::read_file(ra.ssh_key_file, 8192);
        if (!key) return report(Error{ErrorCode::kNotFound, "cannot read --ssh-key " + ra.ssh_key_file}, o.json);
        std::string line = *key;
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        body["ssh_key"] = line;
      }
      if (!saved_token(o.onenode)) {
        return report(Error{ErrorCode::kUnauthenticated, "sign in first: kaisar login --onenode " + o.onenode}, o.json);
      }
      json::value request = body;
      // Timings of the steps as seen from here: reserving, paying on chain until OneNode has
      // seen the deposit, and from then until the container runs.
      using Steady = std::chrono::steady_clock;
      const auto started = Steady::now();
      auto seconds_since = [](Steady::time_point from) {
        return std::chrono::duration<double>(Steady::now() - from).count();
      };
      // One key per `kaisar rent`: should the answer get lost and the request be retried,
      // OneNode returns the same lease instead of reserving twice.
      const net::Headers idempotency{{"idempotency-key", crypto::random_uuid()}};
      auto lease = api_call(o, "POST", "/api/v1/leases", &request, true, idempotency);
      if (!lease && lease.error().code == ErrorCode::kUnavailable) {
        lease = api_call(o, "POST", "/api/v1/leases", &request, true, idempotency);  // one retry, same key
      }
      if (!lease) return report(lease.error(), o.json);
      const double reserve_s = seconds_since(started);
      const std::string id(lease->at("id").as_string());
      if (!o.json) {
        std::cerr << "lease " << id << " reserved on " << field(*lease, "provider") << "; paying "
                  << field(*lease, "amount") << " base units\n";
      }
      const auto paying = Steady::now();
      auto paid = pay_from_wallet(o, *lease);
      if (!paid) return report(paid.error(), o.json);
      if (!o.json) std::cerr << "paid; waiting for OneNode to see the deposit\n";
      json::value current = *lease;
      std::string shown;
      std::size_t history_shown = 1;  // the first entry (reserved) is printed above
      std::optional<double> pay_s;
      std::optional<Steady::time_point> seen_paid;
      std::optional<Steady::time_point> exposing_since;
      const auto deadline = Steady::now() + std::chrono::seconds{ra.wait_seconds};
      while (Steady::now() < deadline) {
        auto now = api_call(o, "GET", "/api/v1/leases/" + id, nullptr, true);
        if (now) {
          current = *now;
          const std::string state(current.at("state").as_string());
          // Each step once: paid, deploying (pulling, creating, starting), running. Steps
          // that came and went between two polls are in the history.
          auto show = [&](const std::string& step) {
            if (step != shown && !o.json) std::cerr << step << "\n";
            shown = step;
          };
          if (const auto* history = current.as_object().if_contains("history"); history && history->is_array()) {
            const auto& entries = history->get_array();
            for (; history_shown < entries.size(); ++history_shown) {
              show(field(entries[history_shown], "state") + ": " + field(entries[history_shown], "reason"));
            }
          }
          show(state + ": " + field(current, "reason"));
          if (!seen_paid && state != "pending_payment") {
            seen_paid = Steady::now();
            pay_s = seconds_since(paying);
          }
          // A gateway of its own may need a moment to answer with the public ports.
          if (state == "running" && field(current, "gateway") == "exposing") {
            if (!exposing_since) exposing_since = Steady::now();
            if (Steady::now() - *exposing_since < std::chrono::seconds{5}) {
              std::this_thread::sleep_for(std::chrono::milliseconds{50});
              continue;
            }
          }
          if (state == "running" || state == "failed" || state == "ended") break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
      }
      const std::string state(current.at("state").as_string());
      if (o.json) {
        json::object timings{{"reserve_s", reserve_s}};
        if (pay_s) timings["pay_s"] = *pay_s;
        if (seen_paid && state == "running") timings["deploy_s"] = seconds_since(*seen_paid);
        current.as_object()["timings"] = std::move(timings);
        print_json(current);
      } else {
        std::cout << "lease " << id << ": " << state << " (" << field(current, "reason") << ")\n";
        if (state == "running") print_endpoints(current);
      }
      if (state == "failed" || state == "ended") return kExitConflict;
      return state == "running" ? kExitOk : kExitUnavailable;
    };
  });

  auto* leases = app.add_subcommand("leases", "Your leases");
  add_client_flags(*leases, o);
  leases->callback([&] {
    action = [&] {
      auto r = api_call(o, "GET", "/api/v1/leases", nullptr, true);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
        return kExitOk;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& l : r->at("leases").as_array()) {
        rows.push_back({field(l, "id"), field(l, "state"), field(l, "provider"), field(l.at("spec"), "image"),
                        field(l, "created_at")});
      }
      if (rows.empty()) {
        std::cout << "no leases yet\n";
        return kExitOk;
      }
      print_table({"LEASE", "STATE", "PROVIDER", "IMAGE", "CREATED"}, rows);
      return kExitOk;
    };
  });

  auto* lease_cmd = app.add_subcommand("lease", "One lease: show, logs, stop, extend");
  lease_cmd->require_subcommand(1);
  auto* show = lease_cmd->add_subcommand("show", "State, price, payment and history of a lease");
  add_client_flags(*show, o);
  show->add_option("id", ra.lease_id, "lease id")->required();
  show->callback([&] {
    action = [&] {
      auto r = api_call(o, "GET", "/api/v1/leases/" + query_escape(ra.lease_id), nullptr, true);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
        return kExitOk;
      }
      std::cout << "lease:    " << field(*r, "id") << "\n"
                << "state:    " << field(*r, "state") << " (" << field(*r, "reason") << ")\n"
                << "provider: " << field(*r, "provider") << "\n"
                << "image:    " << field(r->at("spec"), "image") << "\n"
                << "amount:   " << field(*r, "amount") << " base units (" << field(*r, "price_hour") << " per hour)\n"
                << "history:\n";
      for (const auto& h : r->at("history").as_array()) {
        std::cout << "  " << field(h, "at") << "  " << field(h, "state") << "  " << field(h, "reason") << "\n";
      }
      if (field(*r, "state") == "running") {
        std::cout << "endpoints:\n";
        print_endpoints(*r);
      }
      return kExitOk;
    };
  });

  auto* stop = lease_cmd->add_subcommand("stop", "End a lease now; the unused time is refunded on chain");
  add_client_flags(*stop, o);
  stop->add_option("id", ra.lease_id, "lease id")->required();
  stop->callback([&] {
    action = [&] {
      json::value empty = json::object{};
      auto r = api_call(o, "POST", "/api/v1/leases/" + query_escape(ra.lease_id) + "/stop", &empty, true);
      if (!r) return report(r.error(), o.json);
      if (o.json) {
        print_json(*r);
      } else {
        std::cout << "lease " << field(*r, "id") << ": " << field(*r, "state") << "\n";
        if (r->at("settlement").is_object()) {
          std::cout << "settlement: " << field(r->at("settlement"), "to_provider") << " to the provider for "
                    << field(r->at("settlement"), "seconds") << " s, " << field(r->at("settlement"), "to_renter")
                    << " back to you (on chain shortly)\n";
        }
      }
      return kExitOk;
    };
  });

  auto* extend = lease_cmd->add_subcommand("extend", "Pay for more hours of a lease (a top-up of the escrow)");
  add_client_flags(*extend, o);
  extend->add_option("id", ra.lease_id, "lease id")->required();
  extend->add_option("--hours", ra.extend_hours, "hours to add (default 1)");
  extend->add_option("--wait", ra.wait_seconds, "seconds to wait for the top-up to be seen (default 120)");
  extend->callback([&] {
    action = [&] {
      json::value body = json::object{{"hours", ra.extend_hours}};
      auto lease = api_call(o, "POST", "/api/v1/leases/" + query_escape(ra.lease_id) + "/extend", &body, true);
      if (!lease) return report(lease.error(), o.json);
      auto paid = pay_from_wallet(o, *lease);
      if (!paid) return report(paid.error(), o.json);
      json::value current = *lease;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{ra.wait_seconds};
      while (std::chrono::steady_clock::now() < deadline) {
        auto now = api_call(o, "GET", "/api/v1/leases/" + query_escape(ra.lease_id), nullptr, true);
        if (now) {
          current = *now;
          if (current.at("extension").is_null()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{300});
      }
      const bool done = current.at("extension").is_null();
      if (o.json) {
        print_json(current);
      } else {
        std::cout << "lease " << ra.lease_id << ": " << (done ? "extended" : "top-up sent, not seen yet") << "; "
                  << field(current.at("spec"), "hours") << " h paid in total\n";
      }
      return done ? kExitOk : kExitUnavailable;
    };
  });

  auto* logs = lease_cmd->add_subcommand("logs", "The container's output (stdout and stderr)");
  add_client_flags(*logs, o);
  logs->add_option("id", ra.lease_id, "lease id")->required();
  logs->add_flag("-f,--follow", ra.follow, "keep printing new output until the container stops");
  logs->callback([&] {
    action = [&] {
      auto token = saved_token(o.onenode);
      if (!token) return report(Error{ErrorCode::kUnauthenticated, "sign in first: kaisar login --onenode " + o.onenode}, o.json);
      auto stream = net::SseReader::open(o.onenode + "/api/v1/leases/" + query_escape(ra.lease_id) + "/logs?follow=" +
                                             (ra.follow ? "1" : "0"),
                                         {{"authorization", "Bearer " + *token}});
      if (!stream) {
        // The error carries OneNode's status and body; show its message.
        std::string message = stream.error().message;
        if (auto at = message.find("\"message\":\""); at != std::string::npos) {
          message = message.substr(at + 11, message.find('"', at + 11) - at - 11);
        }
        return report(Error{stream.error().code, message}, o.json);
      }
      const auto wait = ra.follow ? std::chrono::milliseconds{std::chrono::hours{24}} : std::chrono::milliseconds{60000};
      while (true) {
        auto event = (*stream)->next(wait);
        if (!event || event->event == "end") break;
        if (event->event != "log") continue;
        if (o.json) {
          std::cout << event->data << "\n" << std::flush;
          continue;
        }
        boost::system::error_code ec;
        json::value line = json::parse(event->data, ec);
        if (ec || !line.is_object()) continue;
        (field(line, "stream") == "stderr" ? std::cerr : std::cout) << field(line, "data") << std::flush;
      }
      return kExitOk;
    };
  });

  auto* ssh = app.add_subcommand("ssh", "Open an SSH session into a running lease (as root, with your key)");
  add_client_flags(*ssh, o);
  ssh->add_option("id", ra.lease_id, "lease id")->required();
  ssh->add_option("args", ra.ssh_args, "after --: options and a command for ssh");
  ssh->callback([&] {
    action = [&] {
      auto r = api_call(o, "GET", "/api/v1/leases/" + query_escape(ra.lease_id), nullptr, true);
      if (!r) return report(r.error(), o.json);
      if (r->at("state").as_string() != "running") {
        return report(Error{ErrorCode::kConflict, "lease " + ra.lease_id + " is " + field(*r, "state") + ", not running"},
                      o.json);
      }
      // Through the gateway; without one, the provider's loopback (only from that machine).
      std::string port;
      std::string host = "127.0.0.1";
      for (const auto& ep : r->at("endpoints").as_array()) {
        if (field(ep, "port") != "22") continue;
        if (ep.as_object().contains("public_port")) {
          port = field(ep, "public_port");
          host = field(ep, "public_host");
        } else {
          port = field(ep, "host_port");
        }
      }
      if (port.empty()) {
        return report(Error{ErrorCode::kNotFound, "lease " + ra.lease_id + " exposes no port 22; rent with --port 22"},
                      o.json);
      }
      std::vector<std::string> argv{"ssh", "-p", port};
      argv.insert(argv.end(), ra.ssh_args.begin(), ra.ssh_args.end());
      // Options go before the destination; a command given after them follows it.
      std::vector<std::string> options;
      std::vector<std::string> command;
      for (std::size_t i = 3; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (command.empty() && a.size() > 1 && a[0] == '-') {
          options.push_back(a);
          if ((a == "-i" || a == "-o" || a == "-F" || a == "-l" || a == "-J") && i + 1 < argv.size()) options.push_back(argv[++i]);
        } else {
          command.push_back(a);
        }
      }
      std::vector<std::string> final_argv{"ssh", "-p", port};
      final_argv.insert(final_argv.end(), options.begin(), options.end());
      final_argv.push_back("root@" + host);
      final_argv.insert(final_argv.end(), command.begin(), command.end());
      std::vector<char*> cargv;
      for (auto& a : final_argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      std::cout.flush();
      execvp("ssh", cargv.data());
      return report(Error{ErrorCode::kNotFound, "cannot run ssh: install OpenSSH's client"}, o.json);
    };
  });

  auto* status = app.add_subcommand("status", "Show OneNode's status and who you are signed in as");
  add_client_flags(*status, o);
  status->callback([&] {
    action = [&] {
      auto r = api_call(o, "GET", "/api/v1/status");
      if (!r) return report(r.error(), o.json);
      std::optional<json::value> me;
      if (saved_token(o.onenode)) {
        if (auto m = api_call(o, "GET", "/api/v1/me", nullptr, true)) me = *m;
      }
      if (o.json) {
        json::object out = r->as_object();
        out["onenode"] = o.onenode;
        out["signed_in_as"] = me ? json::value(field(*me, "address")) : json::value(nullptr);
        print_json(out);
        return kExitOk;
      }
      std::cout << "OneNode:    " << o.onenode << " (kaisar " << field(*r, "version") << ")\n"
                << "chain id:   " << field(*r, "chain_id") << "\n"
                << "providers:  " << field(*r, "providers_online") << " online of " << field(*r, "providers_total")
                << "\n"
                << "signed in:  " << (me ? field(*me, "address") : std::string("no (run `kaisar login`)")) << "\n";
      return kExitOk;
    };
  });
}

}  // namespace kaisar::cli
