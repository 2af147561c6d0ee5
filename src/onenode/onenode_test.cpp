#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <boost/json.hpp>

#include "crypto/eip191.hpp"
#include "eth/abi.hpp"
#include "onenode/auth.hpp"
#include "onenode/checks.hpp"
#include "onenode/epochs.hpp"
#include "onenode/config.hpp"
#include "onenode/schema.hpp"
#include "onenode/leases.hpp"
#include "onenode/registry.hpp"
#include "onenode/scheduler.hpp"
#include "onenode/siwe.hpp"
#include "onenode/verified.hpp"

namespace kaisar::onenode {
namespace {

const char* kExample =
    "example.com wants you to sign in with your Ethereum account:\n"
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n"
    "\n"
    "Sign in to Kaisar.\n"
    "\n"
    "URI: https://example.com/login\n"
    "Version: 1\n"
    "Chain ID: 31337\n"
    "Nonce: abcdef0123456789\n"
    "Issued At: 2026-11-25T10:00:00Z\n"
    "Expiration Time: 2026-11-25T10:10:00Z\n"
    "Resources:\n"
    "- https://example.com/terms";

TEST(Siwe, ParsesAndPrintsTheSameText) {
  auto m = SiweMessage::parse(kExample);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->domain, "example.com");
  EXPECT_EQ(m->address.to_checksum(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
  EXPECT_EQ(m->statement, "Sign in to Kaisar.");
  EXPECT_EQ(m->chain_id, 31337u);
  EXPECT_EQ(m->nonce, "abcdef0123456789");
  ASSERT_EQ(m->resources.size(), 1u);
  EXPECT_EQ(m->to_string(), kExample);
}

TEST(Siwe, StatementAndOptionalFieldsMayBeAbsent) {
  std::string text =
      "https://127.0.0.1:8080 wants you to sign in with your Ethereum account:\n"
      "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266\n"
      "\n"
      "URI: http://127.0.0.1:8080\n"
      "Version: 1\n"
      "Chain ID: 1\n"
      "Nonce: 12345678\n"
      "Issued At: 2026-11-25T10:00:00.5+01:00";
  auto m = SiweMessage::parse(text);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->scheme, "https");
  EXPECT_EQ(m->domain, "127.0.0.1:8080");
  EXPECT_FALSE(m->statement);
  EXPECT_FALSE(m->expiration_time);
}

TEST(Siwe, ErrorsNameTheLine) {
  struct Case {
    std::string from, to, expect;
  };
  for (const auto& c : std::vector<Case>{
           {"example.com wants", "example.com needs", "line 1"},
           {"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267", "line 2"},
           {"Version: 1", "Version: 2", "Version: 1"},
           {"Chain ID: 31337", "Chain ID: abc", "chain id"},
           {"Nonce: abcdef0123456789", "Nonce: short", "nonce"},
           {"Issued At: 2026-11-25T10:00:00Z", "Issued At: yesterday", "Issued At"},
           {"- https://example.com/terms", "- https://example.com/terms\nextra", "end of the message"},
       }) {
    std::string text = kExample;
    auto pos = text.find(c.from);
    ASSERT_NE(pos, std::string::npos);
    text.replace(pos, c.from.size(), c.to);
    auto m = SiweMessage::parse(text);
    ASSERT_FALSE(m) << c.to;
    EXPECT_NE(m.error().message.find(c.expect), std::string::npos) << m.error().message;
  }
  EXPECT_FALSE(SiweMessage::parse(""));
  EXPECT_FALSE(SiweMessage::parse(std::string(kMaxSiweMessageBytes + 1, 'a')));
  std::string crlf = kExample;
  crlf.insert(crlf.find('\n'), "\r");
  EXPECT_FALSE(SiweMessage::parse(crlf));
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kaisar-auth-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = store::open_sqlite((dir_ / "db").string(), migrations());
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    auth_ = std::make_unique<AuthService>(*db_, clock_, settings_, key_of_node_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  ManualClock clock_{from_unix_seconds(1795600000)};
  AuthSettings settings_{"127.0.0.1:8080", "http://127.0.0.1:8080", 31337, std::chrono::seconds{600},
                         std::chrono::seconds{3600}};
  NonceKey key_of_node_{std::array<std::uint8_t, 32>{1, 2, 3}};
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<AuthService> auth_;
  crypto::PrivateKey key_ = crypto::PrivateKey::generate();
};

TEST_F(AuthTest, LoginAuthenticateLogout) {
  auto nonce = auth_->issue_nonce(key_.address());
  ASSERT_TRUE(nonce) << nonce.error().message;
  EXPECT_NE(nonce->message.find("127.0.0.1:8080 wants you to sign in"), std::string::npos);
  auto sig = crypto::personal_sign(key_, nonce->message);
  auto session = auth_->login(nonce->message, sig.to_hex());
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_EQ(session->address, key_.address());
  EXPECT_EQ(session->token.size(), 64u);
  auto who = auth_->authenticate(session->token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->address, key_.address());
  // Tokens are stored hashed: the raw token is nowhere in the database.
  auto rows = db_->query("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", {session->token});
  EXPECT_EQ(rows->front().integer(0), 0);
  ASSERT_TRUE(auth_->logout(session->token));
  EXPECT_EQ(auth_->authenticate(session->token).error().code, ErrorCode::kUnauthenticated);
}

TEST_F(AuthTest, NonceIsSingleUse) {
  auto nonce = auth_->issue_nonce(key_.address());
  auto sig = crypto::personal_sign(key_, nonce->message).to_hex();
  ASSERT_TRUE(auth_->login(nonce->message, sig));
  auto again = auth_->login(nonce->message, sig);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(again.error().message.find("already used"), std::string::npos);
}

TEST_F(AuthTest, ExpiredNonceAndTokenAreRefused) {
  auto nonce = auth_->issue_nonce(key_.address());
  auto sig = crypto::personal_sign(key_, nonce->message).to_hex();
  clock_.advance(std::chrono::seconds{601});
  auto late = auth_->login(nonce->message, sig);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kUnauthenticated);

  auto fresh = auth_->issue_nonce(key_.address());
  auto session = auth_->login(fresh->message, crypto::personal_sign(key_, fresh->message).to_hex());
  ASSERT_TRUE(session);
  clock_.advance(std::chrono::seconds{3601});
  EXPECT_FALSE(auth_->authenticate(session->token));
}

TEST_F(AuthTest, WrongSignerDomainChainOrAlteredMessage) {
  auto nonce = auth_->issue_nonce(key_.address());
  auto other = crypto::PrivateKey::generate();
  EXPECT_EQ(auth_->login(nonce->message, crypto::personal_sign(other, nonce->message).to_hex()).error().code,
            ErrorCode::kUnauthenticated);

  auto replace = [](std::string text, const std::string& from, const std::string& to) {
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  for (const auto& altered : {replace(nonce->message, "127.0.0.1:8080 wants", "evil.example wants"),
                              replace(nonce->message, "Chain ID: 31337", "Chain ID: 1"),
                              replace(nonce->message, "Sign in to Kaisar.", "Sign in to Kaisar!")}) {
    auto r = auth_->login(altered, crypto::personal_sign(key_, altered).to_hex());
    ASSERT_FALSE(r) << altered;
    EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated) << r.error().message;
  }
  // The untouched message still works afterwards: failed attempts do not burn the nonce.
  EXPECT_TRUE(auth_->login(nonce->message, crypto::personal_sign(key_, nonce->message).to_hex()));
}

TEST_F(AuthTest, NonceIssuedToAnotherAddress) {
  auto other = crypto::PrivateKey::generate();
  auto nonce = auth_->issue_nonce(other.address());
  std::string text = nonce->message;
  const std::string from = other.address().to_checksum();
  text.replace(text.find(from), from.size(), key_.address().to_checksum());
  auto r = auth_->login(text, crypto::personal_sign(key_, text).to_hex());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(AuthTest, MalformedSignature) {
  auto nonce = auth_->issue_nonce(key_.address());
  for (const char* sig : {"", "0x", "0x1234", "not hex at all"}) {
    auto r = auth_->login(nonce->message, sig);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << sig;
  }
}

TEST_F(AuthTest, IssuingNoncesStoresNothingAndSpentOnesExpire) {
  // Strangers asking for nonces cannot fill anything: nothing is written until a login.
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(auth_->issue_nonce(crypto::PrivateKey::generate().address()));
  EXPECT_EQ(db_->query("SELECT COUNT(*) FROM auth_nonces", {})->front().integer(0), 0);
  auto nonce = auth_->issue_nonce(key_.address());
  ASSERT_TRUE(auth_->login(nonce->message, crypto::personal_sign(key_, nonce->message).to_hex()));
  EXPECT_EQ(db_->query("SELECT COUNT(*) FROM auth_nonces", {})->front().integer(0), 1);
}

TEST_F(AuthTest, NonceFromAnotherKeyOrWithOtherTimesIsRefused) {
  auto nonce = auth_->issue_nonce(key_.address());
  // Another OneNode's key (or a guessed nonce) does not verify here.
  AuthService other(*db_, clock_, settings_, NonceKey(std::array<std::uint8_t, 32>{9}));
  auto theirs = other.issue_nonce(key_.address());
  auto r = auth_->login(theirs->message, crypto::personal_sign(key_, theirs->message).to_hex());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("unknown nonce"), std::string::npos) << r.error().message;
  // Moving the expiry later breaks the MAC.
  std::string text = nonce->message;
  auto at = text.find("Expiration Time: ") + 17;
  text.replace(at, 4, "2099");
  auto later = auth_->login(text, crypto::personal_sign(key_, text).to_hex());
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().code, ErrorCode::kUnauthenticated);
}

TEST_F(AuthTest, PurgeRemovesExpired) {
  auto nonce = auth_->issue_nonce(key_.address());
  ASSERT_TRUE(auth_->login(nonce->message, crypto::personal_sign(key_, nonce->message).to_hex()));
  clock_.advance(std::chrono::seconds{700});
  auth_->purge_expired();
  EXPECT_EQ(db_->query("SELECT COUNT(*) FROM auth_nonces", {})->front().integer(0), 0);
}

TEST(Config, TomlAndErrors) {
  auto path = std::filesystem::temp_directory_path() / ("kaisar-config-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream f(path);
    f << "listen = \"127.0.0.1:0\"\nchain_id = 3338\nheartbeat_interval = 2\noffline_after = 6\n";
  }
  auto c = OneNodeConfig::load_toml(path.string());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_EQ(c->chain_id, 3338u);
  EXPECT_EQ(c->offline_after, std::chrono::seconds{6});
  {
    std::ofstream f(path);
    f << "listen = 5\n";
  }
  EXPECT_FALSE(OneNodeConfig::load_toml(path.string()));
  {
    std::ofstream f(path);
    f << "lisen = \"x\"\n";
  }
  auto unknown = OneNodeConfig::load_toml(path.string());
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key"), std::string::npos);
  {
    std::ofstream f(path);
    f << "listen = \n";
  }
  EXPECT_FALSE(OneNodeConfig::load_toml(path.string()));
  std::filesystem::remove(path);

  EXPECT_TRUE(OneNodeConfig::split_listen("127.0.0.1:0"));
  EXPECT_EQ(OneNodeConfig::split_listen("[::1]:80")->first, "::1");
  EXPECT_FALSE(OneNodeConfig::split_listen("localhost"));
  EXPECT_FALSE(OneNodeConfig::split_listen("h:70000"));
  EXPECT_FALSE(OneNodeConfig::split_listen("h:"));
}

}  // namespace
}  // namespace kaisar::onenode

