// OneNode on a real anvil chain: deployment, GET /api/v1/chain, the faucet, restarts, bad
// configuration, and the CLI's wallet commands, checked with cast as the independent client.
#include <atomic>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <thread>

#include <boost/asio.hpp>

#include "core/protocol.hpp"
#include "crypto/eip191.hpp"
#include "crypto/keystore.hpp"
#include "crypto/merkle.hpp"
#include "harness.hpp"
#include "net/client.hpp"
#include "popw/attestation.hpp"
#include "popw/session.hpp"
#include "podman.hpp"
#include "provider/runtime/docker.hpp"

namespace kaisar::testing {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The bearer token `kaisar login` saved for `onenode` under XDG_CONFIG_HOME=`config`.
std::string saved_token_of(const std::string& config, const std::string& onenode) {
  std::ifstream in(config + "/kaisar/sessions.json");
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  json::value v = json::parse(text.str(), ec);
  if (ec || !v.is_object() || !v.as_object().contains(onenode)) return {};
  const json::value& entry = v.at(onenode);
  if (entry.is_string()) return std::string(entry.as_string());
  if (entry.is_object() && entry.as_object().contains("token")) return std::string(entry.at("token").as_string());
  return {};
}

std::string cast_call(const std::string& rpc, const std::vector<std::string>& args) {
  std::vector<std::string> argv{node_tool("cast"), "call", "--rpc-url", rpc};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return trim(r.out);
}

// cast (Foundry's native binary: its exit status is the call's) as `key`; "0x..." hex key.
RunResult cast_send(const std::string& rpc, const crypto::PrivateKey& key, const std::vector<std::string>& args) {
  std::vector<std::string> argv{node_tool("cast"), "send", "--rpc-url", rpc, "--private-key",
                                to_hex(ByteView(key.bytes().data(), key.bytes().size()))};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

// Approves and deposits `amount` under `escrow_id` from `key`'s own record, locked until `lock`.
void deposit_with_cast(const std::string& rpc, const crypto::PrivateKey& key, const json::value& payment,
                       const std::string& amount, const std::string& lock) {
  const std::string token(payment.at("token").as_string());
  const std::string escrow(payment.at("escrow").as_string());
  const std::string escrow_id(payment.at("lease_id").as_string());
  auto approved = cast_send(rpc, key, {token, "approve(address,uint256)", escrow, amount});
  ASSERT_EQ(approved.exit_code, 0) << approved.err;
  auto deposited = cast_send(rpc, key, {escrow, "deposit(bytes32,uint256,uint64)", escrow_id, amount, lock});
  ASSERT_EQ(deposited.exit_code, 0) << deposited.err;
}

// The next nonce of `address`: how many transactions it has sent.
std::string nonce_of(const std::string& rpc, const std::string& address) {
  auto r = run_process({node_tool("cast"), "nonce", "--rpc-url", rpc, address});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return trim(r.out);
}

// Moves the chain's clock past every lock a test made (OneNode's own clock is untouched).
void advance_chain_time(const std::string& rpc, std::int64_t seconds) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"evm_increaseTime", std::to_string(seconds)}, {"evm_mine"}}) {
    std::vector<std::string> argv{node_tool("cast"), "rpc", "--rpc-url", rpc};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
}

class ChainOneNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("chain-onenode");
    anvil_ = start_anvil();
    ASSERT_FALSE(anvil_.url.empty()) << anvil_.process->output();
    // The operator: a fresh key, funded with gas money.
    operator_ = crypto::PrivateKey::generate();
    write_text(dir_ + "/operator.json", crypto::keystore_encrypt(operator_, "op-pass", crypto::kLightScrypt));
    write_text(dir_ + "/operator.password", "op-pass\n");
    auto funded = run_process({node_tool("cast"), "rpc", "--rpc-url", anvil_.url, "anvil_setBalance",
                               operator_.address().to_checksum(), "0x3635c9adc5dea00000"});
    ASSERT_EQ(funded.exit_code, 0) << funded.err;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> chain_flags(const std::string& rpc) {
    return {"--rpc-url", rpc, "--operator-keystore", dir_ + "/operator.json", "--operator-password-file",
            dir_ + "/operator.password", "--deploy-contracts"};
  }

  std::string dir_;
  Anvil anvil_;
  crypto::PrivateKey operator_ = crypto::PrivateKey::generate();
};

TEST_F(ChainOneNodeTest, DeploysServesChainInfoAndKeepsContractsAcrossRestarts) {
  json::object first;
  {
    OneNodeProcess node(dir_ + "/data", chain_flags(anvil_.url));
    auto chain = call("GET", node.url() + "/api/v1/chain");
    ASSERT_EQ(chain.status, 200) << chain.raw;
    first = chain.body.as_object();
    EXPECT_EQ(first.at("enabled").as_bool(), true);
    EXPECT_EQ(first.at("chain_id").as_int64(), 31337);
    EXPECT_EQ(first.at("rpc_url").as_string(), anvil_.url);
    EXPECT_EQ(first.at("operator").as_string(), operator_.address().to_checksum());
    const auto& contracts = first.at("contracts").as_object();
    for (const char* name : {"token", "points", "escrow", "epoch_log", "distributor", "registry"}) {
      ASSERT_TRUE(contracts.contains(name)) << name;
    }
    // cast reads the deployed contracts.
    const std::string escrow(contracts.at("escrow").as_string());
    EXPECT_EQ(cast_call(anvil_.url, {escrow, "token()(address)"}), contracts.at("token").as_string());
    EXPECT_EQ(cast_call(anvil_.url, {escrow, "operator()(address)"}), operator_.address().to_checksum());
    EXPECT_TRUE(fs::exists(dir_ + "/data/contracts.json"));
    // The indexer follows the chain.
    EXPECT_TRUE(eventually([&] {
      auto c = call("GET", node.url() + "/api/v1/chain");
      return c.status == 200 && c.body.at("indexed_block").as_int64() == c.body.at("head_block").as_int64();
    }));
    auto metrics = net::http_request("GET", node.url() + "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("kaisar_chain_indexed_block"), std::string::npos);
    EXPECT_EQ(node.stop(), 0);
  }
  // A restart finds the same contracts and deploys nothing.
  const std::string nonce_before = trim(
      run_process({node_tool("cast"), "nonce", "--rpc-url", anvil_.url, operator_.address().to_checksum()}).out);
  OneNodeProcess node(dir_ + "/data", chain_flags(anvil_.url));
  auto chain = call("GET", node.url() + "/api/v1/chain");
  ASSERT_EQ(chain.status, 200);
  EXPECT_EQ(chain.body.at("contracts"), first.at("contracts"));
  EXPECT_EQ(trim(run_process({node_tool("cast"), "nonce", "--rpc-url", anvil_.url, operator_.address().to_checksum()})
                     .out),
            nonce_before);
}

TEST_F(ChainOneNodeTest, FaucetNeedsSignInAndMintsOncePerMinute) {
  std::vector<std::string> flags = chain_flags(anvil_.url);
  // The faucet is configured in TOML (it is never on by default).
  write_text(dir_ + "/onenode.toml", "faucet = true\n");
  flags.push_back("--config");
  flags.push_back(dir_ + "/onenode.toml");
  OneNodeProcess node(dir_ + "/data", flags);
  const std::string faucet = node.url() + "/api/v1/faucet";
  auto anonymous = call("POST", faucet, "{}");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(error_code_of(anonymous), "unauthenticated");
  auto forged = call("POST", faucet, "{}", {{"authorization", "Bearer not-a-token"}});
  EXPECT_EQ(forged.status, 401);

  auto user = crypto::PrivateKey::generate();
  const std::string token = sign_in(node.url(), user);
  const net::Headers auth{{"authorization", "Bearer " + token}};
  auto malformed = call("POST", faucet, "{not json", auth);
  EXPECT_EQ(malformed.status, 400);
  auto oversized = call("POST", faucet, std::string(2 << 20, 'x'), auth);
  EXPECT_EQ(oversized.status, 413);

  auto ok = call("POST", faucet, "{}", auth);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body.at("address").as_string(), user.address().to_checksum());
  // A replay in the same minute is the same chain write.
  auto again = call("POST", faucet, "{}", auth);
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body.at("write").at("key"), ok.body.at("write").at("key"));

  const std::string token_address(call("GET", node.url() + "/api/v1/chain").body.at("contracts").at("token").as_string());
  EXPECT_TRUE(eventually([&] {
    return cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", user.address().to_checksum()})
               .rfind("1000000000000000000000 ", 0) == 0;
  })) << cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", user.address().to_checksum()});
  std::this_thread::sleep_for(std::chrono::milliseconds{1500});
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", user.address().to_checksum()}),
            "1000000000000000000000 [1e21]");

  // The CLI reads the balance straight from the chain.
  auto balance = run_process({kaisar_binary(), "wallet", "balance", "--onenode", node.url(), "--address",
                              user.address().to_checksum(), "--json"});
  ASSERT_EQ(balance.exit_code, 0) << balance.err;
  auto parsed = json::parse(balance.out);
  EXPECT_EQ(parsed.at("eth_wei").as_string(), "100000000000000000000");
  EXPECT_EQ(parsed.at("token_base_units").as_string(), "1000000000000000000000");
  auto bad = run_process({kaisar_binary(), "wallet", "balance", "--onenode", node.url(), "--address", "0x1234"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--address"), std::string::npos) << bad.err;
}

TEST_F(ChainOneNodeTest, PaymentsForNoLeaseAreIgnoredAndReclaimedByTheirSender) {
  std::vector<std::string> flags = chain_flags(anvil_.url);
  write_text(dir_ + "/onenode.toml", "faucet = true\n");
  flags.push_back("--config");
  flags.push_back(dir_ + "/onenode.toml");
  OneNodeProcess node(dir_ + "/data", flags);
  auto renter = crypto::PrivateKey::generate();
  write_text(dir_ + "/renter.json", crypto::keystore_encrypt(renter, "pw", crypto::kLightScrypt));
  write_text(dir_ + "/renter.password", "pw\n");
  const std::string token = sign_in(node.url(), renter);
  ASSERT_EQ(call("POST", node.url() + "/api/v1/faucet", "{}", {{"authorization", "Bearer " + token}}).status, 200);
  const std::string token_address(call("GET", node.url() + "/api/v1/chain").body.at("contracts").at("token").as_string());
  ASSERT_TRUE(eventually([&] {
    return cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()}) !=
           "0";
  }));

  auto pay = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{kaisar_binary(), "pay", "--onenode", node.url(), "--wallet", dir_ + "/renter.json",
                                  "--password-file", dir_ + "/renter.password"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_process(argv);
  };
  // Bad input first: nothing is sent.
  EXPECT_EQ(pay({"--lease", "lease-1", "--amount", "abc"}).exit_code, 2);
  EXPECT_EQ(pay({"--lease", "lease-1", "--amount", "0"}).exit_code, 2);
  EXPECT_EQ(pay({"--lease", std::string(300, 'x'), "--amount", "5"}).exit_code, 2);
  auto too_much = pay({"--lease", "lease-1", "--amount", "2000000000000000000000"});
  EXPECT_EQ(too_much.exit_code, 6) << too_much.err;
  EXPECT_NE(too_much.err.find("not enough tokens"), std::string::npos) << too_much.err;

  const std::string before =
      cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()});
  auto paid = pay({"--lease", "lease-1", "--amount", "5000", "--json"});
  ASSERT_EQ(paid.exit_code, 0) << paid.err;
  auto receipt = json::parse(paid.out);
  const std::string lease_id(receipt.at("lease_id").as_string());
  EXPECT_TRUE(receipt.at("deposit_tx").is_string());

  // OneNode's indexer sees the deposit. "lease-1" is no lease of this OneNode: the operator
  // sends nothing for it (no gas spent on a stranger's deposit); its sender takes it back.
  const std::string operator_address(call("GET", node.url() + "/api/v1/chain").body.at("operator").as_string());
  const std::string operator_nonce = nonce_of(anvil_.url, operator_address);
  Reply seen;
  EXPECT_TRUE(eventually([&] {
    seen = call("GET", node.url() + "/api/v1/payments/" + lease_id);
    return seen.status == 200;
  })) << seen.raw;
  EXPECT_EQ(seen.body.at("deposited").as_string(), "5000");
  EXPECT_EQ(seen.body.at("renter").as_string(), renter.address().to_checksum());
  EXPECT_FALSE(seen.body.at("settled").as_bool());
  EXPECT_EQ(seen.body.at("events").as_array().size(), 1U);
  EXPECT_EQ(call("GET", node.url() + "/api/v1/payments/0x1234").status, 400);
  EXPECT_EQ(call("GET", node.url() + "/api/v1/payments/0x" + std::string(64, 'a')).status, 404);
  EXPECT_EQ(call("GET", node.url() + "/api/v1/payments/" + lease_id + "?depositor=0x12").status, 400);
  std::this_thread::sleep_for(std::chrono::seconds{2});  // a few more indexer and outbox rounds
  EXPECT_EQ(nonce_of(anvil_.url, operator_address), operator_nonce) << "the operator spent gas on a stray deposit";

  auto reclaim = [&](const std::string& lease) {
    return run_process({kaisar_binary(), "reclaim", "--lease", lease, "--onenode", node.url(), "--wallet",
                        dir_ + "/renter.json", "--password-file", dir_ + "/renter.password", "--json"});
  };
  auto back = reclaim("lease-1");
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(json::parse(back.out).at("amount").as_string(), "5000");
  const std::string escrow(call("GET", node.url() + "/api/v1/chain").body.at("contracts").at("escrow").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", escrow}), "0");
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()}),
            before);
  EXPECT_TRUE(eventually([&] {
    seen = call("GET", node.url() + "/api/v1/payments/" + lease_id);
    return seen.status == 200 && seen.body.at("reclaimed").as_bool();
  })) << seen.raw;
  EXPECT_NE(reclaim("lease-1").exit_code, 0);  // nothing left to take back
  // A reclaimed record cannot be paid into again.
  auto again = pay({"--lease", "lease-1", "--amount", "5000"});
  EXPECT_EQ(again.exit_code, 6) << again.err;
  EXPECT_NE(again.err.find("reclaimed"), std::string::npos) << again.err;
  // A locked deposit stays until its lock passes (the chain's clock decides).
  const auto lock = std::to_string(std::time(nullptr) + 3600);
  ASSERT_EQ(pay({"--lease", "lease-2", "--amount", "7", "--locked-until", lock}).exit_code, 0);
  auto early = reclaim("lease-2");
  EXPECT_EQ(early.exit_code, 6) << early.err;
  EXPECT_NE((early.out + early.err).find("locked until"), std::string::npos) << early.out << early.err;  // --json: on stdout
  advance_chain_time(anvil_.url, 7200);
  EXPECT_EQ(reclaim("lease-2").exit_code, 0);
}

