#include <sys/stat.h>

#include <boost/asio.hpp>
#include <map>
#include <set>
#include <cctype>
#include <cstdio>
#include <sstream>

#include "core/protocol.hpp"
#include "harness.hpp"

namespace kaisar::testing {
namespace {

namespace fs = std::filesystem;

class OneNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("onenode");
    node_ = std::make_unique<OneNodeProcess>(dir_ + "/onenode");
  }
  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), 0) << "OneNode did not shut down cleanly";
    }
    fs::remove_all(dir_);
  }
  std::string url() const { return node_->url(); }

  std::string dir_;
  std::unique_ptr<OneNodeProcess> node_;
};

TEST_F(OneNodeTest, HealthReadinessMetricsOpenApi) {
  auto health = call("GET", url() + "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body.at("status").as_string(), "ok");
  EXPECT_EQ(call("GET", url() + "/readyz").status, 200);

  auto metrics = net::http_request("GET", url() + "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("# TYPE kaisar_providers_online gauge"), std::string::npos);
  EXPECT_NE(metrics->body.find("kaisar_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
            std::string::npos)
      << metrics->body;

  auto doc = call("GET", url() + "/api/v1/openapi.json");
  ASSERT_EQ(doc.status, 200);
  EXPECT_EQ(doc.body.at("openapi").as_string().subview().substr(0, 2), "3.");
  // Every documented operation exists: no 404/405 for it.
  for (const auto& [path, item] : doc.body.at("paths").as_object()) {
    for (const auto& [method, op] : item.as_object()) {
      std::string concrete(path);
      if (auto p = concrete.find("{id}"); p != std::string::npos) {
        concrete.replace(p, 4, "0x0000000000000000000000000000000000000001");
      }
      if (auto p = concrete.find("{n}"); p != std::string::npos) concrete.replace(p, 3, "0");
      if (auto p = concrete.find("{lease_id}"); p != std::string::npos) {
        concrete.replace(p, 10, "0x" + std::string(64, '0'));
      }
      std::string upper;
      for (char c : std::string(method)) upper += static_cast<char>(std::toupper(c));
      if (concrete == "/api/v1/events") continue;  // a stream: checked in its own test
      auto r = net::http_request(upper, url() + concrete, upper == "POST" ? "{}" : "");
      ASSERT_TRUE(r);
      // 404 for a resource is fine ("no provider …"); 404 for the route is not.
      EXPECT_EQ(r->body.find("no route"), std::string::npos) << upper << " " << concrete << ": " << r->body;
      EXPECT_NE(r->status, 405) << upper << " " << concrete;
    }
  }
}

TEST_F(OneNodeTest, UnknownRouteAndWrongMethod) {
  auto r = call("GET", url() + "/api/v1/nothing-here");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code_of(r), "not_found");
  auto m = call("DELETE", url() + "/api/v1/providers");
  EXPECT_EQ(m.status, 405);
}

TEST_F(OneNodeTest, BadRequestBodies) {
  const std::string nonce_url = url() + "/api/v1/auth/nonce";
  struct Case {
    std::string body;
    int status;
    std::string code;
  };
  for (const auto& c : std::vector<Case>{
           {"", 400, "invalid_argument"},
           {"{not json", 400, "invalid_argument"},
           {"[1,2,3]", 400, "invalid_argument"},
           {"{}", 400, "invalid_argument"},
           {R"({"address": 42})", 400, "invalid_argument"},
           {R"({"address": "0x1234"})", 400, "invalid_argument"},
           {R"({"address": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267"})", 400, "invalid_argument"},  // checksum
           {std::string(2 << 20, 'x'), 413, "payload_too_large"},
       }) {
    auto r = call("POST", nonce_url, c.body, {{"content-type", "application/json"}});
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " -> " << r.raw;
    EXPECT_EQ(error_code_of(r), c.code) << c.body.substr(0, 80);
    const auto& e = r.body.at("error").as_object();
    EXPECT_FALSE(e.at("message").as_string().empty());
  }
  // The server is still fine afterwards.
  EXPECT_EQ(call("GET", url() + "/healthz").status, 200);
}

TEST_F(OneNodeTest, SignInWithEthereum) {
  auto key = crypto::PrivateKey::generate();
  auto nonce = call("POST", url() + "/api/v1/auth/nonce",
                    json::serialize(json::object{{"address", key.address().to_checksum()}}));
  ASSERT_EQ(nonce.status, 200) << nonce.raw;
  std::string message(nonce.body.at("message").as_string());
  const std::string domain = url().substr(7);
  EXPECT_EQ(message.rfind(domain + " wants you to sign in with your Ethereum account:\n" + key.address().to_checksum(), 0), 0u)
      << message;
  EXPECT_NE(message.find("Chain ID: 31337"), std::string::npos);
  EXPECT_NE(message.find("Nonce: " + std::string(nonce.body.at("nonce").as_string())), std::string::npos);

  // Missing token, garbage token.
  EXPECT_EQ(call("GET", url() + "/api/v1/me").status, 401);
  EXPECT_EQ(error_code_of(call("GET", url() + "/api/v1/me", "", {{"authorization", "Bearer nope"}})), "unauthenticated");

  // A wrong signature.
  auto other = crypto::PrivateKey::generate();
  auto bad = call("POST", url() + "/api/v1/auth/login",
                  json::serialize(json::object{{"message", message},
                                               {"signature", crypto::personal_sign(other, message).to_hex()}}));
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_code_of(bad), "unauthenticated");

  // Wrong types and a malformed message.
  EXPECT_EQ(call("POST", url() + "/api/v1/auth/login", R"({"message": 1, "signature": "0x"})").status, 400);
  EXPECT_EQ(call("POST", url() + "/api/v1/auth/login",
                 json::serialize(json::object{{"message", "hello"}, {"signature", crypto::personal_sign(key, "hello").to_hex()}}))
                .status,
            401);

  // The right signature.
  const std::string login_body =
      json::serialize(json::object{{"message", message}, {"signature", crypto::personal_sign(key, message).to_hex()}});
  auto ok = call("POST", url() + "/api/v1/auth/login", login_body);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  const std::string token(ok.body.at("token").as_string());
  auto me = call("GET", url() + "/api/v1/me", "", {{"authorization", "Bearer " + token}});
  ASSERT_EQ(me.status, 200);
  EXPECT_EQ(me.body.at("address").as_string(), key.address().to_checksum());

  // Replaying the same signed message.
  auto replay = call("POST", url() + "/api/v1/auth/login", login_body);
  EXPECT_EQ(replay.status, 401);
  EXPECT_NE(replay.raw.find("already used"), std::string::npos) << replay.raw;

  // Logout revokes the token.
  EXPECT_EQ(call("POST", url() + "/api/v1/auth/logout", "", {{"authorization", "Bearer " + token}}).status, 200);
  EXPECT_EQ(call("GET", url() + "/api/v1/me", "", {{"authorization", "Bearer " + token}}).status, 401);
}