namespace kaisar::onenode {
namespace {

namespace json = boost::json;

json::object provider_view(const std::string& id, int gpus, const char* model, const char* gpu_hour, double reliability) {
  json::array list;
  for (int i = 0; i < gpus; ++i) list.push_back(json::object{{"name", model}, {"vram_bytes", 24ULL << 30}});
  return json::object{{"id", id},
                      {"status", "online"},
                      {"hardware", json::object{{"cpu_cores", 16}, {"ram_bytes", 64ULL << 30}, {"gpus", list}}},
                      {"prices", json::object{{"gpu_hour", gpu_hour}, {"cpu_core_hour", "10000000000000000"},
                                              {"ram_gb_hour", "1000000000000000"}}},
                      {"uptime", json::object{{"ratio_30d", reliability}}},
                      {"location", json::object{{"country", "DE"}, {"region", nullptr}}}};
}

TEST(Scheduler, SearchesAndPlacesOnWhatIsFree) {
  const std::string a = "0x00000000000000000000000000000000000000a1";
  const std::string b = "0x00000000000000000000000000000000000000b2";
  const std::string c = "0x00000000000000000000000000000000000000c3";
  Scheduler s;
  s.upsert(provider_view(a, 2, "NVIDIA GeForce RTX 4090", "500000000000000000", 0.99));
  s.upsert(provider_view(b, 4, "NVIDIA GeForce RTX 4090", "400000000000000000", 0.90));
  s.upsert(provider_view(c, 0, "", "0", 1.0));
  ASSERT_EQ(s.size(), 3u);

  auto page = s.search("gpu_name=RTX_4090", "", 10);
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->total, 2u);
  EXPECT_EQ(page->offers[0].at("id").as_string(), a);  // the whole offer is cheaper (2 GPUs, not 4)
  auto by_reliability = s.search("num_gpus>=1", "reliability", 1);
  ASSERT_TRUE(by_reliability);
  EXPECT_EQ(by_reliability->total, 2u);
  ASSERT_EQ(by_reliability->offers.size(), 1u);
  EXPECT_EQ(by_reliability->offers[0].at("id").as_string(), b);
  EXPECT_FALSE(s.search("num_gpus>>1", "", 10));
  EXPECT_FALSE(s.search("", "nonsense", 10));