TEST_F(ChainOneNodeTest, FaucetIsOffUnlessConfigured) {
  OneNodeProcess node(dir_ + "/data", chain_flags(anvil_.url));
  const std::string token = sign_in(node.url(), crypto::PrivateKey::generate());
  auto r = call("POST", node.url() + "/api/v1/faucet", "{}", {{"authorization", "Bearer " + token}});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.raw.find("dev chains"), std::string::npos) << r.raw;
}

TEST_F(ChainOneNodeTest, BadChainSettingsAreClearErrors) {
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--rpc-url", anvil_.url, "--chain-id", "3338", "--operator-keystore", dir_ + "/operator.json",
        "--operator-password-file", dir_ + "/operator.password", "--deploy-contracts"},
       "chain id 31337"},
      {{"--rpc-url", anvil_.url, "--deploy-contracts"}, "operator_keystore"},
      {{"--rpc-url", anvil_.url, "--operator-keystore", dir_ + "/operator.json", "--operator-password-file",
        dir_ + "/operator.json"},
       "operator keystore"},
      {{"--rpc-url", anvil_.url, "--operator-keystore", dir_ + "/operator.json", "--operator-password-file",
        dir_ + "/operator.password"},
       "deploy_contracts"},
      {{"--rpc-url", "http://127.0.0.1:1", "--operator-keystore", dir_ + "/operator.json", "--operator-password-file",
        dir_ + "/operator.password", "--deploy-contracts"},
       "127.0.0.1:1"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv{kaisar_binary(), "onenode", "--listen", "127.0.0.1:0", "--data", dir_ + "/bad"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    auto r = run_process(argv, {}, {}, std::chrono::seconds{30});
    EXPECT_NE(r.exit_code, 0) << c.expect;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "want '" << c.expect << "' in: " << r.err;
  }
  // A contracts file for another chain, or pointing at nothing, is refused.
  fs::create_directories(dir_ + "/wrong");
  write_text(dir_ + "/wrong/contracts.json",
             R"({"chain_id":31337,"token":"0x0000000000000000000000000000000000000001",)"
             R"("points":"0x0000000000000000000000000000000000000002","escrow":"0x00000000000000000000000000000000000d0003",)"
             R"("epoch_log":"0x0000000000000000000000000000000000000004","distributor":"0x0000000000000000000000000000000000000005",)"
             R"("registry":"0x0000000000000000000000000000000000000006","deployed_block":0})");
  auto r = run_process({kaisar_binary(), "onenode", "--listen", "127.0.0.1:0", "--data", dir_ + "/wrong", "--rpc-url",
                        anvil_.url, "--operator-keystore", dir_ + "/operator.json", "--operator-password-file",
                        dir_ + "/operator.password"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no LeaseEscrow"), std::string::npos) << r.err;
}

TEST_F(ChainOneNodeTest, UnfundedOperatorCannotDeployAndSaysSo) {
  auto poor = crypto::PrivateKey::generate();
  write_text(dir_ + "/poor.json", crypto::keystore_encrypt(poor, "pw", crypto::kLightScrypt));
  write_text(dir_ + "/poor.password", "pw");
  auto r = run_process({kaisar_binary(), "onenode", "--listen", "127.0.0.1:0", "--data", dir_ + "/poor", "--rpc-url",
                        anvil_.url, "--operator-keystore", dir_ + "/poor.json", "--operator-password-file",
                        dir_ + "/poor.password", "--deploy-contracts"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("funds"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ + "/poor/contracts.json"));
}

// ---- leases: reserve, pay, paid; unpaid leases expire; racing renters ------------------------

class LeaseTest : public ChainOneNodeTest {
 protected:
  // Deploying tests give the agent a private Podman; the others run none.
  virtual bool with_engine() const { return false; }
  // More flags for the agent (a fault-injecting engine socket, say).
  virtual std::vector<std::string> extra_agent_args() { return {}; }
  // More lines for OneNode's config file.
  virtual std::string extra_onenode_config() { return {}; }
  // Seconds a new lease waits for its payment.
  virtual int payment_timeout_seconds() const { return 3; }

  void SetUp() override {
    ChainOneNodeTest::SetUp();
    if (HasFatalFailure()) return;
    std::vector<std::string> flags = chain_flags(anvil_.url);
    write_text(dir_ + "/onenode.toml", "faucet = true\npayment_timeout = " + std::to_string(payment_timeout_seconds()) +
                                           "\n" + extra_onenode_config());
    flags.push_back("--config");
    flags.push_back(dir_ + "/onenode.toml");
    node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", flags);
    env_ = {{"XDG_CONFIG_HOME", dir_ + "/config"}, {"XDG_DATA_HOME", dir_ + "/share"},
            {"KAISAR_NVML_LIBRARY", binary_dir() + "/tests/fakes/libfake_nvml.so"}};
    write_text(dir_ + "/pw", "pw\n");
    auto init = run_process({kaisar_binary(), "provider", "init", "--data", dir_ + "/agent", "--password-file",
                             dir_ + "/pw", "--light-kdf", "--json"},
                            {}, env_);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    provider_id_ = std::string(json::parse(init.out).at("node").as_string());
    provider_owner_ = std::string(json::parse(init.out).at("owner").as_string());
    std::vector<std::string> argv{kaisar_binary(), "provider", "run", "--data", dir_ + "/agent", "--onenode",
                                  node_->url(), "--price-gpu-hour", "500000000000000000", "--price-cpu-core-hour",
                                  "10000000000000000", "--price-ram-gb-hour", "2000000000000000", "--demo-image",
                                  binary_dir() + "/images/demo.tar", "--allow-local-image", "localhost/kaisar/demo:latest"};
    if (with_engine()) {
      engine_ = std::make_unique<PodmanService>(dir_ + "/engine");
      ASSERT_TRUE(engine_->ok()) << engine_->output();
      argv.push_back("--engine-socket");
      argv.push_back(engine_->socket());
    }
    for (auto& a : extra_agent_args()) argv.push_back(a);
    agent_args_ = argv;
    agent_ = std::make_unique<ChildProcess>(argv, env_);
    ASSERT_TRUE(eventually([&] {
      auto r = call("GET", node_->url() + "/api/v1/offers");
      return r.status == 200 && r.body.at("offers").as_array().size() == 1;
    })) << agent_->output();
  }
  // The CLI as the renter: its wallet, signed in to this OneNode.
  RunResult kaisar(std::vector<std::string> args) {
    args.insert(args.begin(), kaisar_binary());
    args.insert(args.end(), {"--onenode", node_->url(), "--wallet", dir_ + "/renter.json", "--password-file", dir_ + "/pw"});
    return run_process(args, {}, env_, std::chrono::seconds{120});
  }
  // A renter wallet with KAI from the faucet, signed in.
  crypto::PrivateKey funded_renter() {
    auto renter = crypto::PrivateKey::generate();
    write_text(dir_ + "/renter.json", crypto::keystore_encrypt(renter, "pw", crypto::kLightScrypt));
    EXPECT_EQ(kaisar({"login"}).exit_code, 0);
    EXPECT_EQ(kaisar({"wallet", "faucet"}).exit_code, 0);
    EXPECT_TRUE(eventually([&] {
      auto b = kaisar({"wallet", "balance", "--json"});
      return b.exit_code == 0 && json::parse(b.out).at("token_base_units").as_string() != "0";
    }));
    return renter;
  }
  int free_gpus() {
    auto r = call("GET", node_->url() + "/api/v1/offers");
    return r.status == 200 && !r.body.at("offers").as_array().empty()
               ? r.body.at("offers").as_array()[0].at("num_gpus").to_number<int>()
               : -1;
  }
  Reply post_lease(const std::string& token, const json::object& body) {
    return call("POST", node_->url() + "/api/v1/leases", json::serialize(body), {{"authorization", "Bearer " + token}});
  }
  json::object spec(int gpus) {
    return json::object{{"offer", provider_id_}, {"image", "localhost/kaisar/demo:latest"}, {"gpus", gpus},
                        {"cpus", 1},           {"memory_gb", 1},                        {"hours", 2}};
  }

  void TearDown() override {
    agent_.reset();
    node_.reset();
    engine_.reset();
    ChainOneNodeTest::TearDown();
  }

  std::unique_ptr<PodmanService> engine_;
  std::unique_ptr<OneNodeProcess> node_;
  std::unique_ptr<ChildProcess> agent_;
  std::map<std::string, std::string> env_;
  std::string provider_id_;
  std::string provider_owner_;
  std::vector<std::string> agent_args_;
};

class DeployTest : public LeaseTest {
 protected:
  bool with_engine() const override { return true; }

};

TEST_F(DeployTest, RentPaysDeploysAndTheContainerAnswersHttpAndSsh) {
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());

  // An image under localhost/ that the provider does not have: refused before anything is held.
  auto unknown = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/nope:latest", "--json"});
  EXPECT_EQ(unknown.exit_code, 4) << unknown.err << unknown.out;  // 404
  EXPECT_NE((unknown.err + unknown.out).find("unknown image localhost/kaisar/nope:latest"), std::string::npos)
      << unknown.err << unknown.out;
  // Without a tag it means :latest, which the provider has; a placement skips providers
  // without the image and says so when none has it.
  const std::string token_now = sign_in(node_->url(), crypto::PrivateKey::generate());  // another renter
  json::object untagged = spec(0);
  untagged["image"] = "localhost/kaisar/demo";
  auto quoted = post_lease(token_now, untagged);
  EXPECT_EQ(quoted.status, 201) << quoted.raw;
  json::object placed = spec(0);
  placed.erase("offer");
  placed["query"] = "cpu_cores>=1";
  placed["image"] = "localhost/kaisar/nope:latest";
  auto nowhere = post_lease(token_now, placed);
  EXPECT_EQ(nowhere.status, 404) << nowhere.raw;
  // A registry on the provider's loopback or private network: refused when asked, clearly.
  for (const char* image : {"127.0.0.1:5000/kaisar/demo:latest", "localhost:5000/x:1", "169.254.169.254/x:1"}) {
    auto inside = kaisar({"rent", "--offer", provider_id_, "--image", image, "--json"});
    EXPECT_NE(inside.exit_code, 0) << image;
    EXPECT_NE((inside.err + inside.out).find("loopback or private address"), std::string::npos)
        << image << ": " << inside.err << inside.out;
  }
  EXPECT_EQ(call("POST", node_->url() + "/api/v1/leases/" + std::string(quoted.body.at("id").as_string()) + "/stop",
                 "{}", {{"authorization", "Bearer " + token_now}})
                .status,
            200);  // cancelled: its capacity back
  ASSERT_EQ(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_ + "/id"}).exit_code, 0);
  const int cores_before = call("GET", node_->url() + "/api/v1/offers").body.at("offers").as_array()[0].at("cpu_cores").to_number<int>();
  auto rent = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--cpus", "1",
                      "--memory-gb", "1", "--hours", "2", "--port", "8080", "--port", "22", "--ssh-key",
                      dir_ + "/id.pub", "--env", "GREETING=hi", "--json"});
  ASSERT_EQ(rent.exit_code, 0) << rent.err << rent.out << agent_->output();
  auto lease = json::parse(rent.out);
  EXPECT_EQ(lease.at("state").as_string(), "running") << rent.out;
  // The lease's own event stream: its state now, then each change.
  auto token = saved_token_of(dir_ + "/config", node_->url());
  auto stream = net::SseReader::open(node_->url() + "/api/v1/leases/" + std::string(lease.at("id").as_string()) + "/events",
                                     {{"authorization", "Bearer " + token}});
  ASSERT_TRUE(stream) << stream.error().message;
  auto first_event = (*stream)->next(std::chrono::seconds{5});
  ASSERT_TRUE(first_event) << first_event.error().message;
  EXPECT_EQ(first_event->event, "lease.state");
  EXPECT_NE(first_event->data.find("\"running\""), std::string::npos) << first_event->data;
  EXPECT_FALSE(net::SseReader::open(node_->url() + "/api/v1/leases/" + std::string(lease.at("id").as_string()) + "/events"))
      << "the stream needs the renter's token";
  // Usage arrives on the stream while it runs, and the cost so far grows.
  auto next_usage = [&]() -> std::optional<json::value> {
    for (int i = 0; i < 30; ++i) {
      auto ev = (*stream)->next(std::chrono::seconds{3});
      if (!ev) return std::nullopt;
      if (ev->event == "lease.usage") return json::parse(ev->data);
    }
    return std::nullopt;
  };
  auto usage1 = next_usage();
  ASSERT_TRUE(usage1);
  EXPECT_GT(usage1->at("memory_bytes").to_number<std::uint64_t>(), 0U) << json::serialize(*usage1);
  {
    // Reported about every second.
    const auto from = std::chrono::steady_clock::now();
    for (int n = 0; n < 3; ++n) ASSERT_TRUE(next_usage());
    EXPECT_LT(std::chrono::steady_clock::now() - from, std::chrono::milliseconds{4500});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds{1500});
  std::optional<json::value> usage2;
  for (int i = 0; i < 5 && (!usage2 || usage2->at("seconds") == usage1->at("seconds")); ++i) usage2 = next_usage();
  ASSERT_TRUE(usage2);
  EXPECT_GT(usage2->at("seconds").to_number<std::uint64_t>(), usage1->at("seconds").to_number<std::uint64_t>());
  EXPECT_GE(std::stoull(std::string(usage2->at("cost_so_far").as_string())),
            std::stoull(std::string(usage1->at("cost_so_far").as_string())));
  auto with_usage = kaisar({"lease", "show", std::string(lease.at("id").as_string()), "--json"});
  EXPECT_TRUE(json::parse(with_usage.out).at("usage").is_object()) << with_usage.out;
  EXPECT_EQ(lease.at("renter").as_string(), renter.address().to_checksum());
  // 2 hours of 1 core + 1 GiB, to the base unit.
  EXPECT_EQ(lease.at("amount").as_string(), std::to_string(2 * (10000000000000000ULL + 2000000000000000ULL)));
  const std::string escrow_id(lease.at("payment").at("lease_id").as_string());
  auto payment = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
  EXPECT_EQ(payment.body.at("deposited"), lease.at("amount"));
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/offers").body.at("offers").as_array()[0].at("cpu_cores").to_number<int>(),
            cores_before - 1)
      << "a running lease holds its core";
  // The container answers through the gateway (the agent's tunnel): HTTP with the lease's
  // access token (curl), and SSH with the lease's key (OpenSSH).
  std::map<int, int> ports;
  for (const auto& ep : lease.at("endpoints").as_array()) {
    ASSERT_TRUE(ep.as_object().contains("public_port")) << json::serialize(ep);
    EXPECT_NE(ep.at("public_port"), ep.at("host_port"));
    ports[ep.at("port").to_number<int>()] = ep.at("public_port").to_number<int>();
  }
  ASSERT_EQ(ports.size(), 2U) << rent.out;
  const std::string access_token(lease.at("access_token").as_string());
  // `kaisar lease show` says how to connect.
  auto human = kaisar({"lease", "show", std::string(lease.at("id").as_string())});
  EXPECT_NE(human.out.find("access token: " + access_token), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("ssh -p " + std::to_string(ports[22]) + " root@127.0.0.1"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("http://127.0.0.1:" + std::to_string(ports[8080]) + "/"), std::string::npos) << human.out;
  const std::string url = "http://127.0.0.1:" + std::to_string(ports[8080]) + "/";
  RunResult curl;
  EXPECT_TRUE(eventually([&] {
    curl = run_process({"curl", "-sS", "-H", "Authorization: Bearer " + access_token, url}, {}, {}, std::chrono::seconds{10});
    return curl.exit_code == 0 && curl.out.find("Kaisar container") != std::string::npos;
  })) << curl.out << curl.err;
  auto refused = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url}, {}, {}, std::chrono::seconds{10});
  EXPECT_EQ(refused.out, "401") << refused.err;
  auto wrong = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                            "Authorization: Bearer " + std::string(32, '0'), url},
                           {}, {}, std::chrono::seconds{10});
  EXPECT_EQ(wrong.out, "401");
  RunResult ssh;
  for (int i = 0; i < 50; ++i) {
    ssh = run_process({"ssh", "-i", dir_ + "/id", "-p", std::to_string(ports[22]), "-o", "StrictHostKeyChecking=no",
                       "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                       "root@127.0.0.1", "echo $KAISAR_LEASE"},
                      {}, {}, std::chrono::seconds{20});
    if (ssh.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  EXPECT_EQ(ssh.exit_code, 0) << ssh.err;
  // kaisar ssh finds the port itself.
  auto via = run_process({kaisar_binary(), "ssh", "--onenode", node_->url(), std::string(lease.at("id").as_string()),
                          "--", "-i", dir_ + "/id", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                          "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "echo", "via-kaisar"},
                         {}, env_, std::chrono::seconds{30});
  EXPECT_EQ(via.exit_code, 0) << via.err;
  EXPECT_EQ(via.out, "via-kaisar\n");
  // The container's output, through OneNode and the agent.
  RunResult output;
  EXPECT_TRUE(eventually([&] {
    output = kaisar({"lease", "logs", std::string(lease.at("id").as_string())});
    // busybox httpd logs each answer on stderr: "…: response:200"
    return output.exit_code == 0 && output.err.find("response:200") != std::string::npos;
  })) << output.out << output.err;
  EXPECT_NE(output.out.find("kaisar demo: ssh on 22, http on 8080"), std::string::npos) << output.out;
  EXPECT_NE(output.err.find("Pubkey auth succeeded for 'root'"), std::string::npos) << output.err;
  EXPECT_EQ(kaisar({"lease", "logs", "no-such-lease"}).exit_code, 4);
  // The lease and its history, as the renter sees them.
  auto shown = kaisar({"lease", "show", std::string(lease.at("id").as_string()), "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  // pending_payment, paid, deploying (sent, creating, starting), running
  const auto shown_lease = json::parse(shown.out);
  const auto& history = shown_lease.at("history").as_array();
  ASSERT_EQ(history.size(), 6U) << shown.out;
  EXPECT_EQ(history[3].at("reason"), "creating the container") << shown.out;
  EXPECT_EQ(history[4].at("reason"), "starting the container") << shown.out;
  auto listed = kaisar({"leases", "--json"});
  ASSERT_EQ(listed.exit_code, 0);
  EXPECT_EQ(json::parse(listed.out).at("leases").as_array().size(), 1U);
  auto bad_env = kaisar({"rent", "--offer", provider_id_, "--image", "x", "--env", "NOEQUALS"});
  EXPECT_EQ(bad_env.exit_code, 2);
  // Two more hours: a top-up of the escrow, seen by the indexer.
  auto extended = kaisar({"lease", "extend", std::string(lease.at("id").as_string()), "--hours", "2", "--json"});
  ASSERT_EQ(extended.exit_code, 0) << extended.err;
  auto longer = json::parse(extended.out);
  EXPECT_EQ(longer.at("spec").at("hours").to_number<int>(), 4);
  EXPECT_EQ(longer.at("amount").as_string(), std::to_string(4 * (10000000000000000ULL + 2000000000000000ULL)));
  EXPECT_TRUE(longer.at("extension").is_null());
  auto deposited = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
  EXPECT_EQ(deposited.body.at("deposited"), longer.at("amount"));
  EXPECT_EQ(kaisar({"lease", "extend", std::string(lease.at("id").as_string()), "--hours", "0"}).exit_code, 2);

  // A follower of the output sees what is there and ends when the container goes.
  std::vector<std::string> follow_argv{kaisar_binary(), "lease", "logs", std::string(lease.at("id").as_string()), "-f",
                                       "--onenode", node_->url()};
  ChildProcess follower(follow_argv, env_);
  EXPECT_TRUE(follower.wait_for_line("kaisar demo:")) << follower.output();

  // The renter stops it: the container goes, and the chain pays the provider for the
  // seconds it ran and the renter the rest, through the outbox.
  std::this_thread::sleep_for(std::chrono::seconds{2});
  auto stopped = kaisar({"lease", "stop", std::string(lease.at("id").as_string()), "--json"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  auto ended = json::parse(stopped.out);
  EXPECT_EQ(ended.at("state").as_string(), "ended");
  bool saw_ended = false;
  for (int i = 0; i < 30 && !saw_ended; ++i) {
    auto ev = (*stream)->next(std::chrono::seconds{5});
    if (!ev) break;
    saw_ended = ev->event == "lease.state" && ev->data.find("\"ended\"") != std::string::npos;
  }
  EXPECT_TRUE(saw_ended) << "the stream announces the end";
  const auto& settlement = ended.at("settlement");
  const auto seconds = settlement.at("seconds").to_number<std::uint64_t>();
  EXPECT_GE(seconds, 2U);
  const unsigned long long price_hour = 10000000000000000ULL + 2000000000000000ULL;
  EXPECT_EQ(settlement.at("to_provider").as_string(), std::to_string(price_hour * seconds / 3600));
  EXPECT_EQ(settlement.at("to_renter").as_string(),
            std::to_string(4 * price_hour - price_hour * seconds / 3600));
  Reply settled;
  EXPECT_TRUE(eventually([&] {
    settled = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
    return settled.status == 200 && settled.body.at("settled").as_bool();
  }, std::chrono::seconds{20})) << settled.raw;
  EXPECT_EQ(settled.body.at("paid_to_provider"), settlement.at("to_provider"));
  EXPECT_EQ(settled.body.at("refunded"), settlement.at("to_renter"));
  const std::string token_address(lease.at("payment").at("token").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", provider_owner_}).substr(0, settlement.at("to_provider").as_string().size()),
            settlement.at("to_provider").as_string());
  EXPECT_TRUE(eventually([&] {
    auto r = net::http_request("GET", "http://127.0.0.1:" + std::to_string(ports[8080]) + "/", {}, {},
                               std::chrono::milliseconds{500});
    return !r;
  })) << "the container is gone";
  EXPECT_EQ(kaisar({"lease", "stop", std::string(lease.at("id").as_string())}).exit_code, 6) << "ended already";
  EXPECT_TRUE(eventually([&] { return !follower.running(); })) << "the followed output ends with the container";
  // A restart of OneNode keeps the lease and its state.
  EXPECT_EQ(node_->stop(), 0);
  std::vector<std::string> flags = chain_flags(anvil_.url);
  flags.push_back("--config");
  flags.push_back(dir_ + "/onenode.toml");
  node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", flags);
  ASSERT_EQ(kaisar({"login"}).exit_code, 0);  // the new process listens on another port: another URL
  auto again = kaisar({"lease", "show", std::string(lease.at("id").as_string()), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out).at("state").as_string(), "ended");

}

TEST_F(LeaseTest, AProviderWithoutAnEngineFailsTheLeaseWithTheReason) {
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());
  auto rent = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--json"});
  EXPECT_EQ(rent.exit_code, 6) << rent.err << rent.out;  // paid, then failed
  auto lease = json::parse(rent.out);
  EXPECT_EQ(lease.at("state").as_string(), "failed");
  EXPECT_NE(std::string(lease.at("reason").as_string()).find("runs no container engine"), std::string::npos) << rent.out;
  // Refunded in full.
  EXPECT_EQ(lease.at("settlement").at("to_provider").as_string(), "0");
  EXPECT_EQ(lease.at("settlement").at("to_renter"), lease.at("amount"));
  EXPECT_EQ(free_gpus(), 2);
}

TEST_F(LeaseTest, UnpaidLeasesExpireAndFreeTheirCapacity) {
  const auto renter = crypto::PrivateKey::generate();
  const std::string token = sign_in(node_->url(), renter);
  auto first = post_lease(token, spec(2));
  ASSERT_EQ(first.status, 201) << first.raw;
  EXPECT_EQ(first.body.at("state").as_string(), "pending_payment");
  EXPECT_EQ(free_gpus(), 0);
  auto second = post_lease(token, spec(1));
  EXPECT_EQ(second.status, 409) << second.raw;
  EXPECT_NE(second.raw.find("not enough free GPUs"), std::string::npos);
  const std::string id(first.body.at("id").as_string());
  ASSERT_TRUE(eventually([&] {
    auto l = call("GET", node_->url() + "/api/v1/leases/" + id, {}, {{"authorization", "Bearer " + token}});
    return l.status == 200 && l.body.at("state").as_string() == "failed";
  }, std::chrono::seconds{15}));
  EXPECT_EQ(free_gpus(), 2);
  EXPECT_EQ(post_lease(token, spec(1)).status, 201);

  // A payment that comes too late does not revive the lease, and the operator sends nothing
  // back: the deposit is the renter's own record, which the renter reclaims after its lock.
  ASSERT_EQ(call("POST", node_->url() + "/api/v1/faucet", "{}", {{"authorization", "Bearer " + token}}).status, 200);
  const std::string token_address(first.body.at("payment").at("token").as_string());
  const std::string escrow(first.body.at("payment").at("escrow").as_string());
  const std::string escrow_id(first.body.at("payment").at("lease_id").as_string());
  const std::string amount(first.body.at("payment").at("amount").as_string());
  const std::string lock = std::to_string(first.body.at("payment").at("locked_until").to_number<std::int64_t>());
  ASSERT_TRUE(eventually([&] {
    return cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()})
               .rfind("1000000000000000000000 ", 0) == 0;
  }));
  const std::string operator_address(call("GET", node_->url() + "/api/v1/chain").body.at("operator").as_string());
  const std::string operator_nonce = nonce_of(anvil_.url, operator_address);
  deposit_with_cast(anvil_.url, renter, first.body.at("payment"), amount, lock);
  Reply late;
  EXPECT_TRUE(eventually([&] {
    late = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
    return late.status == 200;
  }, std::chrono::seconds{20})) << late.raw;
  EXPECT_EQ(late.body.at("deposited").as_string(), amount);
  EXPECT_FALSE(late.body.at("settled").as_bool());
  std::this_thread::sleep_for(std::chrono::seconds{2});
  EXPECT_EQ(nonce_of(anvil_.url, operator_address), operator_nonce) << "the operator spent gas on a late deposit";
  auto failed = call("GET", node_->url() + "/api/v1/leases/" + id, {}, {{"authorization", "Bearer " + token}});
  EXPECT_EQ(failed.body.at("state").as_string(), "failed");
  EXPECT_NE(cast_send(anvil_.url, renter, {escrow, "reclaim(bytes32)", escrow_id}).exit_code, 0) << "reclaimed while locked";
  advance_chain_time(anvil_.url, std::stoll(lock) - std::time(nullptr) + 60);
  auto reclaimed = cast_send(anvil_.url, renter, {escrow, "reclaim(bytes32)", escrow_id});
  ASSERT_EQ(reclaimed.exit_code, 0) << reclaimed.err;
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()}),
            "1000000000000000000000 [1e21]");
}

// ---- hostile payments: dust, front-running, partial payments ---------------------------------

class PaymentTest : public LeaseTest {
 protected:
  int payment_timeout_seconds() const override { return 45; }
  // A wallet that is not the renter, with gas and KAI from the faucet.
  crypto::PrivateKey funded_stranger() {
    auto stranger = crypto::PrivateKey::generate();
    const std::string token = sign_in(node_->url(), stranger);
    EXPECT_EQ(call("POST", node_->url() + "/api/v1/faucet", "{}", {{"authorization", "Bearer " + token}}).status, 200);
    const std::string token_address(call("GET", node_->url() + "/api/v1/chain").body.at("contracts").at("token").as_string());
    EXPECT_TRUE(eventually([&] {
      return cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", stranger.address().to_checksum()}) != "0";
    }));
    return stranger;
  }
  json::value lease_of(const std::string& id) {
    auto r = kaisar({"lease", "show", id, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }
  RunResult pay(const json::value& payment, const std::string& amount) {
    return kaisar({"pay", "--lease", std::string(payment.at("lease_id").as_string()), "--amount", amount,
                   "--locked-until", std::to_string(payment.at("locked_until").to_number<std::int64_t>())});
  }
};

TEST_F(PaymentTest, AnUnderpaidLeaseExpiresAtPayByWhateverDustSitsInTheEscrowAndFreesItsCapacity) {
  const auto stranger = funded_stranger();
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());
  const std::string token = saved_token_of(dir_ + "/config", node_->url());
  const std::string operator_address(call("GET", node_->url() + "/api/v1/chain").body.at("operator").as_string());
  const std::string operator_nonce = nonce_of(anvil_.url, operator_address);
  auto created = post_lease(token, spec(2));
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(free_gpus(), 0);
  const std::string id(created.body.at("id").as_string());
  const json::value payment = created.body.at("payment");
  const std::string amount(payment.at("amount").as_string());
  // Before the pay-by time: the renter deposits dust, a stranger deposits the whole quote
  // (and more) under the same lease id. Neither is the renter paying the quote.
  auto dust = pay(payment, "1");
  ASSERT_EQ(dust.exit_code, 0) << dust.err;
  deposit_with_cast(anvil_.url, stranger, payment, amount, "0");
  const std::string escrow_id(payment.at("lease_id").as_string());
  Reply seen;
  EXPECT_TRUE(eventually([&] {
    seen = call("GET", node_->url() + "/api/v1/payments/" + escrow_id + "?depositor=" + stranger.address().to_checksum());
    return seen.status == 200;
  })) << seen.raw;
  EXPECT_EQ(seen.body.at("deposited").as_string(), amount);
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/payments/" + escrow_id).body.at("deposited").as_string(), "1");
  // At the pay-by time the lease fails, never having been paid, and its GPUs are free again.
  ASSERT_TRUE(eventually([&] { return lease_of(id).at("state").as_string() == "failed"; }, std::chrono::seconds{120}));
  const json::value failed = lease_of(id);
  EXPECT_NE(std::string(failed.at("reason").as_string()).find("not paid in full"), std::string::npos);
  for (const auto& h : failed.at("history").as_array()) EXPECT_NE(h.at("state").as_string(), "paid") << json::serialize(failed);
  EXPECT_TRUE(eventually([&] { return free_gpus() == 2; }));
  // The operator sent nothing for any of it (the faucet's writes came before).
  std::this_thread::sleep_for(std::chrono::seconds{2});
  EXPECT_EQ(nonce_of(anvil_.url, operator_address), operator_nonce);
  // The stranger takes its deposit back at its own cost; the renter's dust waits for its lock.
  const std::string escrow(payment.at("escrow").as_string());
  EXPECT_EQ(cast_send(anvil_.url, stranger, {escrow, "reclaim(bytes32)", escrow_id}).exit_code, 0);
  auto locked = kaisar({"reclaim", "--lease", escrow_id});
  EXPECT_EQ(locked.exit_code, 6) << locked.err;
  advance_chain_time(anvil_.url, payment.at("locked_until").to_number<std::int64_t>() - std::time(nullptr) + 60);
  auto back = kaisar({"reclaim", "--lease", escrow_id, "--json"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(json::parse(back.out).at("amount").as_string(), "1");
}

class PaymentDeployTest : public PaymentTest {
 protected:
  bool with_engine() const override { return true; }
};

TEST_F(PaymentDeployTest, AStrangerFrontRunningTheDepositCannotBlockTheRenterAndDepositPlusTopUpRunTheLease) {
  const auto stranger = funded_stranger();
  funded_renter();
  ASSERT_FALSE(HasFailure());
  const std::string token = saved_token_of(dir_ + "/config", node_->url());
  auto created = post_lease(token, spec(0));
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string id(created.body.at("id").as_string());
  const json::value payment = created.body.at("payment");
  const std::string amount(payment.at("amount").as_string());
  // The stranger sees the renter's deposit coming and front-runs it with dust under the
  // same lease id: under the old escrow this opened the lease for the stranger and the
  // renter's deposit reverted.
  deposit_with_cast(anvil_.url, stranger, payment, "1", "0");
  // The renter pays in two parts: a deposit of part of the quote, then a top-up of the rest.
  const std::string part = std::to_string(std::stoull(amount) - 1000);  // 2.4e16: fits
  ASSERT_EQ(pay(payment, part).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::seconds{2});
  EXPECT_EQ(lease_of(id).at("state").as_string(), "pending_payment") << "paid with part of the quote";
  auto rest = pay(payment, amount);  // the CLI tops the record up by what it lacks
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  ASSERT_TRUE(eventually([&] { return lease_of(id).at("state").as_string() == "running"; }, std::chrono::seconds{90}))
      << json::serialize(lease_of(id)) << agent_->output();
  const std::string escrow_id(payment.at("lease_id").as_string());
  auto funds = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
  EXPECT_EQ(funds.body.at("deposited").as_string(), amount);
  EXPECT_EQ(funds.body.at("events").as_array().size(), 2U);  // deposit + top-up
  // Stopping settles the renter's record only; the stranger's dust stays its own.
  ASSERT_EQ(kaisar({"lease", "stop", id}).exit_code, 0);
  EXPECT_TRUE(eventually([&] {
    funds = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
    return funds.status == 200 && funds.body.at("settled").as_bool();
  }, std::chrono::seconds{30})) << funds.raw;
  auto dust = call("GET", node_->url() + "/api/v1/payments/" + escrow_id + "?depositor=" + stranger.address().to_checksum());
  EXPECT_EQ(dust.body.at("deposited").as_string(), "1");
  EXPECT_FALSE(dust.body.at("settled").as_bool());
  EXPECT_EQ(cast_send(anvil_.url, stranger, {std::string(payment.at("escrow").as_string()), "reclaim(bytes32)", escrow_id})
                .exit_code,
            0);
}

TEST_F(LeaseTest, TheOwnerBindsItsNodeOnChainWithTheNodeKeysSignature) {
  // The owner wallet pays the gas; the node key only signs (EIP-712, this chain and registry).
  auto funded = run_process({node_tool("cast"), "rpc", "--rpc-url", anvil_.url, "anvil_setBalance", provider_owner_,
                             "0xde0b6b3a7640000"});
  ASSERT_EQ(funded.exit_code, 0) << funded.err;
  auto bind = [&] {
    return run_process({kaisar_binary(), "provider", "register", "--data", dir_ + "/agent", "--onenode", node_->url(),
                        "--password-file", dir_ + "/pw", "--json"},
                       {}, env_);
  };
  auto bound = bind();
  ASSERT_EQ(bound.exit_code, 0) << bound.err;
  const std::string registry(json::parse(bound.out).at("registry").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {registry, "ownerOf(address)(address)", provider_id_}),
            crypto::Address::parse(provider_owner_).value().to_checksum());
  EXPECT_EQ(bind().exit_code, 0) << "binding again to the same owner is a no-op";
  // Without the node key nobody else can bind the node: another wallet's register with a
  // signature that is not the node key's reverts.
  auto thief = crypto::PrivateKey::generate();
  ASSERT_EQ(run_process({node_tool("cast"), "rpc", "--rpc-url", anvil_.url, "anvil_setBalance",
                         thief.address().to_checksum(), "0xde0b6b3a7640000"})
                .exit_code,
            0);
  const auto forged = thief.sign_digest(Hash32{}).to_hex();
  EXPECT_NE(cast_send(anvil_.url, thief, {registry, "register(address,bytes)", provider_id_, forged}).exit_code, 0);
}

TEST_F(LeaseTest, BadLeaseRequestsAreRefused) {
  const std::string token = sign_in(node_->url(), crypto::PrivateKey::generate());
  const std::string url = node_->url() + "/api/v1/leases";
  EXPECT_EQ(call("POST", url, json::serialize(spec(1))).status, 401);
  EXPECT_EQ(call("POST", url, json::serialize(spec(1)), {{"authorization", "Bearer nope"}}).status, 401);
  const net::Headers auth{{"authorization", "Bearer " + token}};
  EXPECT_EQ(call("POST", url, "{not json", auth).status, 400);
  EXPECT_EQ(call("POST", url, std::string(2 << 20, ' '), auth).status, 413);
  auto with = [&](std::string_view key, json::value v) {
    json::object s = spec(1);
    s[key] = std::move(v);
    return post_lease(token, s);
  };
  EXPECT_EQ(with("gpus", -1).status, 400);
  EXPECT_EQ(with("hours", 0).status, 400);
  EXPECT_EQ(with("image", "bad image!").status, 400);
  EXPECT_EQ(with("image", "../containers/json").status, 400);
  EXPECT_EQ(with("ports", json::array{0}).status, 400);
  EXPECT_EQ(with("env", json::object{{"1X", "y"}}).status, 400);
  EXPECT_EQ(with("ssh_key", "not a key").status, 400);
  EXPECT_EQ(with("surprise", 1).status, 400);
  EXPECT_EQ(with("offer", "0x00000000000000000000000000000000000000aa").status, 404);
  EXPECT_EQ(with("gpus", 3).status, 409);
  // Each refusal says what is wrong.
  auto message = [](const Reply& r) { return std::string(r.body.at("error").at("message").as_string()); };
  auto negative = with("hours", -2);
  EXPECT_EQ(negative.status, 400);
  EXPECT_NE(message(negative).find("hours must be a whole number from 1"), std::string::npos) << negative.raw;
  EXPECT_EQ(with("hours", 100000).status, 400);
  EXPECT_EQ(with("memory_gb", 0).status, 400);
  EXPECT_EQ(with("cpus", 0).status, 400);
  EXPECT_EQ(with("cpus", 1024).status, 409);  // nobody has that many
  auto port = with("ports", json::array{70000});
  EXPECT_EQ(port.status, 400);
  EXPECT_NE(message(port).find("ports must be distinct numbers from 1 to 65535"), std::string::npos) << port.raw;
  EXPECT_EQ(with("ports", json::array{22, 22}).status, 400);
  auto big_env = with("env", json::object{{"BIG", std::string(40000, 'x')}});
  EXPECT_EQ(big_env.status, 400);
  EXPECT_NE(message(big_env).find("at most 32 KiB"), std::string::npos) << big_env.raw;
  json::object many;
  for (int i = 0; i < 129; ++i) many["V" + std::to_string(i)] = "x";
  EXPECT_EQ(with("env", many).status, 400);
  EXPECT_EQ(with("image", json::string(300, 'a')).status, 400);
  EXPECT_EQ(with("command", json::array{1, 2}).status, 400);
  EXPECT_EQ(with("gpus", "two").status, 400);
  // How the gateway serves ports: only ports the lease exposes, each one way.
  auto with_ports = [&](json::array ports, std::string_view key, json::value list) {
    json::object s = spec(1);
    s["ports"] = std::move(ports);
    s[key] = std::move(list);
    return post_lease(token, s);
  };
  auto not_exposed = with_ports({8080}, "tcp_ports", json::array{5432});
  EXPECT_EQ(not_exposed.status, 400);
  EXPECT_NE(message(not_exposed).find("tcp_ports must list distinct ports that are also in ports"), std::string::npos)
      << not_exposed.raw;
  EXPECT_EQ(with_ports({8080}, "public_ports", json::array{8080, 8080}).status, 400);
  EXPECT_EQ(with_ports({8080}, "public_ports", "8080").status, 400);
  EXPECT_EQ(with_ports({8080}, "public_ports", json::array{"8080"}).status, 400);
  {
    json::object s = spec(1);
    s["ports"] = json::array{22};
    s["tcp_ports"] = json::array{22};
    s["public_ports"] = json::array{22};
    auto both = post_lease(token, s);
    EXPECT_EQ(both.status, 400);
    EXPECT_NE(message(both).find("cannot be both a TCP port and a public HTTP port"), std::string::npos) << both.raw;
  }
  auto bad_flag = kaisar({"rent", "--offer", provider_id_, "--image", "x", "--port", "22/udp"});
  EXPECT_EQ(bad_flag.exit_code, 2);
  EXPECT_NE(bad_flag.err.find("give PORT, PORT/tcp, PORT/http or PORT/public"), std::string::npos) << bad_flag.err;
  // None of this reserved anything.
  EXPECT_EQ(free_gpus(), 2);
  EXPECT_TRUE(call("GET", url, {}, auth).body.at("leases").as_array().empty());
  // Someone else's lease does not exist for you.
  auto mine = post_lease(token, spec(1));
  ASSERT_EQ(mine.status, 201);
  const std::string other = sign_in(node_->url(), crypto::PrivateKey::generate());
  EXPECT_EQ(call("GET", url + "/" + std::string(mine.body.at("id").as_string()), {},
                 {{"authorization", "Bearer " + other}})
                .status,
            404);
}

TEST_F(LeaseTest, AQueryPlacesTheLeaseOnAMatchingOfferOrSaysWhyNot) {
  const std::string token = sign_in(node_->url(), crypto::PrivateKey::generate());
  auto by_query = [&](std::string query, int gpus) {
    json::object s = spec(gpus);
    s.erase("offer");
    s["query"] = std::move(query);
    return post_lease(token, s);
  };
  // The stand-in GPUs are an H100 and an RTX 4090: the offer names the first model.
  auto placed = by_query("gpu_name=H100 num_gpus>=1", 1);
  ASSERT_EQ(placed.status, 201) << json::serialize(placed.body);
  EXPECT_EQ(placed.body.at("provider").as_string(), provider_id_);
  EXPECT_EQ(placed.body.at("state").as_string(), "pending_payment");
  EXPECT_EQ(placed.body.at("spec").at("gpus").to_number<int>(), 1);
  EXPECT_EQ(free_gpus(), 1);  // the offers index follows the reservation at once

  // Nothing matches, nothing has room, the query is not valid, or both ways are given.
  auto none = by_query("gpu_name=A100", 1);
  EXPECT_EQ(none.status, 409);
  EXPECT_NE(std::string(none.body.at("error").at("message").as_string()).find("no online offer matches"),
            std::string::npos);
  EXPECT_EQ(by_query("gpu_name=H100", 2).status, 409);
  auto bad = by_query("num_gpus>>2", 1);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(std::string(bad.body.at("error").at("message").as_string()).find("at position"), std::string::npos);
  EXPECT_EQ(by_query(std::string(3000, 'a'), 1).status, 400);
  json::object both = spec(1);
  both["query"] = "num_gpus>=1";
  EXPECT_EQ(post_lease(token, both).status, 400);
  json::object neither = spec(1);
  neither.erase("offer");
  EXPECT_EQ(post_lease(token, neither).status, 400);
  EXPECT_EQ(free_gpus(), 1);  // none of these reserved anything

  // A GPU model: the machine's other GPU is an RTX 4090.
  json::object model = spec(1);
  model["gpu_model"] = "A100";
  EXPECT_EQ(post_lease(token, model).status, 409);
  model["gpu_model"] = "RTX 4090; rm";
  EXPECT_EQ(post_lease(token, model).status, 400);
  model["gpu_model"] = "RTX_4090";
  model["gpus"] = 0;
  EXPECT_EQ(post_lease(token, model).status, 400);
  model["gpus"] = 1;
  auto rtx = post_lease(token, model);
  ASSERT_EQ(rtx.status, 201) << json::serialize(rtx.body);
  EXPECT_EQ(rtx.body.at("spec").at("gpu_model").as_string(), "rtx 4090");  // one spelling
  EXPECT_EQ(free_gpus(), 0);

  // The offers page: a limit, and how many matched in all.
  auto page = call("GET", node_->url() + "/api/v1/offers?limit=1&q=num_gpus%3E%3D0");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.body.at("total").to_number<int>(), 1);
  EXPECT_EQ(page.body.at("offers").as_array().size(), 1u);
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/offers?limit=0").status, 400);
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/offers?limit=abc").status, 400);
}

TEST_F(LeaseTest, ARetriedRequestWithItsIdempotencyKeyReservesOnce) {
  const std::string token = sign_in(node_->url(), crypto::PrivateKey::generate());
  const std::string url = node_->url() + "/api/v1/leases";
  auto post = [&](const json::object& body, const std::string& key) {
    return call("POST", url, json::serialize(body), {{"authorization", "Bearer " + token}, {"idempotency-key", key}});
  };
  auto first = post(spec(1), "rent-1");
  ASSERT_EQ(first.status, 201) << first.raw;
  auto replay = post(spec(1), "rent-1");
  ASSERT_EQ(replay.status, 200) << replay.raw;
  EXPECT_EQ(replay.body.at("id"), first.body.at("id"));
  EXPECT_EQ(free_gpus(), 1);  // reserved once
  // The same key for another request is refused; so is a malformed key.
  EXPECT_EQ(post(spec(2), "rent-1").status, 409);
  json::object elsewhere = spec(1);
  elsewhere["offer"] = "0x00000000000000000000000000000000000000aa";
  EXPECT_EQ(post(elsewhere, "rent-1").status, 409);
  EXPECT_EQ(post(spec(1), std::string(100, 'k')).status, 400);
  EXPECT_EQ(post(spec(1), "two words").status, 400);
  // A query placement replayed returns the lease it placed.
  json::object by_query = spec(1);
  by_query.erase("offer");
  by_query["query"] = "num_gpus>=1";
  auto placed = post(by_query, "rent-2");
  ASSERT_EQ(placed.status, 201) << placed.raw;
  auto placed_again = post(by_query, "rent-2");
  EXPECT_EQ(placed_again.status, 200);
  EXPECT_EQ(placed_again.body.at("id"), placed.body.at("id"));
  EXPECT_EQ(free_gpus(), 0);
  // Another renter's key space is its own.
  const std::string other = sign_in(node_->url(), crypto::PrivateKey::generate());
  EXPECT_EQ(call("POST", url, json::serialize(spec(1)), {{"authorization", "Bearer " + other}, {"idempotency-key", "rent-1"}})
                .status,
            409);  // no GPU left for it: not handed the first renter's lease
}

TEST_F(LeaseTest, StopExtendLogsAndEventsRefuseBadRequests) {
  const std::string token = sign_in(node_->url(), crypto::PrivateKey::generate());
  auto lease = post_lease(token, spec(1));
  ASSERT_EQ(lease.status, 201);
  const std::string base = node_->url() + "/api/v1/leases/" + std::string(lease.body.at("id").as_string());
  const net::Headers auth{{"authorization", "Bearer " + token}};
  for (const std::string path : {"/stop", "/extend"}) {
    const std::string body = path == "/extend" ? R"({"hours":1})" : "{}";
    EXPECT_EQ(call("POST", base + path, body).status, 401) << path;
    EXPECT_EQ(call("POST", base + path, body, {{"authorization", "Bearer nope"}}).status, 401) << path;
    EXPECT_EQ(call("POST", base + path, std::string(2 << 20, ' '), auth).status, 413) << path;
    EXPECT_EQ(call("POST", node_->url() + "/api/v1/leases/no-such-lease" + path, body, auth).status, 404) << path;
  }
  EXPECT_EQ(call("POST", base + "/extend", "{not json", auth).status, 400);
  EXPECT_EQ(call("POST", base + "/extend", R"({"hours":0})", auth).status, 400);
  EXPECT_EQ(call("POST", base + "/extend", R"({"hours":"2"})", auth).status, 400);
  // Unpaid: nothing to extend yet.
  EXPECT_EQ(call("POST", base + "/extend", R"({"hours":1})", auth).status, 409);
  // Logs and events need the renter's token.
  EXPECT_EQ(call("GET", base + "/logs").status, 401);
  EXPECT_FALSE(net::SseReader::open(base + "/logs", {{"authorization", "Bearer nope"}}));
  EXPECT_FALSE(net::SseReader::open(base + "/events"));
  const std::string other = sign_in(node_->url(), crypto::PrivateKey::generate());
  EXPECT_EQ(call("POST", base + "/stop", "{}", {{"authorization", "Bearer " + other}}).status, 404);
  EXPECT_FALSE(net::SseReader::open(base + "/events", {{"authorization", "Bearer " + other}}));
  // The renter cancels the unpaid lease: its GPU is free again; a replayed stop is a 409.
  EXPECT_EQ(free_gpus(), 1);
  auto cancelled = call("POST", base + "/stop", "{}", auth);
  ASSERT_EQ(cancelled.status, 200) << cancelled.raw;
  EXPECT_EQ(cancelled.body.at("state").as_string(), "failed");
  EXPECT_EQ(cancelled.body.at("reason").as_string(), "cancelled by the renter before paying");
  EXPECT_EQ(free_gpus(), 2);
  EXPECT_EQ(call("POST", base + "/stop", "{}", auth).status, 409);
}

TEST_F(LeaseTest, HundredRentersRaceForTheLastGpusAndOneWins) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 100; ++i) tokens.push_back(sign_in(node_->url(), crypto::PrivateKey::generate()));
  std::atomic<int> created{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> renters;
  const std::string body = json::serialize(spec(2));
  for (const auto& token : tokens) {
    renters.emplace_back([&, token] {
      auto r = net::http_request("POST", node_->url() + "/api/v1/leases", body,
                                 {{"authorization", "Bearer " + token}, {"content-type", "application/json"}},
                                 std::chrono::seconds{30});
      if (r && r->status == 201) ++created;
      else if (r && r->status == 409) ++refused;
    });
  }
  for (auto& t : renters) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 99);
  EXPECT_EQ(free_gpus(), 0);
}