TEST_F(OneNodeTest, MessageForAnotherDomainOrChain) {
  auto key = crypto::PrivateKey::generate();
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {url().substr(7) + " wants", "evil.example wants"}, {"Chain ID: 31337", "Chain ID: 3338"}}) {
    auto nonce = call("POST", url() + "/api/v1/auth/nonce",
                      json::serialize(json::object{{"address", key.address().to_checksum()}}));
    std::string message(nonce.body.at("message").as_string());
    message.replace(message.find(from), from.size(), to);
    auto r = call("POST", url() + "/api/v1/auth/login",
                  json::serialize(json::object{{"message", message},
                                               {"signature", crypto::personal_sign(key, message).to_hex()}}));
    EXPECT_EQ(r.status, 401) << to << ": " << r.raw;
  }
}

TEST(OneNodeConfigured, ExpiredNonceIsRefused) {
  auto dir = make_temp_dir("expiry");
  write_text(dir + "/onenode.toml", "nonce_ttl = 1\nchain_id = 3338\n");
  OneNodeProcess node(dir + "/data", {"--config", dir + "/onenode.toml"});
  auto key = crypto::PrivateKey::generate();
  auto nonce = call("POST", node.url() + "/api/v1/auth/nonce",
                    json::serialize(json::object{{"address", key.address().to_checksum()}}));
  std::string message(nonce.body.at("message").as_string());
  EXPECT_NE(message.find("Chain ID: 3338"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds{2100});
  auto r = call("POST", node.url() + "/api/v1/auth/login",
                json::serialize(json::object{{"message", message},
                                             {"signature", crypto::personal_sign(key, message).to_hex()}}));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.raw.find("expired"), std::string::npos) << r.raw;
  EXPECT_EQ(node.stop(), 0);
  fs::remove_all(dir);
}