  // One GPU: the cheapest per GPU; what leases hold and who is offline are not offered.
  auto q = parse_query("gpu_name=4090").value();
  EXPECT_EQ(s.candidates(q, Need{1, 1, 1}, 3).value(), (std::vector<std::string>{b, a}));
  s.set_held("0x00000000000000000000000000000000000000b2", Reserved{4, 4, 4});
  EXPECT_EQ(s.candidates(q, Need{1, 1, 1}, 3).value(), std::vector<std::string>{a});
  EXPECT_TRUE(s.candidates(q, Need{3, 1, 1}, 3).value().empty());
  json::object gone = provider_view(a, 2, "NVIDIA GeForce RTX 4090", "500000000000000000", 0.99);
  gone["status"] = "offline";
  s.upsert(gone);
  EXPECT_TRUE(s.candidates(q, Need{1, 1, 1}, 3).value().empty());
  EXPECT_EQ(s.search("", "", 10).value().total, 2u);  // b (CPU still free) and c
  // CPU only: the cheapest per core among those with room.
  EXPECT_EQ(s.candidates(parse_query("").value(), Need{0, 16, 8}, 3).value(), std::vector<std::string>{c});
  s.set_held("0x00000000000000000000000000000000000000b2", Reserved{0, 0, 0});
  EXPECT_EQ(s.candidates(q, Need{4, 1, 1}, 3).value(), std::vector<std::string>{b});
}

}  // namespace
}  // namespace kaisar::onenode