class LogStreamCapTest : public DeployTest {
 protected:
  std::string extra_onenode_config() override { return "log_streams_per_renter = 2\nlog_streams_per_lease = 2\n"; }
};

TEST_F(LogStreamCapTest, ARenterOverTheLogStreamCapGets429WhileAnotherRentersStreamWorks) {
  // Two renters, each with a running lease.
  auto rent = [&] {
    funded_renter();
    auto r = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--cpus", "1",
                     "--memory-gb", "1", "--hours", "1", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out << agent_->output();
    return std::pair{r.exit_code == 0 ? std::string(json::parse(r.out).at("id").as_string()) : std::string{},
                     saved_token_of(dir_ + "/config", node_->url())};
  };
  const auto [lease_a, token_a] = rent();
  const auto [lease_b, token_b] = rent();
  ASSERT_FALSE(HasFailure());
  auto follow = [&](const std::string& lease, const std::string& token) {
    return net::SseReader::open(node_->url() + "/api/v1/leases/" + lease + "/logs?follow=1",
                                {{"authorization", "Bearer " + token}});
  };
  auto first = follow(lease_a, token_a);
  auto second = follow(lease_a, token_a);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(second) << second.error().message;
  auto third = follow(lease_a, token_a);
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().message.find("429"), std::string::npos) << third.error().message;
  EXPECT_NE(third.error().message.find("log streams open"), std::string::npos) << third.error().message;
  // The other renter is not held back by the first one's streams.
  auto other = follow(lease_b, token_b);
  ASSERT_TRUE(other) << other.error().message;
  // A stream that ends gives its slot back.
  first->reset();
  EXPECT_TRUE(eventually([&] { return follow(lease_a, token_a).has_value(); }));
}