TEST(OneNodeConfigured, BadConfigIsAClearError) {
  auto dir = make_temp_dir("badconfig");
  write_text(dir + "/bad.toml", "listen = 42\n");
  auto r = run_process({kaisar_binary(), "onenode", "--config", dir + "/bad.toml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("listen must be a string"), std::string::npos) << r.err;
  auto listen = run_process({kaisar_binary(), "onenode", "--listen", "nowhere", "--data", dir + "/d"});
  EXPECT_EQ(listen.exit_code, 2);
  EXPECT_NE(listen.err.find("HOST:PORT"), std::string::npos) << listen.err;
  fs::remove_all(dir);
}

TEST_F(OneNodeTest, CurlSeesJsonErrorsAndHealth) {
  auto r = run_process({"curl", "-s", "-w", "\n%{http_code}", url() + "/api/v1/providers/not-an-address"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"code\":\"invalid_argument\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(r.out.rfind('\n') + 1), "400");
  auto missing = run_process({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              url() + "/api/v1/providers/0x0000000000000000000000000000000000000001"});
  EXPECT_EQ(missing.out, "404");
}

// A hostile or broken agent is dropped without hurting anybody else.
TEST_F(OneNodeTest, HostileAgentsAreRejected) {
  namespace asio = boost::asio;
  asio::io_context io;
  std::vector<std::string> outcomes;
  const std::string ws = "ws://" + url().substr(7) + "/api/v1/agents/connect";
  auto attempt = [&](std::string first_message) -> asio::awaitable<void> {
    auto client = co_await net::WebSocketClient::connect(io.get_executor(), ws);
    if (!client) {
      outcomes.push_back("connect failed: " + client.error().message);
      co_return;
    }
    auto challenge = co_await (*client)->read();
    if (!challenge || challenge->find("\"challenge\"") == std::string::npos) {
      outcomes.push_back("no challenge");
      co_return;
    }
    (*client)->send(first_message);
    auto reply = co_await (*client)->read();
    std::string got = reply ? *reply : "closed";
    auto after = co_await (*client)->read();
    outcomes.push_back(got + (after ? " [still open]" : " [closed]"));
  };
  auto key = crypto::PrivateKey::generate();
  json::object forged{{"type", "hello"}, {"v", 1}, {"node", key.address().to_checksum()},
                      {"signature", crypto::personal_sign(key, "some other text").to_hex()},
                      {"binding", json::object{{"owner", key.address().to_checksum()}, {"issued_at", "2026-01-01T00:00:00Z"},
                                               {"signature", crypto::personal_sign(key, "x").to_hex()}}},
                      {"hardware", json::object{}}};
  for (std::string msg : {std::string("\x01\x02garbage"), std::string(R"({"type":"heartbeat","seq":1})"),
                          std::string(R"({"no":"type"})"), json::serialize(forged)}) {
    asio::co_spawn(io, attempt(msg), asio::detached);
  }
  io.run();
  ASSERT_EQ(outcomes.size(), 4u);
  for (const auto& o : outcomes) {
    EXPECT_NE(o.find("\"type\":\"error\""), std::string::npos) << o;
    EXPECT_NE(o.find("[closed]"), std::string::npos) << o;
  }
  EXPECT_EQ(call("GET", url() + "/healthz").status, 200);
  auto metrics = net::http_request("GET", url() + "/metrics");
  EXPECT_NE(metrics->body.find("kaisar_agent_sessions_rejected_total 4"), std::string::npos) << metrics->body;
}

// A hello recorded from one connection is useless on another: the challenge nonce differs.
TEST_F(OneNodeTest, ReplayedHelloIsRejected) {
  namespace asio = boost::asio;
  asio::io_context io;
  const std::string ws = "ws://" + url().substr(7) + "/api/v1/agents/connect";
  auto node = crypto::PrivateKey::generate();
  auto owner = crypto::PrivateKey::generate();
  const std::string issued = "2026-11-25T10:00:00Z";
  const std::string binding = crypto::personal_sign(owner, protocol::binding_message(node.address().to_checksum(),
                                                                                      owner.address().to_checksum(), issued))
                                  .to_hex();
  std::string first_reply, replay_reply;
  auto run = [&]() -> asio::awaitable<void> {
    auto hello_for = [&](const std::string& challenge_text) {
      auto nonce = std::string(json::parse(challenge_text).at("nonce").as_string());
      return json::serialize(json::object{
          {"type", "hello"}, {"v", 1}, {"node", node.address().to_checksum()},
          {"signature", crypto::personal_sign(node, protocol::auth_message(nonce)).to_hex()},
          {"binding", json::object{{"owner", owner.address().to_checksum()}, {"issued_at", issued}, {"signature", binding}}},
          {"hardware", json::object{{"cpu_model", "test"}, {"cpu_cores", 1}}}});
    };
    auto a = co_await net::WebSocketClient::connect(io.get_executor(), ws);
    auto challenge = co_await (*a)->read();
    const std::string hello = hello_for(*challenge);
    (*a)->send(hello);
    first_reply = (co_await (*a)->read()).value_or("closed");
    auto b = co_await net::WebSocketClient::connect(io.get_executor(), ws);
    (void)co_await (*b)->read();
    (*b)->send(hello);  // the same bytes, on a connection with another nonce
    replay_reply = (co_await (*b)->read()).value_or("closed");
    (*a)->close();
    (*b)->close();
  };
  asio::co_spawn(io, run(), asio::detached);
  io.run();
  EXPECT_NE(first_reply.find("\"welcome\""), std::string::npos) << first_reply;
  EXPECT_NE(replay_reply.find("\"unauthenticated\""), std::string::npos) << replay_reply;
}

// ---- the CLI and the provider agent, as separate processes ----

class ProviderTest : public OneNodeTest {
 protected:
  void SetUp() override {
    OneNodeTest::SetUp();
    env_ = {{"XDG_CONFIG_HOME", dir_ + "/config"}, {"XDG_DATA_HOME", dir_ + "/share"}, {"KAISAR_PASSWORD", ""}};
    write_text(dir_ + "/password", "correct horse battery staple\n");
  }
  RunResult kaisar(std::vector<std::string> args) {
    args.insert(args.begin(), kaisar_binary());
    return run_process(args, {}, env_);
  }
  std::unique_ptr<ChildProcess> start_agent(const std::string& data, const std::string& onenode) {
    auto env = env_;
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{kaisar_binary(), "provider", "run", "--data", data, "--onenode", onenode,
                                 "--region", "eu-test"},
        env);
  }
  json::value provider(const std::string& id) { return call("GET", url() + "/api/v1/providers/" + id).body; }
  std::map<std::string, std::string> env_;
};

TEST_F(ProviderTest, WalletLoginAndStatusThroughTheCli) {
  const std::string wallet = dir_ + "/w.json";
  auto created = kaisar({"wallet", "new", "--wallet", wallet, "--password-file", dir_ + "/password", "--light-kdf", "--json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto address = std::string(json::parse(created.out).at("address").as_string());
  struct stat st {};
  ASSERT_EQ(::stat(wallet.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(kaisar({"wallet", "new", "--wallet", wallet, "--password-file", dir_ + "/password"}).exit_code, 6);

  auto shown = kaisar({"wallet", "address", "--wallet", wallet});
  EXPECT_EQ(shown.out, address + "\n");

  // Wrong password: exit 3 and a message that says so.
  write_text(dir_ + "/wrong", "nope\n");
  auto wrong = kaisar({"login", "--onenode", url(), "--wallet", wallet, "--password-file", dir_ + "/wrong"});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
  EXPECT_NE(wrong.err.find("password"), std::string::npos) << wrong.err;

  auto login = kaisar({"login", "--onenode", url(), "--wallet", wallet, "--password-file", dir_ + "/password"});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_NE(login.out.find(address), std::string::npos);
  ASSERT_EQ(::stat((dir_ + "/config/kaisar/sessions.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto status = kaisar({"status", "--onenode", url(), "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out).at("signed_in_as").as_string(), address);

  auto logout = kaisar({"logout", "--onenode", url()});
  EXPECT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_TRUE(json::parse(kaisar({"status", "--onenode", url(), "--json"}).out).at("signed_in_as").is_null());

  // Import a known key (from stdin) and check the address against the test vector.
  auto imported = run_process({kaisar_binary(), "wallet", "import", "--wallet", dir_ + "/imported.json",
                               "--password-file", dir_ + "/password", "--light-kdf"},
                              "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n", env_);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"), std::string::npos);
  auto bad_key = run_process({kaisar_binary(), "wallet", "import", "--wallet", dir_ + "/bad.json", "--password-file",
                              dir_ + "/password"},
                             "0x1234\n", env_);
  EXPECT_EQ(bad_key.exit_code, 2);
}

TEST_F(ProviderTest, CliExitCodes) {
  auto unreachable = kaisar({"providers", "--onenode", "http://127.0.0.1:1"});
  EXPECT_EQ(unreachable.exit_code, 5);
  EXPECT_NE(unreachable.err.find("cannot reach OneNode"), std::string::npos) << unreachable.err;
  auto no_wallet = kaisar({"login", "--onenode", url(), "--wallet", dir_ + "/missing.json", "--password-file",
                           dir_ + "/password"});
  EXPECT_EQ(no_wallet.exit_code, 4) << no_wallet.err;
  EXPECT_EQ(kaisar({"no-such-command"}).exit_code, 2);
  auto no_pw = kaisar({"wallet", "new", "--wallet", dir_ + "/x.json"});
  EXPECT_EQ(no_pw.exit_code, 2);
  EXPECT_NE(no_pw.err.find("--password-file"), std::string::npos) << no_pw.err;
  auto not_signed_in = kaisar({"logout", "--onenode", url(), "--json"});
  EXPECT_EQ(not_signed_in.exit_code, 0);  // nothing to revoke is not an error
  auto empty = kaisar({"providers", "--onenode", url()});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("no providers"), std::string::npos);
}

TEST_F(ProviderTest, RegistersHeartbeatsGoesOfflineAndSurvivesRestart) {
  const std::string data = dir_ + "/agent";
  auto init = kaisar({"provider", "init", "--data", data, "--password-file", dir_ + "/password", "--light-kdf", "--json"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  auto ids = json::parse(init.out);
  const std::string node(ids.at("node").as_string());
  const std::string owner(ids.at("owner").as_string());
  struct stat st {};
  ASSERT_EQ(::stat((data + "/node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // init is idempotent: the same node key and owner the second time.
  auto again = kaisar({"provider", "init", "--data", data, "--password-file", dir_ + "/password", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out).at("node").as_string(), node);

  auto events = net::SseReader::open(url() + "/api/v1/events");
  ASSERT_TRUE(events) << events.error().message;

  auto agent = start_agent(data, url());
  ASSERT_TRUE(eventually([&] {
    auto p = call("GET", url() + "/api/v1/providers/" + node);
    return p.status == 200 && p.body.at("status").as_string() == "online";
  })) << agent->output();

  auto p = provider(node);
  EXPECT_EQ(p.at("owner").as_string(), owner);
  EXPECT_EQ(p.at("location").at("country").as_string(), "local");
  EXPECT_EQ(p.at("location").at("region").as_string(), "eu-test");
  const auto& hw = p.at("hardware").as_object();
  EXPECT_GT(hw.at("cpu_cores").to_number<int>(), 0);
  EXPECT_GT(hw.at("ram_bytes").to_number<std::uint64_t>(), 0u);
  EXPECT_FALSE(hw.at("cpu_model").as_string().empty());
  EXPECT_TRUE(hw.at("gpus").is_array());  // empty on a machine without NVIDIA GPUs

  std::set<std::string> seen;
  for (int i = 0; i < 2 && seen.size() < 2; ++i) {
    auto e = (*events)->next(std::chrono::seconds{5});
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_NE(e->data.find(node), std::string::npos);
    seen.insert(e->event);
  }
  EXPECT_TRUE(seen.count("provider.registered") && seen.count("provider.online"));

  // Heartbeats keep it online well past the grace period (3 s here).
  std::this_thread::sleep_for(std::chrono::seconds{4});
  EXPECT_EQ(provider(node).at("status").as_string(), "online");

  auto cli_list = kaisar({"providers", "--onenode", url(), "--json"});
  ASSERT_EQ(cli_list.exit_code, 0);
  EXPECT_EQ(json::parse(cli_list.out).at("providers").as_array().size(), 1u);
  auto table = kaisar({"providers", "--onenode", url()});
  EXPECT_NE(table.out.find(node), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("online"), std::string::npos);
  auto own = kaisar({"provider", "status", "--data", data, "--onenode", url(), "--json"});
  EXPECT_EQ(json::parse(own.out).at("status").as_string(), "online") << own.err;

  // The owner sees the provider under /me.
  // (The owner wallet is in the agent's data dir, encrypted with the same password.)
  auto login = kaisar({"login", "--onenode", url(), "--wallet", data + "/owner.json", "--password-file", dir_ + "/password"});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  auto me = kaisar({"status", "--onenode", url(), "--json"});
  EXPECT_EQ(json::parse(me.out).at("signed_in_as").as_string(), owner);

  // SIGKILL: no goodbye. Offline within the grace period (3 s) plus one sweep (1 s).
  const auto killed_at = std::chrono::steady_clock::now();
  agent->stop(SIGKILL);
  auto offline = (*events)->next(std::chrono::seconds{8});
  ASSERT_TRUE(offline) << offline.error().message;
  EXPECT_EQ(offline->event, "provider.offline");
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds{6});
  EXPECT_EQ(provider(node).at("status").as_string(), "offline");
  const auto uptime_before = provider(node).at("uptime").at("total_seconds").to_number<std::int64_t>();
  EXPECT_GE(uptime_before, 3);

  // Restart OneNode on the same data: provider, owner, uptime and the session survive.
  const std::string token = *[&]() -> std::optional<std::string> {
    auto text = std::ifstream(dir_ + "/config/kaisar/sessions.json");
    std::stringstream ss;
    ss << text.rdbuf();
    auto v = json::parse(ss.str());
    return std::string(v.at(url()).at("token").as_string());
  }();
  events->reset();
  ASSERT_EQ(node_->stop(), 0);
  node_ = std::make_unique<OneNodeProcess>(dir_ + "/onenode");
  auto after = call("GET", node_->url() + "/api/v1/providers/" + node);
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(after.body.at("owner").as_string(), owner);
  EXPECT_EQ(after.body.at("status").as_string(), "offline");
  EXPECT_EQ(after.body.at("uptime").at("total_seconds").to_number<std::int64_t>(), uptime_before);
  auto me_again = call("GET", node_->url() + "/api/v1/me", "", {{"authorization", "Bearer " + token}});
  ASSERT_EQ(me_again.status, 200) << me_again.raw;
  EXPECT_EQ(me_again.body.at("providers").as_array().at(0).as_string(), node);

  // The agent comes back and is online again, in a new uptime interval.
  auto agent2 = start_agent(data, node_->url());
  ASSERT_TRUE(eventually([&] {
    return call("GET", node_->url() + "/api/v1/providers/" + node).body.at("status").as_string() == "online";
  })) << agent2->output();
  EXPECT_EQ(agent2->stop(SIGTERM), 0) << agent2->output();
}

TEST_F(ProviderTest, AgentReconnectsAfterOneNodeRestart) {
  const std::string data = dir_ + "/agent";
  ASSERT_EQ(kaisar({"provider", "init", "--data", data, "--password-file", dir_ + "/password", "--light-kdf"}).exit_code, 0);
  // A fixed port so that the restarted OneNode is where the agent expects it.
  auto probe = std::make_unique<OneNodeProcess>(dir_ + "/probe");
  const std::string fixed = probe->url();
  ASSERT_EQ(probe->stop(), 0);
  probe.reset();
  const std::string listen = fixed.substr(7);
  auto first = std::make_unique<ChildProcess>(std::vector<std::string>{
      kaisar_binary(), "onenode", "--listen", listen, "--data", dir_ + "/fixed", "--heartbeat-interval", "1"});
  ASSERT_TRUE(first->wait_for_line("listening on ")) << first->output();
  auto agent = start_agent(data, fixed);
  auto online = [&] {
    auto r = net::http_request("GET", fixed + "/api/v1/status");
    if (!r || r->status != 200) return false;
    return json::parse(r->body).at("providers_online").to_number<int>() == 1;
  };
  ASSERT_TRUE(eventually(online)) << agent->output();
  ASSERT_EQ(first->stop(SIGTERM), 0);
  auto second = std::make_unique<ChildProcess>(std::vector<std::string>{
      kaisar_binary(), "onenode", "--listen", listen, "--data", dir_ + "/fixed", "--heartbeat-interval", "1"});
  ASSERT_TRUE(second->wait_for_line("listening on ")) << second->output();
  EXPECT_TRUE(eventually(online, std::chrono::seconds{20})) << agent->output();
  // Generous: under ASan on a loaded machine the agent's closing handshakes (channel and
  // tunnel) once took more than the default 10 s.
  EXPECT_EQ(agent->stop(SIGTERM, std::chrono::seconds{30}), 0) << agent->output();
  EXPECT_EQ(second->stop(SIGTERM), 0);
}

// A node key stays with the owner that registered it: someone who copies the key and binds
// it to their own wallet is refused, and the registry keeps the original owner.
TEST_F(ProviderTest, StolenNodeKeyCannotChangeOwner) {
  const std::string data = dir_ + "/agent";
  auto init = kaisar({"provider", "init", "--data", data, "--password-file", dir_ + "/password", "--light-kdf", "--json"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const auto ids = json::parse(init.out);
  const std::string node(ids.at("node").as_string());
  auto agent = start_agent(data, url());
  ASSERT_TRUE(eventually([&] { return call("GET", url() + "/api/v1/providers/" + node).status == 200; }));
  agent->stop(SIGTERM);

  const std::string thief = dir_ + "/thief";
  fs::create_directories(thief);
  fs::copy_file(data + "/node.key", thief + "/node.key");
  auto rebind = kaisar({"provider", "init", "--data", thief, "--password-file", dir_ + "/password", "--light-kdf", "--json"});
  ASSERT_EQ(rebind.exit_code, 0) << rebind.err;
  EXPECT_EQ(json::parse(rebind.out).at("node").as_string(), node);
  EXPECT_NE(json::parse(rebind.out).at("owner").as_string(), ids.at("owner").as_string());
  auto stolen = start_agent(thief, url());
  std::this_thread::sleep_for(std::chrono::seconds{2});
  EXPECT_EQ(stolen->stop(SIGTERM), 0);
  EXPECT_NE(stolen->output().find("registered to another owner"), std::string::npos) << stolen->output();
  EXPECT_EQ(provider(node).at("owner").as_string(), ids.at("owner").as_string());
}

TEST_F(ProviderTest, OffersReflectPricesAndHardwareAndAnswerQueries) {
  const std::string data = dir_ + "/agent";
  ASSERT_EQ(kaisar({"provider", "init", "--data", data, "--password-file", dir_ + "/password", "--light-kdf"}).exit_code, 0);
  const std::string plain = dir_ + "/plain";
  ASSERT_EQ(kaisar({"provider", "init", "--data", plain, "--password-file", dir_ + "/password", "--light-kdf"}).exit_code, 0);
  // A bad price is refused before anything starts.
  auto bad_price = kaisar({"provider", "run", "--data", data, "--onenode", url(), "--price-gpu-hour", "1.5"});
  EXPECT_EQ(bad_price.exit_code, 2) << bad_price.err;

  auto env = env_;
  env["KAISAR_NVML_LIBRARY"] = binary_dir() + "/tests/fakes/libfake_nvml.so";  // two GPUs
  ChildProcess priced({kaisar_binary(), "provider", "run", "--data", data, "--onenode", url(), "--price-gpu-hour",
                       "500000000000000000", "--price-cpu-core-hour", "10000000000000000", "--price-ram-gb-hour",
                       "2000000000000000"},
                      env);
  ChildProcess unpriced({kaisar_binary(), "provider", "run", "--data", plain, "--onenode", url()}, env_);
  ASSERT_TRUE(eventually([&] {
    auto r = call("GET", url() + "/api/v1/providers?status=online");
    return r.status == 200 && r.body.at("providers").as_array().size() == 2;
  })) << priced.output() << unpriced.output();

  auto all = call("GET", url() + "/api/v1/offers");
  ASSERT_EQ(all.status, 200) << all.raw;
  const auto& offers = all.body.at("offers").as_array();
  ASSERT_EQ(offers.size(), 1U) << "only the provider with prices offers anything: " << all.raw;
  const auto& offer = offers[0].as_object();
  EXPECT_EQ(offer.at("num_gpus").to_number<int>(), 2);
  EXPECT_NEAR(offer.at("gpu_ram").to_number<double>(), 79.6, 0.05);  // GiB of the H100 (the first GPU)
  EXPECT_EQ(offer.at("gpu_name").as_string(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(offer.at("country").as_string(), "local");
  EXPECT_FALSE(offer.at("verified").as_bool());
  // The hourly price is exactly what the prices and the free resources say.
  const auto cores = offer.at("cpu_cores").to_number<std::uint64_t>();
  const auto ram = offer.at("ram").to_number<std::uint64_t>();
  const unsigned __int128 expected = static_cast<unsigned __int128>(2) * 500000000000000000ULL +
                                     static_cast<unsigned __int128>(cores) * 10000000000000000ULL +
                                     static_cast<unsigned __int128>(ram) * 2000000000000000ULL;
  std::string digits;
  for (unsigned __int128 v = expected; v > 0; v /= 10) digits.insert(digits.begin(), static_cast<char>('0' + v % 10));
  EXPECT_EQ(offer.at("price_hour_base_units").as_string(), digits);

  auto search = [&](const std::string& q) {
    std::string escaped;
    for (char c : q) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') escaped += c;
      else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
        escaped += buf;
      }
    }
    return call("GET", url() + "/api/v1/offers?q=" + escaped);
  };
  EXPECT_EQ(search("num_gpus>=2 gpu_ram>=24 price_hour<=100 country=local").body.at("offers").as_array().size(), 1U);
  EXPECT_EQ(search("num_gpus>=3").body.at("offers").as_array().size(), 0U);
  EXPECT_EQ(search("verified=true").body.at("offers").as_array().size(), 0U);
  auto syntax = search("num_gpus>=two");
  EXPECT_EQ(syntax.status, 400);
  EXPECT_NE(syntax.raw.find("at position 10"), std::string::npos) << syntax.raw;
  EXPECT_EQ(call("GET", url() + "/api/v1/offers?sort=cheapness").status, 400);
  EXPECT_EQ(call("GET", url() + "/api/v1/offers?q=" + std::string(3000, 'a')).status, 400);

  // The CLI, as a renter would type it.
  auto cli = kaisar({"offers", "--onenode", url(), "gpu_name=H100 num_gpus>=2 price_hour<=100", "--sort", "-reliability", "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(json::parse(cli.out).at("offers").as_array().size(), 1U);
  auto table = kaisar({"offers", "--onenode", url(), "num_gpus>=2"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("KAI/HOUR"), std::string::npos) << table.out;
  auto wrong = kaisar({"offers", "--onenode", url(), "gpu_nam=RTX"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("unknown field 'gpu_nam'"), std::string::npos) << wrong.err;
}

TEST(DevNetwork, StartsOneNodeAndAProviderAndStopsCleanly) {
  auto dir = make_temp_dir("dev");
  ChildProcess dev({kaisar_binary(), "dev", "--listen", "127.0.0.1:0", "--data", dir, "--heartbeat-interval", "1"});
  auto url = dev.wait_for_line("listening on ");
  ASSERT_TRUE(url) << dev.output();
  // The provider comes online once the dev Podman runs and has the demo image (slow under
  // sanitizers and a loaded machine).
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] {
    auto r = net::http_request("GET", *url + "/api/v1/providers?status=online");
    return r && r->status == 200 && json::parse(r->body).at("providers").as_array().size() == 1;
  }, std::chrono::seconds{90})) << dev.output();
  const auto online = std::chrono::steady_clock::now();
  EXPECT_TRUE(fs::exists(dir + "/wallets/renter.json"));
  EXPECT_TRUE(fs::exists(dir + "/wallets/renter.password"));
  EXPECT_TRUE(fs::exists(dir + "/wallets/provider.json"));
  // The printed renter wallet works with the CLI straight away.
  auto login = run_process({kaisar_binary(), "login", "--onenode", *url, "--wallet", dir + "/wallets/renter.json",
                            "--password-file", dir + "/wallets/renter.password"},
                           {}, {{"XDG_CONFIG_HOME", dir + "/config"}});
  EXPECT_EQ(login.exit_code, 0) << login.err;
  EXPECT_TRUE(fs::exists(dir + "/wallets/checker.json"));
  auto faucet = run_process({kaisar_binary(), "wallet", "faucet", "--onenode", *url}, {},
                            {{"XDG_CONFIG_HOME", dir + "/config"}});
  EXPECT_EQ(faucet.exit_code, 0) << faucet.err;
  auto anonymous_faucet = run_process({kaisar_binary(), "wallet", "faucet", "--onenode", *url}, {},
                                      {{"XDG_CONFIG_HOME", dir + "/elsewhere"}});
  EXPECT_EQ(anonymous_faucet.exit_code, 3) << anonymous_faucet.err;

  // The dev chain: contracts deployed, wallets funded with ETH and KAI.
  auto chain = call("GET", *url + "/api/v1/chain");
  ASSERT_EQ(chain.status, 200) << chain.raw;
  EXPECT_TRUE(chain.body.at("enabled").as_bool());
  EXPECT_TRUE(chain.body.at("faucet").as_bool());
  const json::value contracts = chain.body.at("contracts");
  auto balance = [&] {
    auto r = run_process({kaisar_binary(), "wallet", "balance", "--onenode", *url, "--wallet",
                          dir + "/wallets/renter.json", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json::value{};
  };
  EXPECT_TRUE(eventually([&] {
    auto b = balance();
    return b.is_object() && b.at("token_base_units").as_string() != "0";
  })) << dev.output();
  EXPECT_EQ(balance().at("eth_wei").as_string(), "100000000000000000000");
  // The dev provider has prices, so there is something to rent.
  auto offers = call("GET", *url + "/api/v1/offers");
  ASSERT_EQ(offers.status, 200) << offers.raw;
  EXPECT_EQ(offers.body.at("offers").as_array().size(), 1U) << offers.raw;

  // What a newcomer does next, offline: rent the demo image and reach its HTTP server.
  const std::map<std::string, std::string> renter_env{{"XDG_CONFIG_HOME", dir + "/config"}};
  const std::vector<std::string> wallet{"--onenode", *url, "--wallet", dir + "/wallets/renter.json",
                                        "--password-file", dir + "/wallets/renter.password"};
  auto with_wallet = [&](std::vector<std::string> args) {
    args.insert(args.begin(), kaisar_binary());
    args.insert(args.end(), wallet.begin(), wallet.end());
    return run_process(args, {}, renter_env, std::chrono::seconds{120});
  };
  auto rent = with_wallet({"rent", "--query", "cpu_cores>=1", "--image", "localhost/kaisar/demo:latest", "--port",
                           "8080", "--json"});
  ASSERT_EQ(rent.exit_code, 0) << rent.err << rent.out << dev.output();
  auto lease = json::parse(rent.out);
  EXPECT_EQ(lease.at("state").as_string(), "running");
  const auto& endpoint = lease.at("endpoints").at(0);
  EXPECT_EQ(endpoint.at("port").to_number<int>(), 8080);
  const std::string http = "http://127.0.0.1:" + std::to_string(endpoint.at("host_port").to_number<int>()) + "/";
  std::optional<net::ClientResponse> page;
  EXPECT_TRUE(eventually([&] {
    auto r = net::http_request("GET", http);
    if (r && r->status == 200) page = *r;
    return page.has_value();
  })) << http;
  EXPECT_EQ(with_wallet({"lease", "stop", std::string(lease.at("id").as_string())}).exit_code, 0);

  // The dev checker has checked the new provider within 30 s of it coming online, and the
  // first epoch (60 s) closes with its root posted on chain.
  auto left = [](std::chrono::steady_clock::time_point until) {
    return std::max(std::chrono::milliseconds{100}, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                        until - std::chrono::steady_clock::now()));
  };
  EXPECT_TRUE(eventually([&] {
    auto r = call("GET", *url + "/api/v1/attestations");
    return r.status == 200 && !r.body.at("attestations").as_array().empty();
  }, left(online + std::chrono::seconds{32}))) << dev.output();
  EXPECT_TRUE(eventually([&] {
    auto r = call("GET", *url + "/api/v1/epochs/0");
    return r.status == 200 && r.body.at("state").as_string() == "closed" && r.body.at("transaction").is_string();
  }, left(started + std::chrono::seconds{75}))) << dev.output();
  EXPECT_EQ(dev.stop(SIGINT), 0) << dev.output();

  // A second start keeps the chain: same contracts, the KAI still there.
  ChildProcess again({kaisar_binary(), "dev", "--listen", "127.0.0.1:0", "--data", dir, "--heartbeat-interval", "1"});
  url = again.wait_for_line("listening on ");
  ASSERT_TRUE(url) << again.output();
  auto chain2 = call("GET", *url + "/api/v1/chain");
  ASSERT_EQ(chain2.status, 200) << chain2.raw;
  EXPECT_EQ(chain2.body.at("contracts"), contracts);
  EXPECT_NE(balance().at("token_base_units").as_string(), "0");
  EXPECT_EQ(again.stop(SIGINT), 0) << again.output();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaisar::testing