namespace kaisar::onenode {
namespace {

// A lease book on its own database, with one online provider of two H100s.
struct LeaseBookHarness {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("kaisar-leasebook-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::unique_ptr<store::Database> db;
  ManualClock clock{from_unix_seconds(1795600000)};
  EventHub events;
  std::unique_ptr<ProviderRegistry> registry;
  std::unique_ptr<LeaseBook> leases;
  Registration reg;

  LeaseBookHarness() {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    db = std::move(store::open_sqlite((dir / "db").string(), migrations()).value());
    registry = std::make_unique<ProviderRegistry>(*db, clock, events, std::chrono::hours{24},
                                                  [](const std::string&) { return "DE"; });
    leases = std::make_unique<LeaseBook>(*db, clock, events, *registry, std::chrono::seconds{900});
    reg.node = crypto::PrivateKey::generate().address();
    reg.owner = crypto::PrivateKey::generate().address();
    reg.hardware.cpu_cores = 8;
    reg.hardware.ram_bytes = 16ULL << 30;
    reg.hardware.gpus = {Gpu{"NVIDIA H100 80GB HBM3", 80ULL << 30, "GPU-a", "550"},
                         Gpu{"NVIDIA H100 80GB HBM3", 80ULL << 30, "GPU-b", "550"}};
    reg.prices = json::object{{"gpu_hour", "1000"}, {"cpu_core_hour", "10"}, {"ram_gb_hour", "1"}};
    (void)registry->connect(reg).value();
  }
  ~LeaseBookHarness() {
    leases.reset();
    registry.reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }
  // A lease of `gpus` H100s for `hours`, made to run now (by a fresh renter by default).
  std::string running_lease(std::uint32_t gpus, std::uint32_t hours,
                            std::optional<crypto::Address> renter = std::nullopt) {
    LeaseSpec spec;
    spec.offer = reg.node.to_checksum();
    spec.image = "localhost/kaisar/demo:latest";
    spec.gpus = gpus;
    spec.hours = hours;
    chain::Deployment deployment;
    deployment.chain_id = 31337;
    auto lease = leases->create(renter.value_or(crypto::PrivateKey::generate().address()), spec, deployment).value();
    const std::string id(lease.at("id").as_string());
    EXPECT_EQ(*leases->get(id), lease);  // shown as stored
    EXPECT_TRUE(db->execute("UPDATE leases SET state = 'running', started_at = ? WHERE id = ?",
                            {to_unix_seconds(clock.now()), id}));
    return id;
  }
};

TEST(LeaseSpec, ImagesFromTheProvidersOwnNetworkAreRefused) {
  auto with_image = [](std::string_view image) {
    return LeaseSpec::from_json(json::object{{"offer", "0x0000000000000000000000000000000000000001"}, {"image", image}});
  };
  for (const char* bad : {"127.0.0.1:5000/x:1", "localhost:5000/kaisar/demo:latest", "10.0.0.5/app:1",
                          "169.254.169.254/latest:1", "2130706433:80/x"}) {
    auto r = with_image(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("loopback or private address"), std::string::npos) << r.error().message;
  }
  for (const char* good : {"nginx:1.27", "ghcr.io/owner/app:1", "localhost/kaisar/demo:latest"}) {
    EXPECT_TRUE(with_image(good)) << good;
  }
  EXPECT_FALSE(with_image("../etc/passwd"));
}

TEST(LeaseBook, RunningLeasesEndWhenTheirPaidTimeIsOver) {
  LeaseBookHarness h;
  const std::string id = h.running_lease(1, 2);
  h.clock.advance(std::chrono::hours{2} - std::chrono::seconds{1});
  EXPECT_TRUE(h.leases->expire_running().empty());
  h.clock.advance(std::chrono::seconds{2});
  const auto ended = h.leases->expire_running();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].first, h.reg.node.to_lower_hex());  // the provider to tell
  EXPECT_EQ(ended[0].second, id);
  auto lease = h.leases->get(id).value();
  EXPECT_EQ(lease.at("state").as_string(), "ended");
  EXPECT_EQ(lease.at("reason").as_string(), "the paid time is over");
  // Paid for exactly the two hours: (1000 + 10 + 1) per hour, all of the deposit.
  EXPECT_EQ(lease.at("settlement").at("seconds").to_number<int>(), 7200);
  EXPECT_EQ(lease.at("settlement").at("to_provider").as_string(), "2022");
  EXPECT_EQ(lease.at("settlement").at("to_renter").as_string(), "0");
  EXPECT_TRUE(h.leases->expire_running().empty());  // once
  EXPECT_EQ(h.leases->reserved_on(h.reg.node.to_lower_hex()).value().gpus, 0u);
}

// A LeaseEscrow event as the contract emits it (topics: signature, lease id, depositor).
eth::Log escrow_log(const crypto::Address& escrow, std::string_view signature, const Hash32& lease_id,
                    const crypto::Address& depositor, const std::vector<eth::Uint256>& words, std::uint64_t block) {
  eth::Log log;
  log.address = escrow;
  Hash32 who{};
  std::copy(depositor.bytes().begin(), depositor.bytes().end(), who.begin() + 12);
  log.topics = {eth::event_topic0(signature), lease_id, who};
  for (const auto& w : words) {
    const auto b = w.to_be32();
    log.data.insert(log.data.end(), b.begin(), b.end());
  }
  log.block_number = block;
  log.log_index = 0;
  log.transaction_hash = Hash32{};
  return log;
}

TEST(LeaseBook, OnlyTheRentersOwnDepositsAndTopUpsLockedLongEnoughPayALease) {
  LeaseBookHarness h;
  const auto escrow = crypto::PrivateKey::generate().address();
  chain::EscrowLedger ledger(*h.db, escrow);
  h.leases->set_ledger(&ledger);
  chain::Deployment deployment;
  deployment.chain_id = 31337;
  deployment.escrow = escrow;
  LeaseSpec spec;
  spec.offer = h.reg.node.to_checksum();
  spec.image = "localhost/kaisar/demo:latest";
  spec.gpus = 1;
  const auto renter = crypto::PrivateKey::generate().address();
  const auto stranger = crypto::PrivateKey::generate().address();
  std::uint64_t block = 0;
  auto apply = [&](const std::string& signature, const Hash32& id, const crypto::Address& who,
                   const std::vector<eth::Uint256>& words) {
    const auto log = escrow_log(escrow, signature, id, who, words, ++block);
    ASSERT_TRUE(h.db->transaction([&]() -> Result<void> { return h.leases->apply(log); }));
  };
  const std::string kDeposited = "Deposited(bytes32,address,uint256,uint256)";
  const std::string kToppedUp = "ToppedUp(bytes32,address,uint256,uint256,uint256)";

  auto lease = h.leases->create(renter, spec, deployment).value();
  const std::string id(lease.at("id").as_string());
  const auto escrow_id = eth::parse_hash(lease.at("payment").at("lease_id").as_string()).value();
  const auto amount = eth::Uint256::from_decimal(lease.at("payment").at("amount").as_string()).value();
  const auto lock_s = lease.at("payment").at("locked_until").to_number<std::int64_t>();
  // The lock covers pay-by + hours + the settlement margin.
  EXPECT_EQ(lock_s, to_unix_seconds(h.clock.now()) + 900 + 3600 + 24 * 3600);
  const eth::Uint256 lock(static_cast<std::uint64_t>(lock_s));
  auto state = [&] { return std::string(h.leases->get(id).value().at("state").as_string()); };

  apply(kDeposited, escrow_id, stranger, {amount, lock});  // a stranger's whole quote: not the renter
  EXPECT_EQ(state(), "pending_payment");
  apply(kDeposited, escrow_id, renter, {amount - eth::Uint256(1), lock});  // one unit short
  EXPECT_EQ(state(), "pending_payment");
  apply(kToppedUp, escrow_id, renter, {eth::Uint256(1), amount, lock});  // the top-up completes it
  EXPECT_EQ(state(), "paid");

  // The whole quote with a lock shorter than the lease: the renter could take it back
  // before settlement, so it does not pay.
  auto short_lease = h.leases->create(renter, spec, deployment).value();
  const std::string short_id(short_lease.at("id").as_string());
  const auto short_escrow_id = eth::parse_hash(short_lease.at("payment").at("lease_id").as_string()).value();
  apply(kDeposited, short_escrow_id, renter, {amount, lock - eth::Uint256(3600)});
  EXPECT_EQ(h.leases->get(short_id).value().at("state").as_string(), "pending_payment");

  // At the pay-by time: dust, or a record the chain cannot be asked about yet.
  h.clock.advance(std::chrono::seconds{901});
  EXPECT_EQ(h.leases->reserved_on(h.reg.node.to_lower_hex()).value().gpus, 2u);
  std::size_t asked = 0;
  EXPECT_EQ(h.leases->expire_unpaid([&](const Hash32&, const crypto::Address&) -> Result<chain::EscrowRecord> {
    ++asked;
    return fail(ErrorCode::kUnavailable, "node down");
  }), 0u);
  EXPECT_EQ(asked, 1u);
  EXPECT_EQ(h.leases->expire_unpaid([&](const Hash32& escrow_lease, const crypto::Address& who) -> Result<chain::EscrowRecord> {
    EXPECT_EQ(escrow_lease, short_escrow_id);
    EXPECT_EQ(who, renter);  // only the renter's record is asked for
    return chain::EscrowRecord{amount, chain::EscrowRecord::State::kOpen,
                               std::chrono::sys_seconds{std::chrono::seconds{lock_s - 3600}}};
  }), 1u);
  EXPECT_EQ(h.leases->get(short_id).value().at("state").as_string(), "failed");
  EXPECT_EQ(h.leases->reserved_on(h.reg.node.to_lower_hex()).value().gpus, 1u);  // its GPU is free again
  EXPECT_EQ(state(), "paid");
}

TEST(LeaseBook, DiskIsReservedAgainstWhatTheProviderHasFree) {
  LeaseBookHarness h;
  h.reg.hardware.disk_free_bytes = 100ULL << 30;
  (void)h.registry->connect(h.reg).value();
  LeaseSpec spec;
  spec.offer = h.reg.node.to_checksum();
  spec.image = "localhost/kaisar/demo:latest";
  spec.disk_gb = 60;
  chain::Deployment deployment;
  deployment.chain_id = 31337;
  const auto renter = crypto::PrivateKey::generate().address();
  ASSERT_TRUE(h.leases->create(renter, spec, deployment));
  auto second = h.leases->create(renter, spec, deployment);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_EQ(second.error().message, "not enough free disk on this offer");
  spec.disk_gb = 40;
  EXPECT_TRUE(h.leases->create(renter, spec, deployment));
}

TEST(LeaseBook, UsageKeepsEachGpuAndTheirMean) {
  LeaseBookHarness h;
  auto& leases = *h.leases;
  auto& clock = h.clock;
  const auto& reg = h.reg;
  const std::string id = h.running_lease(2, 1);
  clock.advance(std::chrono::seconds{36});

  const std::string provider = reg.node.to_lower_hex();
  auto usage = [&](json::array gpus) {
    return json::object{{"type", "lease_usage"}, {"lease_id", id}, {"cpu_ns", 5}, {"memory_bytes", 7},
                        {"gpus", std::move(gpus)}};
  };
  ASSERT_TRUE(leases.on_usage(provider, usage(json::array{
      json::object{{"uuid", "GPU-a"}, {"utilization_percent", 37}, {"memory_used_bytes", 1 << 30}},
      json::object{{"uuid", "GPU-b"}, {"utilization_percent", 90}, {"memory_used_bytes", 2}},
      json::object{{"uuid", "GPU-c"}, {"utilization_percent", 101}},     // not a percentage: left out
      json::object{{"uuid", std::string(200, 'x')}, {"utilization_percent", 5}},  // too long
      json::value("not an object")})));
  auto shown = leases.get(id);
  ASSERT_TRUE(shown);
  const auto& u = shown->at("usage");
  EXPECT_DOUBLE_EQ(u.at("gpu_utilization_percent").as_double(), 63.5);
  ASSERT_EQ(u.at("gpus").as_array().size(), 2u);
  EXPECT_EQ(u.at("gpus").at(0).at("memory_used_bytes").to_number<std::uint64_t>(), 1ULL << 30);
  EXPECT_EQ(u.at("seconds").to_number<int>(), 36);
  EXPECT_EQ(u.at("cost_so_far").as_string(), "20");  // (2 × 1000 + 10 + 1) per hour × 36 s

  // Another provider's report about this lease changes nothing.
  EXPECT_FALSE(leases.on_usage("0x00000000000000000000000000000000000000ff", usage(json::array{})));
  EXPECT_EQ(leases.get(id)->at("usage"), u);
}

}  // namespace
}  // namespace kaisar::onenode