// Epochs of 2 s, so that a lease's job time shows in its provider's uptime leaf, and
// leases' ports probed every second.
class EpochDeployTest : public DeployTest {
 protected:
  std::string extra_onenode_config() override { return "epoch_length = 2\nlease_probe_interval = 1\n"; }
  // Job seconds in the provider's uptime leaf of the epoch after the current one (which
  // starts after now), once it has closed.
  std::uint64_t job_seconds_of_next_epoch() {
    const auto epoch = call("GET", node_->url() + "/api/v1/epochs").body.at("current").to_number<std::uint64_t>() + 1;
    Reply proof;
    EXPECT_TRUE(eventually([&] {
      proof = call("GET", node_->url() + "/api/v1/epochs/" + std::to_string(epoch) + "/proof/" + provider_id_);
      return proof.status == 200;
    }, std::chrono::seconds{30})) << proof.raw;
    if (proof.status != 200) return UINT64_MAX;
    // uptime leaf = 0x02 ‖ provider (20) ‖ epoch (8) ‖ uptime s (8) ‖ job s (8), big-endian
    const Bytes leaf = from_hex(proof.body.at("leaf").as_string()).value();
    EXPECT_EQ(leaf.size(), 45U);
    std::uint64_t job = 0;
    for (std::size_t i = 37; i < 45 && i < leaf.size(); ++i) job = job << 8 | leaf[i];
    return job;
  }
  RunResult rent_one_core() {
    return kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--cpus", "1",
                   "--memory-gb", "1", "--hours", "2", "--port", "8080", "--json"});
  }
};

