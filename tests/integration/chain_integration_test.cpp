// OneNode on a real anvil chain: deployment, GET /api/v1/chain, the faucet, restarts, bad
// configuration, and the CLI's wallet commands, checked with cast as the independent client.
#include <filesystem>

#include "crypto/keystore.hpp"
#include "harness.hpp"

namespace kaisar::testing {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string cast_call(const std::string& rpc, const std::vector<std::string>& args) {
  std::vector<std::string> argv{node_tool("cast"), "call", "--rpc-url", rpc};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return trim(r.out);
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

TEST_F(ChainOneNodeTest, RenterPaysALeaseWithTheCliAndOneNodeSeesIt) {
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

  auto paid = pay({"--lease", "lease-1", "--amount", "5000", "--json"});
  ASSERT_EQ(paid.exit_code, 0) << paid.err;
  auto receipt = json::parse(paid.out);
  const std::string lease_id(receipt.at("lease_id").as_string());
  EXPECT_TRUE(receipt.at("deposit_tx").is_string());
  // Paying again sends nothing.
  auto again = pay({"--lease", "lease-1", "--amount", "5000"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("already paid"), std::string::npos) << again.out;

  // OneNode's indexer sees the deposit.
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
  // cast sees the escrow holding it.
  const std::string escrow(call("GET", node.url() + "/api/v1/chain").body.at("contracts").at("escrow").as_string());
  EXPECT_EQ(cast_call(anvil_.url, {token_address, "balanceOf(address)(uint256)", escrow}), "5000");
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

}  // namespace
}  // namespace kaisar::testing