// ---- Proof of Physical Work: the checkers' ban rule and epoch rewards -------------------------

TEST(Checks, BansFollowThePublishedRule) {
  using kaisar::onenode::checker_ban_until;
  const std::int64_t now = 100 * 86400;
  const std::int64_t day = 86400;
  EXPECT_EQ(checker_ban_until({}, now), 0);
  EXPECT_EQ(checker_ban_until({now - day}, now), 0);  // one mistake is not a pattern
  // Two in a week: a month.
  EXPECT_EQ(checker_ban_until({now - day, now - 3 * day}, now), now + 30 * day);
  // Two, but eight days apart: nothing.
  EXPECT_EQ(checker_ban_until({now - day, now - 9 * day}, now), 0);
  // Five in a month: six months (even when spread so that no week holds two).
  EXPECT_EQ(checker_ban_until({now, now - 8 * day, now - 16 * day, now - 24 * day, now - 29 * day}, now), now + 180 * day);
  // More than ten ever: for good.
  std::vector<std::int64_t> many;
  for (int i = 0; i < 11; ++i) many.push_back(now - (i + 1) * 60 * day);
  EXPECT_EQ(checker_ban_until(many, now), -1);
  many.pop_back();
  EXPECT_EQ(checker_ban_until(many, now), 0);  // ten old ones: none recent
}