// A provider renting its own machine (the renter is its owner wallet) earns no job time;
// a stranger's lease on the same machine does, while its container answers: once the
// container is gone behind the agent's back (which still calls the lease running), OneNode's
// probes through the gateway find nobody, and the lease earns nothing more.
TEST_F(EpochDeployTest, SelfRentalAndLeasesWhoseContainerIsGoneEarnNoJobTime) {
  std::filesystem::copy_file(dir_ + "/agent/owner.json", dir_ + "/renter.json");
  ASSERT_EQ(kaisar({"login"}).exit_code, 0);
  ASSERT_EQ(kaisar({"wallet", "faucet"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] {
    auto b = kaisar({"wallet", "balance", "--json"});
    return b.exit_code == 0 && json::parse(b.out).at("token_base_units").as_string() != "0";
  }));
  auto own = rent_one_core();
  ASSERT_EQ(own.exit_code, 0) << own.err << own.out << agent_->output();
  EXPECT_EQ(json::parse(own.out).at("state").as_string(), "running") << own.out;
  EXPECT_EQ(crypto::Address::parse(json::parse(own.out).at("renter").as_string()).value(),
            crypto::Address::parse(provider_owner_).value()) << own.out;
  // Its container answers OneNode's probes, and still the lease earns no job time.
  const std::string own_id(json::parse(own.out).at("id").as_string());
  Reply shown;
  ASSERT_TRUE(eventually([&] {
    shown = call("GET", node_->url() + "/api/v1/leases/" + own_id, "",
                 {{"authorization", "Bearer " + saved_token_of(dir_ + "/config", node_->url())}});
    const json::value* answering = shown.status == 200 ? shown.body.as_object().if_contains("answering") : nullptr;
    return answering != nullptr && answering->as_bool();
  }, std::chrono::seconds{30})) << shown.raw;
  EXPECT_EQ(job_seconds_of_next_epoch(), 0U) << "a self-rented lease earned job time";

  (void)funded_renter();
  ASSERT_FALSE(HasFailure());
  auto other = rent_one_core();
  ASSERT_EQ(other.exit_code, 0) << other.err << other.out << agent_->output();
  EXPECT_EQ(json::parse(other.out).at("state").as_string(), "running") << other.out;
  const std::string other_id(json::parse(other.out).at("id").as_string());
  std::uint64_t job = 0;
  EXPECT_TRUE(eventually([&] {  // from the first answered probe on
    job = job_seconds_of_next_epoch();
    return job > 0 && job < UINT64_MAX;
  }, std::chrono::seconds{30})) << job;

  provider::runtime::DockerClient engine(engine_->socket());
  auto containers = engine.list("kaisar.lease", other_id);
  ASSERT_TRUE(containers && containers->size() == 1);
  ASSERT_TRUE(engine.remove(containers->front().id));
  EXPECT_TRUE(eventually([&] { return job_seconds_of_next_epoch() == 0; }, std::chrono::seconds{40}))
      << "a lease whose container is gone still earned job time";
  EXPECT_NE(node_->process().output().find("does not answer"), std::string::npos);
  auto lease = call("GET", node_->url() + "/api/v1/leases/" + other_id, "",
                    {{"authorization", "Bearer " + saved_token_of(dir_ + "/config", node_->url())}});
  ASSERT_EQ(lease.status, 200) << lease.raw;
  EXPECT_EQ(lease.body.at("state").as_string(), "running");  // by the provider's word
  EXPECT_FALSE(lease.body.at("answering").as_bool()) << lease.raw;
}