TEST(Epochs, RewardsFollowWorkHardwareAndChecks) {
  using namespace kaisar::onenode;
  ProviderWork gpu;
  gpu.uptime_s = 3600;
  gpu.tops = 100;  // the reference GPU
  ProviderWork cpu = gpu;
  cpu.tops = 0;
  cpu.cpu_cores = 16;  // the reference CPU
  // GPU weighs 3, CPU 1.
  EXPECT_DOUBLE_EQ(hardware_score(gpu), 3.0);
  EXPECT_DOUBLE_EQ(hardware_score(cpu), 1.0);
  // Job time counts three times.
  ProviderWork busy = cpu;
  busy.uptime_s = 0;
  busy.job_s = 1200;
  EXPECT_DOUBLE_EQ(provider_weight(busy), provider_weight(cpu));
  ProviderWork failed = gpu;
  failed.failed_check = true;
  EXPECT_EQ(provider_weight(failed), 0);
  EXPECT_DOUBLE_EQ(checker_weight(10, 0.2), 8.0);
  EXPECT_DOUBLE_EQ(checker_weight(10, 1.5), 0.0);
  // Shares never add up past the pool, and follow the weights.
  const kaisar::eth::Uint256 pool = kaisar::eth::Uint256::from_decimal("1000000000000000000").value();
  auto shares = share(pool, {3, 1, 0});
  ASSERT_EQ(shares.size(), 3U);
  EXPECT_EQ(shares[0].to_decimal(), "750000000000000000");
  EXPECT_EQ(shares[1].to_decimal(), "250000000000000000");
  EXPECT_TRUE(shares[2].is_zero());
  auto thirds = share(pool, {1, 1, 1});
  EXPECT_LE(thirds[0] + thirds[1] + thirds[2], pool);
  EXPECT_TRUE(share(pool, {0, 0})[0].is_zero());
  // The leaf bytes the contracts hash.
  const auto a = kaisar::crypto::Address::parse("0x00000000000000000000000000000000000000aa").value();
  EXPECT_EQ(reward_leaf(a, 5).size(), 52U);
  EXPECT_EQ(uptime_leaf(a, 1, 2, 3).size(), 45U);
  EXPECT_EQ(attestation_leaf(kaisar::Hash32{}, kaisar::Bytes(65)).size(), 98U);
}