TEST_F(DeployTest, AnAgentRestartAdoptsItsContainerAndRemovesOrphans) {
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());
  auto rent = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--port", "8080"});
  ASSERT_EQ(rent.exit_code, 0) << rent.err << agent_->output();
  // Progress as it goes, then how to connect.
  EXPECT_NE(rent.err.find("deploying: creating the container"), std::string::npos) << rent.err;
  EXPECT_NE(rent.err.find("deploying: starting the container"), std::string::npos) << rent.err;
  EXPECT_NE(rent.out.find("port 8080: http://127.0.0.1:"), std::string::npos) << rent.out;
  const auto at = rent.out.find("lease ");
  ASSERT_NE(at, std::string::npos) << rent.out;
  const std::string lease_id = rent.out.substr(at + 6, rent.out.find(':', at) - at - 6);

  provider::runtime::DockerClient engine(engine_->socket());
  auto before = engine.list("kaisar.lease", lease_id);
  ASSERT_TRUE(before && before->size() == 1);
  // A container of a lease OneNode does not know (left behind by some earlier run).
  provider::runtime::ContainerSpec orphan;
  orphan.image = "localhost/kaisar/demo:latest";
  orphan.command = {"/init.sh"};
  orphan.labels = {{"kaisar.lease", "orphan-lease"}};
  auto orphan_id = engine.create(orphan);
  ASSERT_TRUE(orphan_id && engine.start(*orphan_id));

  // The agent dies and comes back.
  agent_->stop(SIGKILL);
  std::vector<std::string> argv{kaisar_binary(), "provider", "run", "--data", dir_ + "/agent", "--onenode",
                                node_->url(), "--price-gpu-hour", "500000000000000000", "--price-cpu-core-hour",
                                "10000000000000000", "--price-ram-gb-hour", "2000000000000000", "--demo-image",
                                binary_dir() + "/images/demo.tar", "--engine-socket", engine_->socket(),
                                "--allow-local-image", "localhost/kaisar/demo:latest"};
  agent_ = std::make_unique<ChildProcess>(argv, env_);
  EXPECT_TRUE(eventually([&] {
    auto left = engine.list("kaisar.lease", "orphan-lease");
    return left && left->empty();
  })) << agent_->output();
  auto after = engine.list("kaisar.lease", lease_id);
  ASSERT_TRUE(after && after->size() == 1);
  EXPECT_EQ(after->front().id, before->front().id) << "the running container was adopted, not started again";
  auto shown = kaisar({"lease", "show", lease_id, "--json"});
  EXPECT_EQ(json::parse(shown.out).at("state").as_string(), "running");
  // Its page through the gateway, over the agent's new tunnel.
  std::string public_url;
  const json::value running = json::parse(shown.out);
  for (const auto& ep : running.at("endpoints").as_array()) {
    if (ep.at("port") == 8080) public_url = std::string(ep.at("url").as_string());
  }
  ASSERT_FALSE(public_url.empty()) << shown.out;
  const std::string access = "Authorization: Bearer " + std::string(running.at("access_token").as_string());
  auto fetch = [&] { return run_process({"curl", "-sS", "-m", "5", "-H", access, public_url}, {}, {}, std::chrono::seconds{10}); };
  EXPECT_TRUE(eventually([&] { return fetch().out.find("Kaisar container") != std::string::npos; })) << agent_->output();

  // OneNode restarts (same address) while the lease runs: the lease, its container and the
  // agent's channel come back, and the lease still ends and settles.
  const std::string listen = node_->url().substr(std::string("http://").size());
  EXPECT_EQ(node_->stop(), 0);
  std::vector<std::string> flags = chain_flags(anvil_.url);
  flags.push_back("--config");
  flags.push_back(dir_ + "/onenode.toml");
  node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", flags, listen);
  EXPECT_TRUE(eventually([&] { return free_gpus() >= 0; })) << "the agent is back online\n" << agent_->output();
  shown = kaisar({"lease", "show", lease_id, "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out).at("state").as_string(), "running");
  auto still = engine.list("kaisar.lease", lease_id);
  ASSERT_TRUE(still && still->size() == 1);
  EXPECT_EQ(still->front().id, before->front().id) << "the container was neither restarted nor replaced";
  // The same public address works again once the agent has redialed the restarted gateway.
  EXPECT_TRUE(eventually([&] { return fetch().out.find("Kaisar container") != std::string::npos; }))
      << fetch().err << agent_->output();
  auto stopped = kaisar({"lease", "stop", lease_id, "--json"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err << stopped.out;
  // Its public port stops accepting at once.
  auto after_end = fetch();
  EXPECT_NE(after_end.exit_code, 0) << after_end.out;
  EXPECT_TRUE(eventually([&] {
    auto left = engine.list("kaisar.lease", lease_id);
    return left && left->empty();
  })) << "the ended lease leaves nothing behind";
}

// OneNode runs no gateway of its own: a `kaisar gateway` process links in with its token.
class RemoteGatewayTest : public DeployTest {
 protected:
  std::string extra_onenode_config() override {
    write_text(dir_ + "/link.token", "link-token-0123456789abcdef\n");
    return "gateway_link_token_file = \"" + dir_ + "/link.token\"\n";
  }
  std::unique_ptr<ChildProcess> start_gateway(const std::string& token_file) {
    auto g = std::make_unique<ChildProcess>(std::vector<std::string>{kaisar_binary(), "gateway", "--onenode", node_->url(),
                                                                     "--token-file", token_file, "--data", dir_ + "/gateway"},
                                            env_);
    EXPECT_TRUE(g->wait_for_line("gateway tunnels at ")) << g->output();
    return g;
  }
  // The link route as a WebSocket upgrade with this bearer token: the HTTP status.
  std::string link_status(const std::string& token) {
    return run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Connection: Upgrade", "-H",
                        "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", "Authorization: Bearer " + token,
                        node_->url() + "/api/v1/gateway/link"},
                       {}, {}, std::chrono::seconds{10})
        .out;
  }
};

TEST_F(RemoteGatewayTest, AGatewayOfItsOwnRelaysTheLeaseAndKeepsItsPortsAcrossARestart) {
  EXPECT_EQ(link_status("wrong-token-0123456789"), "401");
  EXPECT_EQ(link_status(""), "401");
  auto gateway = start_gateway(dir_ + "/link.token");
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_ + "/id"}).exit_code, 0);
  auto rent = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--port", "8080",
                      "--port", "22", "--ssh-key", dir_ + "/id.pub", "--json"});
  ASSERT_EQ(rent.exit_code, 0) << rent.err << agent_->output() << gateway->output();
  const json::value lease = json::parse(rent.out);
  const std::string lease_id(lease.at("id").as_string());
  std::map<int, int> ports;
  for (const auto& ep : lease.at("endpoints").as_array()) {
    ASSERT_TRUE(ep.as_object().contains("public_port")) << rent.out;
    ports[ep.at("port").to_number<int>()] = ep.at("public_port").to_number<int>();
  }
  ASSERT_EQ(ports.size(), 2U);
  const std::string url = "http://127.0.0.1:" + std::to_string(ports[8080]) + "/";
  const std::string access = "Authorization: Bearer " + std::string(lease.at("access_token").as_string());
  auto fetch = [&] { return run_process({"curl", "-sS", "-m", "5", "-H", access, url}, {}, {}, std::chrono::seconds{10}); };
  EXPECT_TRUE(eventually([&] { return fetch().out.find("Kaisar container") != std::string::npos; }))
      << fetch().err << agent_->output() << gateway->output();
  auto refused = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url}, {}, {}, std::chrono::seconds{10});
  EXPECT_EQ(refused.out, "401");
  RunResult ssh;
  EXPECT_TRUE(eventually([&] {
    ssh = run_process({"ssh", "-i", dir_ + "/id", "-p", std::to_string(ports[22]), "-o", "StrictHostKeyChecking=no", "-o",
                       "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1",
                       "echo through-the-gateway"},
                      {}, {}, std::chrono::seconds{20});
    return ssh.exit_code == 0;
  })) << ssh.err;
  EXPECT_EQ(ssh.out, "through-the-gateway\n");

  // The gateway restarts: the same public ports serve the lease again once it has relinked
  // and the agent has redialed.
  EXPECT_EQ(gateway->stop(SIGTERM), 0) << gateway->output();
  EXPECT_NE(fetch().exit_code, 0) << "served with the gateway down";
  gateway = start_gateway(dir_ + "/link.token");
  EXPECT_TRUE(eventually([&] { return fetch().out.find("Kaisar container") != std::string::npos; }))
      << fetch().err << kaisar({"lease", "show", lease_id, "--json"}).out << agent_->output() << gateway->output();

  auto stopped = kaisar({"lease", "stop", lease_id, "--json"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_TRUE(eventually([&] { return fetch().exit_code != 0; }, std::chrono::seconds{1})) << "the ended lease's port still answers";
}

// An engine that takes connections and never answers: deployment hangs, then the agent goes.
class HangingEngineTest : public LeaseTest {
 protected:
  std::vector<std::string> extra_agent_args() override {
    const std::string path = dir_ + "/hanging.sock";
    hang_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(hang_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(hang_fd_, 16), 0);
    return {"--engine-socket", path};
  }
  void TearDown() override {
    LeaseTest::TearDown();
    if (hang_fd_ >= 0) ::close(hang_fd_);
  }
  int hang_fd_ = -1;
};

TEST_F(HangingEngineTest, AProviderThatDisconnectsWhileDeployingFailsTheLeaseAndRefundsInFull) {
  const auto renter = funded_renter();
  ASSERT_FALSE(HasFailure());
  auto rent = kaisar({"rent", "--offer", provider_id_, "--image", "localhost/kaisar/demo:latest", "--wait", "3", "--json"});
  EXPECT_EQ(rent.exit_code, 5) << rent.err << rent.out;  // paid, still deploying when --wait ran out
  auto lease = json::parse(rent.out);
  EXPECT_EQ(lease.at("state").as_string(), "deploying") << rent.out;
  const std::string id(lease.at("id").as_string());
  agent_->stop(SIGKILL);
  ASSERT_TRUE(eventually([&] {
    auto shown = kaisar({"lease", "show", id, "--json"});
    return shown.exit_code == 0 && json::parse(shown.out).at("state").as_string() == "failed";
  })) << "the lease fails when its provider goes away mid-deployment";
  const std::string escrow_id(lease.at("payment").at("lease_id").as_string());
  Reply refunded;
  EXPECT_TRUE(eventually([&] {
    refunded = call("GET", node_->url() + "/api/v1/payments/" + escrow_id);
    return refunded.status == 200 && refunded.body.at("settled").as_bool();
  }, std::chrono::seconds{20})) << refunded.raw;
  EXPECT_EQ(refunded.body.at("refunded"), lease.at("amount"));
  EXPECT_EQ(refunded.body.at("paid_to_provider").as_string(), "0");
  const std::string token_address(lease.at("payment").at("token").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", renter.address().to_checksum()}),
            "1000000000000000000000 [1e21]");
}

// ---- Proof of Physical Work: checkers, attestations, epochs, rewards -------------------------

class PopwTest : public ChainOneNodeTest {
 protected:
  // OneNode checks a new provider within 2 s, with small work (n = 256, 4 MiB of memory),
  // and closes an epoch every 3 s, sharing 1 KAI that it mints.
  void start_node(const std::string& extra_config = {},
                  const std::string& sizes = "check_matrix_n = 256\ncheck_samples = 16\n") {
    write_text(dir_ + "/onenode.toml",
               "faucet = true\nfirst_check_within = 2\ncheck_memory_bytes = 4194304\ncheck_timeout = 60\n"
               "epoch_length = 3\nepoch_reward = \"1000000000000000000\"\nfund_rewards = true\n" +
                   sizes + extra_config);
    std::vector<std::string> flags = chain_flags(anvil_.url);
    flags.insert(flags.end(), {"--config", dir_ + "/onenode.toml"});
    node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", flags);
    write_text(dir_ + "/pw", "pw\n");
  }
  // A provider agent: CPU-only, or with the stand-in NVML's two GPUs (an H100 first).
  void start_provider(bool fake_gpus) {
    std::map<std::string, std::string> env{{"XDG_DATA_HOME", dir_ + "/share"}};
    if (fake_gpus) env["KAISAR_NVML_LIBRARY"] = binary_dir() + "/tests/fakes/libfake_nvml.so";
    else env["KAISAR_NVML_LIBRARY"] = "/nonexistent/libnvidia-ml.so.1";
    auto init = run_process({kaisar_binary(), "provider", "init", "--data", dir_ + "/agent", "--password-file",
                             dir_ + "/pw", "--light-kdf", "--json"},
                            {}, env);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    provider_id_ = std::string(json::parse(init.out).at("node").as_string());
    provider_owner_ = std::string(json::parse(init.out).at("owner").as_string());
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kaisar_binary(), "provider", "run", "--data", dir_ + "/agent", "--onenode", node_->url(),
                                 "--price-cpu-core-hour", "10000000000000000", "--price-gpu-hour", "500000000000000000"},
        env);
  }
  // A checker process with its own wallet; returns its node address.
  std::string start_checker(const std::string& name, bool dishonest = false) {
    auto init = run_process({kaisar_binary(), "checker", "init", "--data", dir_ + "/" + name, "--password-file",
                             dir_ + "/pw", "--light-kdf", "--json"});
    EXPECT_EQ(init.exit_code, 0) << init.err;
    std::map<std::string, std::string> env;
    if (dishonest) env["KAISAR_CHECKER_DISHONEST"] = "1";
    checkers_.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{kaisar_binary(), "checker", "run", "--data", dir_ + "/" + name, "--onenode", node_->url()},
        env));
    return init.exit_code == 0 ? std::string(json::parse(init.out).at("node").as_string()) : std::string{};
  }
  json::object provider_view() { return call("GET", node_->url() + "/api/v1/providers/" + provider_id_).body.as_object(); }
  bool checked() {
    auto r = call("GET", node_->url() + "/api/v1/providers/" + provider_id_);
    return r.status == 200 && r.body.at("verification").is_object();
  }
  void TearDown() override {
    checkers_.clear();
    agent_.reset();
    node_.reset();
    ChainOneNodeTest::TearDown();
  }

  std::unique_ptr<OneNodeProcess> node_;
  std::unique_ptr<ChildProcess> agent_;
  std::vector<std::unique_ptr<ChildProcess>> checkers_;
  std::string provider_id_, provider_owner_;
};