// No rule hands a whole epoch pool to checkers: one check in an otherwise empty epoch earns
// the per-check cap, not the pool; what checkers do not take goes to providers or is not
// minted.
TEST(Epochs, ChecksEarnAtMostTheCapAndNeverTheWholePool) {
  using kaisar::eth::Uint256;
  using namespace kaisar::onenode;
  const Uint256 pool = Uint256::from_decimal("10000000000000000000").value();  // 10 KAI
  const Uint256 cap = Uint256::from_decimal("100000000000000000").value();     // 0.1 KAI
  // One check, no provider worked: the check earns the cap; the rest is not minted.
  auto alone = split_rewards(pool, 0, 1, cap);
  EXPECT_EQ(alone.checkers, cap);
  EXPECT_TRUE(alone.providers.is_zero());
  // With providers, the rest of the pool is theirs.
  auto both = split_rewards(pool, 5, 1, cap);
  EXPECT_EQ(both.checkers, cap);
  EXPECT_EQ(both.providers, pool - cap);
  // Many checks: at most a fifth of the pool, however many.
  auto busy = split_rewards(pool, 5, 1e6, cap);
  EXPECT_EQ(busy.checkers.to_decimal(), "2000000000000000000");
  EXPECT_EQ(busy.providers.to_decimal(), "8000000000000000000");
  auto idle = split_rewards(pool, 0, 1e6, cap);
  EXPECT_EQ(idle.checkers.to_decimal(), "2000000000000000000");
  EXPECT_TRUE(idle.providers.is_zero());
  // Half a weighted check (an error rate of 0.5) earns half the cap; no checks: nothing.
  EXPECT_EQ(split_rewards(pool, 1, 0.5, cap).checkers.to_decimal(), "50000000000000000");
  auto none = split_rewards(pool, 1, 0, cap);
  EXPECT_TRUE(none.checkers.is_zero());
  EXPECT_EQ(none.providers, pool);
  // A cap too large to multiply still leaves checkers a fifth at most.
  EXPECT_EQ(split_rewards(pool, 1, 3, Uint256::from_decimal("1" + std::string(76, '0')).value()).checkers.to_decimal(),
            "2000000000000000000");
}

TEST(Epochs, VerifiedResourcesAreWhatChecksMeasured) {
  using namespace kaisar::onenode;
  EXPECT_FALSE(verified_resources(nullptr).checked);
  EXPECT_FALSE(verified_resources(nullptr).failed);  // not checked yet: not failed either
  auto passed = verified_resources(json::parse(
      R"({"verified":true,"tops":12.5,"memory_bytes":268435456,"memory_passed":true,"check_id":"0x01"})"));
  EXPECT_TRUE(passed.checked);
  EXPECT_FALSE(passed.failed);
  EXPECT_DOUBLE_EQ(passed.tops, 12.5);
  EXPECT_EQ(passed.memory_bytes, 268435456U);
  EXPECT_EQ(passed.disk_bytes, 0U);  // nothing measures disk
  auto failed = verified_resources(json::parse(R"({"verified":false,"tops":12.5,"memory_bytes":268435456,"memory_passed":true})"));
  EXPECT_TRUE(failed.failed);
  EXPECT_EQ(failed.memory_bytes, 0U);
  EXPECT_EQ(failed.tops, 0);
  auto no_memory = verified_resources(json::parse(R"({"verified":true,"memory_bytes":268435456,"memory_passed":false})"));
  EXPECT_EQ(no_memory.memory_bytes, 0U);
}