TEST_F(PopwTest, AnHonestProviderIsVerifiedAndEachEpochIsProvenOnChain) {
  start_node("check_allowance_ms = 20000\n");
  start_provider(false);
  const std::string checker_id = start_checker("checker");
  ASSERT_TRUE(eventually([&] { return checked(); }, std::chrono::seconds{60})) << agent_->output() << checkers_[0]->output();
  json::object p = provider_view();
  const json::object& v = p.at("verification").as_object();
  EXPECT_TRUE(p.at("verified").as_bool()) << json::serialize(p);
  EXPECT_EQ(v.at("class").as_string(), "cpu:" + std::to_string(p.at("hardware").at("cpu_cores").to_number<std::int64_t>()));
  EXPECT_GT(v.at("ops_per_second").to_number<double>(), 0);
  EXPECT_EQ(v.at("checker").as_string(), checker_id);
  // Claimed and verified side by side: the memory phase filled 4 MiB of the RAM the agent
  // claims, and nothing measured its disk; rewards count the verified figures.
  const auto claimed_ram = p.at("hardware").at("ram_bytes").to_number<std::uint64_t>();
  EXPECT_GT(claimed_ram, 4194304U);
  EXPECT_EQ(p.at("verified_memory_bytes").to_number<std::uint64_t>(), 4194304U) << json::serialize(p);
  EXPECT_EQ(p.at("verified_disk_bytes").to_number<std::uint64_t>(), 0U);
  // Offers say so, and search can use it (once the offer index has seen the verdict: under
  // ASan it can trail the provider's view).
  Reply offers;
  EXPECT_TRUE(eventually([&] {
    offers = call("GET", node_->url() + "/api/v1/offers?q=verified%3Dtrue%20perf%3E0");
    return offers.status == 200 && offers.body.at("offers").as_array().size() == 1;
  }, std::chrono::seconds{20}));
  ASSERT_EQ(offers.status, 200) << offers.raw;
  ASSERT_EQ(offers.body.at("offers").as_array().size(), 1U) << offers.raw;
  EXPECT_GT(offers.body.at("offers").at(0).at("perf_per_price").to_number<double>(), 0);
  const json::value& offer = offers.body.at("offers").at(0);
  EXPECT_EQ(offer.at("memory_bytes").to_number<std::uint64_t>(), claimed_ram);
  EXPECT_EQ(offer.at("verified_memory_bytes").to_number<std::uint64_t>(), 4194304U);
  EXPECT_GT(offer.at("disk_bytes").to_number<std::uint64_t>(), 0U);
  EXPECT_EQ(offer.at("verified_disk_bytes").to_number<std::uint64_t>(), 0U);

  // The signed result, checkable by anyone against the chain's domain.
  auto list = call("GET", node_->url() + "/api/v1/attestations?provider=" + provider_id_);
  ASSERT_EQ(list.status, 200);
  ASSERT_GE(list.body.at("attestations").as_array().size(), 1U);
  const json::object& entry = list.body.at("attestations").at(0).as_object();
  auto attestation = popw::attestation_from_json(entry.at("attestation"));
  ASSERT_TRUE(attestation) << attestation.error().message;
  const auto contracts = call("GET", node_->url() + "/api/v1/chain").body.at("contracts");
  const std::string epoch_log(contracts.at("epoch_log").as_string());
  const popw::AttestationDomain domain{31337, crypto::Address::parse(epoch_log).value()};
  EXPECT_TRUE(popw::verify_attestation(*attestation, crypto::Signature::parse(entry.at("signature").as_string()).value(), domain));
  EXPECT_TRUE(attestation->passed);
  EXPECT_EQ(attestation->provider.to_checksum(), provider_id_);

  // The epoch holding it closes; its root goes on chain; the proof leads to that root.
  const auto epoch = entry.at("epoch").to_number<std::uint64_t>();
  const std::string check_id(entry.at("check_id").as_string());
  json::object proof;
  ASSERT_TRUE(eventually([&] {
    auto r = call("GET", node_->url() + "/api/v1/epochs/" + std::to_string(epoch) + "/proof/" + check_id);
    if (r.status != 200 || r.body.at("transaction").is_null()) return false;
    proof = r.body.as_object();
    return true;
  }, std::chrono::seconds{30}));
  std::vector<Hash32> path;
  for (const auto& h : proof.at("proof").as_array()) path.push_back(from_hex_fixed<32>(h.as_string()).value());
  const Bytes leaf = from_hex(proof.at("leaf").as_string()).value();
  const Hash32 leaf_hash = crypto::merkle_leaf_hash(leaf);
  EXPECT_EQ(to_hex(leaf_hash), proof.at("leaf_hash").as_string());
  EXPECT_EQ(leaf[0], 0x01);  // an attestation leaf: its digest and signature
  ASSERT_TRUE(eventually([&] {
    auto r = run_process({node_tool("cast"), "call", "--rpc-url", anvil_.url, epoch_log,
                          "epochOf(uint64)(bytes32,uint64,uint64,bool)", std::to_string(epoch)});
    return r.exit_code == 0 && r.out.find("true") != std::string::npos;
  }));
  const std::string on_chain = cast_call(anvil_.url, {epoch_log, "epochOf(uint64)(bytes32,uint64,uint64,bool)", std::to_string(epoch)});
  const std::string chain_root = on_chain.substr(0, on_chain.find('\n'));
  EXPECT_EQ(chain_root, proof.at("root").as_string());
  EXPECT_TRUE(crypto::verify_merkle_proof(leaf_hash, path, from_hex_fixed<32>(chain_root).value()));
  // The provider's uptime record is in there too.
  auto uptime = call("GET", node_->url() + "/api/v1/epochs/" + std::to_string(epoch) + "/proof/" + provider_id_);
  ASSERT_EQ(uptime.status, 200) << uptime.raw;
  EXPECT_EQ(uptime.body.at("kind").as_string(), "uptime");
  EXPECT_EQ(uptime.body.at("root").as_string(), chain_root);

  // Rewards: the provider's owner claims what its epochs earned.
  ASSERT_EQ(run_process({node_tool("cast"), "rpc", "--rpc-url", anvil_.url, "anvil_setBalance", provider_owner_,
                         "0x3635c9adc5dea00000"}).exit_code, 0);
  auto rewards = [&](std::vector<std::string> args) {
    args.insert(args.begin(), kaisar_binary());
    args.insert(args.end(), {"--onenode", node_->url(), "--wallet", dir_ + "/agent/owner.json", "--password-file", dir_ + "/pw"});
    return run_process(args, {}, {{"XDG_CONFIG_HOME", dir_ + "/config"}}, std::chrono::seconds{120});
  };
  auto listed = rewards({"rewards", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  ASSERT_FALSE(json::parse(listed.out).at("rewards").as_array().empty()) << listed.out;
  std::string claimed;
  ASSERT_TRUE(eventually([&] {
    auto c = rewards({"rewards", "claim", "--json"});
    if (c.exit_code != 0) return false;
    claimed = c.out;
    return !json::parse(c.out).at("claimed").as_array().empty();
  }, std::chrono::seconds{30})) << claimed;
  const std::string total(json::parse(claimed).at("total").as_string());
  const std::string token(contracts.at("token").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {token, "balanceOf(address)(uint256)", provider_owner_}).substr(0, total.size()), total);
  // Claimed once only.
  auto again = rewards({"rewards", "claim", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json::value second_claims = json::parse(again.out);
  const json::value first_claims = json::parse(claimed);
  for (const auto& c : second_claims.at("claimed").as_array()) {
    for (const auto& first : first_claims.at("claimed").as_array()) EXPECT_NE(c.at("epoch"), first.at("epoch"));
  }

  // Bad requests are clear errors.
  for (const auto& [path_, status] : std::vector<std::pair<std::string, int>>{
           {"/api/v1/epochs/abc", 400},
           {"/api/v1/epochs/99999", 404},
           {"/api/v1/epochs/0/proof/nothing-like-this", 404},
           {"/api/v1/epochs/18446744073709551616", 400},
           {"/api/v1/epochs?limit=0", 400},
           {"/api/v1/attestations?provider=0x12", 400},
           {"/api/v1/rewards?account=nobody", 400},
           {"/api/v1/rewards", 400}}) {
    auto r = call("GET", node_->url() + path_);
    EXPECT_EQ(r.status, status) << path_ << ": " << r.raw;
  }

  // A restart keeps attestations, epochs and the verification. (On a fresh port: only the
  // API is asked, and a parallel test may have taken the old one meanwhile.)
  const auto before = call("GET", node_->url() + "/api/v1/epochs/" + std::to_string(epoch)).body;
  ASSERT_EQ(node_->stop(), 0);
  std::vector<std::string> flags = chain_flags(anvil_.url);
  flags.insert(flags.end(), {"--config", dir_ + "/onenode.toml"});
  node_ = std::make_unique<OneNodeProcess>(dir_ + "/data", flags);
  EXPECT_EQ(call("GET", node_->url() + "/api/v1/epochs/" + std::to_string(epoch)).body, before);
  EXPECT_GE(call("GET", node_->url() + "/api/v1/attestations?provider=" + provider_id_).body.at("attestations").as_array().size(), 1U);
  EXPECT_TRUE(provider_view().at("verified").as_bool());
}

TEST_F(PopwTest, AProviderClaimingAFasterGpuThanItHasFailsTheDeadline) {
  // No time granted beyond what the claimed H100 needs: a CPU doing its work cannot make it.
  start_node("check_allowance_ms = 0\n");
  start_provider(true);
  start_checker("checker");
  ASSERT_TRUE(eventually([&] { return checked(); }, std::chrono::seconds{60})) << checkers_[0]->output();
  json::object p = provider_view();
  EXPECT_FALSE(p.at("verified").as_bool()) << json::serialize(p);
  EXPECT_NE(p.at("verification").at("class").as_string().find("H100"), std::string::npos);
  auto offers = call("GET", node_->url() + "/api/v1/offers?q=verified=true");
  EXPECT_TRUE(offers.body.at("offers").as_array().empty()) << offers.raw;
  auto list = call("GET", node_->url() + "/api/v1/attestations?provider=" + provider_id_);
  ASSERT_GE(list.body.at("attestations").as_array().size(), 1U);
  EXPECT_FALSE(list.body.at("attestations").at(0).at("attestation").at("passed").as_bool());
  EXPECT_NE(checkers_[0]->output().find("H100"), std::string::npos) << checkers_[0]->output();
}

// A checker of our own on the checkers' channel: it runs the check honestly, then tries
// forged, altered, replayed and malformed attestations.
TEST_F(PopwTest, ForgedAlteredAndReplayedAttestationsAreRefused) {
  namespace asio = boost::asio;
  start_node("check_allowance_ms = 20000\n");
  start_provider(false);
  const auto node_key = crypto::PrivateKey::generate();
  const auto owner = crypto::PrivateKey::generate();
  const std::string issued = "2026-11-25T10:00:00Z";
  const std::string binding =
      crypto::personal_sign(owner, protocol::checker_binding_message(node_key.address().to_checksum(),
                                                                     owner.address().to_checksum(), issued))
          .to_hex();
  std::vector<std::string> replies;
  std::optional<popw::Verdict> verdict;
  asio::io_context io;
  const std::string ws = "ws://" + node_->url().substr(7) + std::string(protocol::kCheckerConnectPath);
  std::shared_ptr<net::WebSocketClient> client;
  asio::steady_timer watchdog(io);
  watchdog.expires_after(std::chrono::seconds{90});
  watchdog.async_wait([&](boost::system::error_code ec) {
    if (!ec && client) client->close();
  });
  auto run = [&]() -> asio::awaitable<void> {
    auto connected = co_await net::WebSocketClient::connect(io.get_executor(), ws);
    if (!connected) co_return;
    client = *connected;
    auto challenge = co_await client->read();
    if (!challenge) co_return;
    const std::string nonce(json::parse(*challenge).at("nonce").as_string());
    // A provider's binding does not make a checker.
    client->send(json::serialize(json::object{
        {"type", "hello"}, {"v", 1}, {"node", node_key.address().to_checksum()},
        {"signature", crypto::personal_sign(node_key, protocol::auth_message(nonce)).to_hex()},
        {"binding", json::object{{"owner", owner.address().to_checksum()}, {"issued_at", issued}, {"signature", binding}}}}));
    auto welcome_text = co_await client->read();
    if (!welcome_text) co_return;
    const json::value welcome = json::parse(*welcome_text);
    replies.push_back(std::string(welcome.at("type").as_string()));
    const popw::AttestationDomain domain{welcome.at("chain_id").to_number<std::uint64_t>(),
                                         crypto::Address::parse(welcome.at("verifying_contract").as_string()).value()};
    std::string check_id;
    std::optional<popw::CheckerSession> session;
    crypto::Address provider;
    std::uint64_t epoch = 0;
    for (;;) {
      auto text = co_await client->read();
      if (!text) co_return;
      json::value m = json::parse(*text);
      const std::string type(m.at("type").as_string());
      if (type == "assignment") {
        check_id = std::string(m.at("check_id").as_string());
        provider = crypto::Address::parse(m.at("provider").as_string()).value();
        epoch = m.at("epoch").to_number<std::uint64_t>();
        session.emplace(popw::check_params_from_json(m.at("params")).value());
        json::object first = session->start();
        client->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", first}}));
      } else if (type == "popw" && session) {
        auto next = session->on_answer(m.at("message").as_object());
        if (next && *next) {
          client->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", **next}}));
          continue;
        }
        verdict = session->verdict().value();
        break;
      }
    }
    popw::Attestation a;
    a.provider = provider;
    a.checker = node_key.address();
    a.epoch = epoch;
    a.check_id = from_hex_fixed<32>(check_id).value();
    a.seed = from_hex_fixed<32>(session->evidence().seed_hex()).value();
    a.root = from_hex_fixed<32>(session->evidence().root_hex()).value();
    a.ops_per_second = verdict->ops_per_second;
    a.memory_bytes = session->evidence().params().memory_bytes;
    a.memory_passed = verdict->memory_ok;
    a.passed = verdict->passed;
    auto send_attestation = [&](const popw::Attestation& body, const crypto::Signature& sig) {
      client->send(json::serialize(json::object{
          {"type", "attestation"}, {"check_id", check_id}, {"attestation", popw::to_json(body)}, {"signature", sig.to_hex()}}));
    };
    // 1. signed by another key
    const auto forger = crypto::PrivateKey::generate();
    send_attestation(a, forger.sign_digest(popw::attestation_digest(a, domain).value()));
    replies.push_back((co_await client->read()).value_or("closed"));
    // 2. a root other than the committed one, properly signed
    popw::Attestation altered = a;
    altered.root[0] ^= 0xff;
    send_attestation(altered, popw::sign_attestation(node_key, altered, domain).value());
    replies.push_back((co_await client->read()).value_or("closed"));
    // 3. another epoch
    altered = a;
    altered.epoch += 5;
    send_attestation(altered, popw::sign_attestation(node_key, altered, domain).value());
    replies.push_back((co_await client->read()).value_or("closed"));
    // 4. the real one, then 5. the same again
    const auto sig = popw::sign_attestation(node_key, a, domain).value();
    send_attestation(a, sig);
    replies.push_back((co_await client->read()).value_or("closed"));
    send_attestation(a, sig);
    replies.push_back((co_await client->read()).value_or("closed"));
    // 6. garbage closes the channel
    client->send("{\"type\":\"attestation\",\"attestation\":");
    replies.push_back((co_await client->read()).value_or("closed"));
    replies.push_back((co_await client->read()) ? "open" : "closed");
    watchdog.cancel();
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run();
  ASSERT_EQ(replies.size(), 8U) << agent_->output();
  EXPECT_EQ(replies[0], "welcome");
  ASSERT_TRUE(verdict);
  EXPECT_TRUE(verdict->passed) << verdict->reason;
  EXPECT_NE(replies[1].find("\"refused\""), std::string::npos) << replies[1];
  EXPECT_NE(replies[1].find("signature"), std::string::npos) << replies[1];
  EXPECT_NE(replies[2].find("root"), std::string::npos) << replies[2];
  EXPECT_NE(replies[3].find("epoch"), std::string::npos) << replies[3];
  EXPECT_NE(replies[4].find("\"attested\""), std::string::npos) << replies[4];
  EXPECT_NE(replies[5].find("\"refused\""), std::string::npos) << replies[5];
  EXPECT_NE(replies[6].find("\"error\""), std::string::npos) << replies[6];
  EXPECT_EQ(replies[7], "closed");
  // Only the real one is stored.
  auto list = call("GET", node_->url() + "/api/v1/attestations?provider=" + provider_id_);
  ASSERT_EQ(list.body.at("attestations").as_array().size(), 1U) << list.raw;
  EXPECT_EQ(list.body.at("attestations").at(0).at("attestation").at("checker").as_string(), node_key.address().to_checksum());
  auto metrics = net::http_request("GET", node_->url() + "/metrics");
  EXPECT_NE(metrics->body.find("kaisar_attestations_refused_total 4"), std::string::npos);
}

// A checker that passes a provider whose evidence fails (a CPU claiming an H100, with no
// time to spare) is contradicted by OneNode's own judgement: the attestation is refused,
// stored nowhere, paid nothing, counted as a wrong verdict, and the provider stays failed.
TEST_F(PopwTest, ALyingCheckerIsContradictedByOneNodeAndEarnsNothing) {
  start_node("check_allowance_ms = 0\ncheck_interval = 2\n");
  start_provider(true);
  const std::string liar = start_checker("liar", /*dishonest=*/true);
  json::object liar_view;
  ASSERT_TRUE(eventually([&] {
    auto r = call("GET", node_->url() + "/api/v1/checkers");
    if (r.status != 200) return false;
    for (const auto& c : r.body.at("checkers").as_array()) {
      if (c.at("id").as_string() == liar && c.at("wrong").as_int64() >= 1) {
        liar_view = c.as_object();
        return true;
      }
    }
    return false;
  }, std::chrono::seconds{90})) << checkers_[0]->output() << agent_->output();
  EXPECT_NE(checkers_[0]->output().find("contradicts"), std::string::npos) << checkers_[0]->output();
  EXPECT_NE(checkers_[0]->output().find("passed"), std::string::npos) << "the liar said passed";
  // The provider's standing is OneNode's judgement, not the liar's.
  json::object p = provider_view();
  EXPECT_FALSE(p.at("verified").as_bool()) << json::serialize(p);
  EXPECT_EQ(p.at("verification").at("settled_by").as_string(), "onenode") << json::serialize(p);
  EXPECT_EQ(p.at("verified_memory_bytes").to_number<std::uint64_t>(), 0U);
  EXPECT_TRUE(call("GET", node_->url() + "/api/v1/offers?q=verified=true").body.at("offers").as_array().empty());
  // Nothing signed by the liar is published, and the epochs that closed since pay it nothing.
  EXPECT_TRUE(call("GET", node_->url() + "/api/v1/attestations").body.at("attestations").as_array().empty());
  const auto epoch_now = call("GET", node_->url() + "/api/v1/epochs").body.at("current").to_number<std::uint64_t>();
  ASSERT_TRUE(eventually([&] {
    return call("GET", node_->url() + "/api/v1/epochs").body.at("current").to_number<std::uint64_t>() > epoch_now + 1;
  }, std::chrono::seconds{30}));
  auto rewards = call("GET", node_->url() + "/api/v1/rewards?account=" + std::string(liar_view.at("owner").as_string()));
  ASSERT_EQ(rewards.status, 200) << rewards.raw;
  EXPECT_TRUE(rewards.body.at("rewards").as_array().empty()) << rewards.raw;
}

// Every check gets a second opinion; a checker that signs the opposite of what it saw is
// contradicted by OneNode's own judgement and banned after two wrong verdicts in a week.
TEST_F(PopwTest, AWrongCheckerIsOutvotedAndBanned) {
  start_node("check_allowance_ms = 20000\ncheck_redundancy = 1\ncheck_interval = 2\n");
  start_provider(false);
  const std::string honest = start_checker("honest");
  const std::string liar = start_checker("liar", /*dishonest=*/true);
  json::array list;
  ASSERT_TRUE(eventually([&] {
    auto r = call("GET", node_->url() + "/api/v1/checkers");
    if (r.status != 200) return false;
    list = r.body.at("checkers").as_array();
    for (const auto& c : list) {
      if (c.at("id").as_string() == liar) return !c.at("banned_until").is_null();
    }
    return false;
  }, std::chrono::seconds{90})) << json::serialize(list) << checkers_[1]->output();
  for (const auto& c : list) {
    if (c.at("id").as_string() == liar) {
      EXPECT_GE(c.at("wrong").as_int64(), 2);
    } else {
      EXPECT_EQ(c.at("id").as_string(), honest);
      EXPECT_EQ(c.at("wrong").as_int64(), 0);
      EXPECT_TRUE(c.at("banned_until").is_null());
    }
  }
  // The provider's standing follows OneNode's own recomputation, not the liar.
  EXPECT_TRUE(eventually([&] { return provider_view().at("verified").as_bool(); }));
}

// Checkers that are not, or that speak out of turn, get clear errors; nothing reaches the
// provider, and the CLI's checker and reward commands refuse bad input.
TEST_F(PopwTest, HostileCheckersAndBadCommandsAreRefused) {
  namespace asio = boost::asio;
  start_node();
  asio::io_context io;
  const std::string ws = "ws://" + node_->url().substr(7) + std::string(protocol::kCheckerConnectPath);
  const auto node_key = crypto::PrivateKey::generate();
  const auto owner = crypto::PrivateKey::generate();
  const std::string issued = "2026-11-25T10:00:00Z";
  auto hello = [&](const std::string& nonce, const std::string& binding_text) {
    return json::serialize(json::object{
        {"type", "hello"}, {"v", 1}, {"node", node_key.address().to_checksum()},
        {"signature", crypto::personal_sign(node_key, protocol::auth_message(nonce)).to_hex()},
        {"binding", json::object{{"owner", owner.address().to_checksum()},
                                 {"issued_at", issued},
                                 {"signature", crypto::personal_sign(owner, binding_text).to_hex()}}}});
  };
  const std::string provider_binding =
      protocol::binding_message(node_key.address().to_checksum(), owner.address().to_checksum(), issued);
  const std::string checker_binding =
      protocol::checker_binding_message(node_key.address().to_checksum(), owner.address().to_checksum(), issued);
  const std::string none = "0x" + std::string(64, '1');
  // Each attempt's messages, built from the challenge's nonce: 0 garbage; 1 a provider's
  // binding; 2 an attestation before hello; 3 9 MiB; 4 a real checker speaking for a check
  // it does not have, then an unknown type.
  std::vector<std::function<std::vector<std::string>(const std::string&)>> attempts{
      [](const std::string&) { return std::vector<std::string>{"\x01not json"}; },
      [&](const std::string& n) { return std::vector<std::string>{hello(n, provider_binding)}; },
      [](const std::string&) { return std::vector<std::string>{R"({"type":"attestation","check_id":"0x01"})"}; },
      [](const std::string&) { return std::vector<std::string>{std::string(9 << 20, ' ')}; },
      [&](const std::string& n) {
        return std::vector<std::string>{
            hello(n, checker_binding),
            json::serialize(json::object{{"type", "popw"}, {"check_id", none}, {"message", json::object{{"type", "challenge"}}}}),
            json::serialize(json::object{{"type", "attestation"}, {"check_id", none}, {"attestation", 1}}),
            R"({"type":"bogus"})"};
      }};
  std::vector<std::string> outcomes;
  auto run = [&]() -> asio::awaitable<void> {
    for (const auto& messages : attempts) {
      auto client = co_await net::WebSocketClient::connect(io.get_executor(), ws);
      if (!client) co_return;
      auto challenge = co_await (*client)->read();
      if (!challenge) co_return;
      const std::string nonce(json::parse(*challenge).at("nonce").as_string());
      std::string got;
      for (const auto& m : messages(nonce)) {
        (*client)->send(m);
        auto reply = co_await (*client)->read();
        got += (reply ? *reply : std::string("closed")) + " | ";
      }
      auto after = co_await (*client)->read();
      outcomes.push_back(got + (after ? "[open]" : "[closed]"));
      (*client)->close();
    }
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run();
  ASSERT_EQ(outcomes.size(), 5U);
  EXPECT_NE(outcomes[0].find("invalid_argument"), std::string::npos) << outcomes[0];
  EXPECT_NE(outcomes[0].find("[closed]"), std::string::npos) << outcomes[0];
  EXPECT_NE(outcomes[1].find("checker binding"), std::string::npos) << outcomes[1];
  EXPECT_NE(outcomes[1].find("[closed]"), std::string::npos) << outcomes[1];
  EXPECT_NE(outcomes[2].find("the first message must be hello"), std::string::npos) << outcomes[2];
  EXPECT_NE(outcomes[3].find("[closed]"), std::string::npos) << outcomes[3];
  EXPECT_NE(outcomes[4].find("\"welcome\""), std::string::npos) << outcomes[4];
  EXPECT_NE(outcomes[4].find("no open check"), std::string::npos) << outcomes[4];
  EXPECT_NE(outcomes[4].find("attestation must be an object"), std::string::npos) << outcomes[4];
  EXPECT_NE(outcomes[4].find("unknown message type"), std::string::npos) << outcomes[4];
  EXPECT_NE(outcomes[4].find("[closed]"), std::string::npos) << outcomes[4];
  EXPECT_EQ(call("GET", node_->url() + "/healthz").status, 200);
  EXPECT_TRUE(call("GET", node_->url() + "/api/v1/attestations").body.at("attestations").as_array().empty());

  // The CLI.
  auto missing = run_process({kaisar_binary(), "checker", "run", "--data", dir_ + "/nothing", "--onenode", node_->url()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("kaisar checker init"), std::string::npos) << missing.err;
  auto bad_address = run_process({kaisar_binary(), "rewards", "--onenode", node_->url(), "--address", "0x12"});
  EXPECT_EQ(bad_address.exit_code, 2) << bad_address.err;
  auto nobody = run_process({kaisar_binary(), "rewards", "--onenode", node_->url(), "--address",
                             "0x0000000000000000000000000000000000000001", "--json"});
  EXPECT_EQ(nobody.exit_code, 0) << nobody.err;
  EXPECT_TRUE(json::parse(nobody.out).at("rewards").as_array().empty());
  auto no_wallet = run_process({kaisar_binary(), "rewards", "claim", "--onenode", node_->url(), "--wallet",
                                dir_ + "/none.json", "--password-file", dir_ + "/pw"});
  EXPECT_NE(no_wallet.exit_code, 0);
}

// A check of production shape: 128 audited rows of n = 2048 make openings of 1.4 MB, more
// than a WebSocket message could carry before (1 MiB); they go through both channels.
TEST_F(PopwTest, ALargeCheckGoesThroughTheChannels) {
  start_node("check_allowance_ms = 30000\n", "check_matrix_n = 2048\ncheck_samples = 128\n");
  start_provider(false);
  start_checker("checker");
  ASSERT_TRUE(eventually([&] { return checked(); }, std::chrono::seconds{90})) << agent_->output() << checkers_[0]->output();
  json::object p = provider_view();
  EXPECT_TRUE(p.at("verified").as_bool()) << json::serialize(p) << checkers_[0]->output();
  EXPECT_GT(p.at("verification").at("tops").to_number<double>(), 0);
  // The agent stayed connected throughout.
  EXPECT_EQ(p.at("status").as_string(), "online");
  EXPECT_EQ(agent_->output().find("control channel down"), std::string::npos) << agent_->output();
}

}  // namespace
}  // namespace kaisar::testing