// A provider earns for what checks verified and for others' leases: inflating its RAM and
// disk claims earns nothing more than an honest twin, and a lease its own owner rents earns
// no job time.
TEST(Epochs, InflatedClaimsAndSelfRentalEarnNothing) {
  using namespace kaisar::onenode;
  LeaseBookHarness h;
  OneNodeConfig config;
  config.epoch_length = std::chrono::seconds{60};
  config.epoch_reward = "1000000";
  // The twin: the same machine, claiming 32 times the RAM and a petabyte of disk.
  Registration twin = h.reg;
  twin.node = kaisar::crypto::PrivateKey::generate().address();
  twin.owner = kaisar::crypto::PrivateKey::generate().address();
  twin.hardware.ram_bytes = h.reg.hardware.ram_bytes * 32;
  twin.hardware.disk_bytes = twin.hardware.disk_free_bytes = 1ULL << 50;
  ASSERT_TRUE(h.registry->connect(twin));
  // Both passed a check whose memory phase filled 256 MiB.
  const std::string verification =
      R"({"verified":true,"tops":0,"memory_bytes":268435456,"memory_passed":true,"check_id":"0x01"})";
  ASSERT_TRUE(h.db->execute("UPDATE providers SET verification = ?", {verification}));
  // The honest provider runs a lease its own owner rented; a stranger's lease would count.
  h.running_lease(1, 2, h.reg.owner);
  EpochBook book(*h.db, h.clock, h.events, config);
  ASSERT_TRUE(book.recover());
  h.clock.advance(std::chrono::seconds{61});
  ASSERT_TRUE(book.tick());
  auto honest = book.proof(0, h.reg.node.to_checksum()).value();
  EXPECT_EQ(kaisar::from_hex(honest.at("leaf").as_string()).value(), uptime_leaf(h.reg.node, 0, 61, 0))
      << "self-rental earns no job time";
  const auto a = book.rewards(h.reg.owner).value();
  const auto b = book.rewards(twin.owner).value();
  ASSERT_EQ(a.size(), 1U);
  ASSERT_EQ(b.size(), 1U);
  EXPECT_EQ(a[0].at("amount").as_string(), b[0].at("amount").as_string()) << "inflated claims earned more";
  // Offers and the provider view show claimed and verified side by side.
  auto view = h.registry->get(twin.node.to_lower_hex()).value();
  EXPECT_EQ(view.at("verified_memory_bytes").to_number<std::uint64_t>(), 268435456U);
  EXPECT_EQ(view.at("verified_disk_bytes").to_number<std::uint64_t>(), 0U);
  EXPECT_EQ(view.at("hardware").at("ram_bytes").to_number<std::uint64_t>(), twin.hardware.ram_bytes);

  // A stranger's lease on the same machine does earn job time in the next epoch.
  h.running_lease(1, 2);
  h.clock.advance(std::chrono::seconds{61});
  ASSERT_TRUE(book.tick());
  auto next = book.proof(1, h.reg.node.to_checksum()).value();
  EXPECT_EQ(kaisar::from_hex(next.at("leaf").as_string()).value(), uptime_leaf(h.reg.node, 1, 61, 61));
}

// An epoch closes into uptime leaves (an open interval reaches the epoch's end, not just its
// last flushed heartbeat), rewards for the owner and a root queued for the chain.
TEST(Epochs, CloseIntoUptimeLeavesRewardsAndARoot) {
  using namespace kaisar::onenode;
  LeaseBookHarness h;
  OneNodeConfig config;
  config.epoch_length = std::chrono::seconds{60};
  config.epoch_reward = "1000";
  EpochBook book(*h.db, h.clock, h.events, config);
  ASSERT_TRUE(book.recover());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> posted;
  book.post_root = [&](std::uint64_t epoch, const kaisar::Hash32&, std::uint64_t leaves) -> kaisar::Result<void> {
    posted.emplace_back(epoch, leaves);
    return {};
  };
  ASSERT_TRUE(book.tick());
  EXPECT_TRUE(posted.empty());  // not due yet
  h.clock.advance(std::chrono::seconds{61});
  ASSERT_TRUE(book.tick());
  ASSERT_EQ(posted.size(), 1U);
  EXPECT_EQ(posted[0], std::make_pair(std::uint64_t{0}, std::uint64_t{1}));
  EXPECT_EQ(book.current(), 1U);
  auto proof = book.proof(0, h.reg.node.to_checksum());
  ASSERT_TRUE(proof) << proof.error().message;
  const kaisar::Bytes leaf = kaisar::from_hex(proof->at("leaf").as_string()).value();
  EXPECT_EQ(leaf, uptime_leaf(h.reg.node, 0, 61, 0));
  EXPECT_EQ(proof->at("root").as_string(), book.get(0).value().at("root").as_string());
  auto rewards = book.rewards(h.reg.owner).value();
  ASSERT_EQ(rewards.size(), 1U);
  EXPECT_EQ(rewards[0].at("amount").as_string(), "1000");  // all of it: no checker worked
  EXPECT_EQ(book.proof(1, h.reg.node.to_checksum()).error().code, kaisar::ErrorCode::kConflict);  // still open
  EXPECT_EQ(book.proof(0, "0x" + std::string(64, '1')).error().code, kaisar::ErrorCode::kNotFound);
}
