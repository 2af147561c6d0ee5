// The chain layer against a real anvil: embedded contracts, deployment, the outbox under
// faults (node down, lost responses, restarts, wrong chain, unfunded key, reverts) and the
// log indexer through restarts and reorganizations.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <csignal>
#include <atomic>
#include <filesystem>
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <thread>

#include "chain/contracts.hpp"
#include "chain/http_transport.hpp"
#include "chain/indexer.hpp"
#include "chain/node_binding.hpp"
#include "chain/outbox.hpp"
#include "chain/payments.hpp"
#include "chain/schema.hpp"
#include "core/time.hpp"
#include "eth/abi.hpp"
#include "process.hpp"

namespace kaisar::chain {
namespace {

namespace json = boost::json;
using crypto::Address;
using crypto::PrivateKey;
using eth::AbiValue;
using eth::Uint256;
using kaisar::testing::Anvil;
using kaisar::testing::start_anvil;
using std::chrono::milliseconds;

constexpr std::string_view kDeployerKey = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
constexpr std::uint64_t kAnvilChainId = 31337;

PrivateKey deployer() { return PrivateKey::from_hex(kDeployerKey).value(); }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string cast(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kaisar::testing::node_tool("cast")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = kaisar::testing::run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return trim(r.out);
}

std::unique_ptr<store::Database> open_db(const std::string& path) {
  auto db = store::open_sqlite(path, {store::Migration{1, "chain", schema_sql()},
                                      store::Migration{2, "escrow records", escrow_records_sql()}});
  EXPECT_TRUE(db) << (db ? "" : db.error().message);
  return db ? std::move(*db) : nullptr;
}

// Forwards to the node unless a fault is set for the next exchanges.
class FaultyTransport final : public eth::RpcTransport {
 public:
  using Fault = std::function<std::optional<Result<std::string>>(std::string_view body, eth::RpcTransport& inner)>;
  explicit FaultyTransport(eth::RpcTransport& inner) : inner_(inner) {}
  void set(Fault fault) { fault_ = std::move(fault); }
  void clear() { fault_ = nullptr; }
  Result<std::string> post(std::string_view body) override {
    if (fault_) {
      if (auto r = fault_(body, inner_)) return *r;
    }
    return inner_.post(body);
  }

 private:
  eth::RpcTransport& inner_;
  Fault fault_;
};

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = kaisar::testing::make_temp_dir("chain");
    anvil_ = start_anvil(0, dir_ + "/anvil-state.json");
    ASSERT_FALSE(anvil_.url.empty()) << anvil_.process->output();
    http_ = std::make_unique<HttpRpcTransport>(anvil_.url);
    rpc_ = std::make_unique<eth::RpcClient>(*http_);
    nonces_ = std::make_unique<eth::NonceManager>(*rpc_);
    auto d = deploy_contracts(*rpc_, deployer(), *nonces_, DeployOptions{{}, milliseconds{10000}, milliseconds{20}});
    ASSERT_TRUE(d) << d.error().message;
    deployment_ = *d;
    db_ = open_db(dir_ + "/chain.db");
    ASSERT_TRUE(db_);
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Mints `amount` KAI to `to` (the deployer owns the token).
  void mint(const Address& to, std::uint64_t amount) {
    auto r = transact(*rpc_, deployer(), *nonces_, deployment_.token, "mint(address,uint256)",
                      {AbiValue::address(to), AbiValue::uint(amount)}, milliseconds{10000}, milliseconds{20});
    ASSERT_TRUE(r) << r.error().message;
  }

  Bytes transfer_call(const Address& to, std::uint64_t amount) {
    return eth::abi_encode_call("transfer(address,uint256)", AbiValue::list({AbiValue::address(to), AbiValue::uint(amount)}))
        .value();
  }

  std::uint64_t balance(const Address& holder) {
    auto b = token_balance(*rpc_, deployment_.token, holder);
    EXPECT_TRUE(b) << b.error().message;
    return b ? b->low_u64() : 0;
  }

  OutboxOptions fast_options(std::uint64_t chain_id = kAnvilChainId) {
    OutboxOptions o;
    o.chain_id = chain_id;
    o.confirmations = 1;
    o.poll_interval = milliseconds{20};
    o.min_backoff = milliseconds{1};
    o.max_backoff = milliseconds{5};
    o.rebroadcast_after = milliseconds{50};
    return o;
  }

  // Polls until every write is final (or `rounds` run out).
  static void drain(Outbox& outbox, int rounds = 400) {
    for (int i = 0; i < rounds; ++i) {
      (void)outbox.poll_once();
      auto all = outbox.list(1000);
      ASSERT_TRUE(all);
      bool open = false;
      for (const auto& e : *all) open |= e.state != WriteState::kConfirmed && e.state != WriteState::kFailed;
      if (!open) return;
      std::this_thread::sleep_for(milliseconds{10});
    }
    FAIL() << "outbox did not finish";
  }

  std::string dir_;
  Anvil anvil_;
  std::unique_ptr<HttpRpcTransport> http_;
  std::unique_ptr<eth::RpcClient> rpc_;
  std::unique_ptr<eth::NonceManager> nonces_;
  Deployment deployment_;
  std::unique_ptr<store::Database> db_;
  SystemClock clock_;
};

// --- contracts ----------------------------------------------------------------------------

TEST(Contracts, AllAreEmbeddedWithAbiAndCode) {
  for (std::string_view name :
       {"KaiToken", "RewardPoints", "LeaseEscrow", "EpochLog", "RewardDistributor", "ProviderRegistry"}) {
    auto a = artifact(name);
    ASSERT_TRUE(a) << name;
    EXPECT_GT(a->bytecode_hex.size(), 200U) << name;
    EXPECT_TRUE(from_hex(a->bytecode_hex)) << name;
    auto abi = json::parse(a->abi_json);
    ASSERT_TRUE(abi.is_array()) << name;
    EXPECT_FALSE(abi.as_array().empty()) << name;
  }
  EXPECT_EQ(artifact("Nope").error().code, ErrorCode::kNotFound);
  const std::string escrow_abi(artifact("LeaseEscrow")->abi_json);
  for (std::string_view fn : {"\"deposit\"", "\"settle\"", "\"reclaim\"", "\"recordOf\"", "\"Deposited\"", "\"Settled\"", "\"NoRecord\""}) {
    EXPECT_NE(escrow_abi.find(fn), std::string::npos) << fn;
  }
}

TEST(Contracts, DeploymentJsonRoundTripsAndRejectsBadInput) {
  Deployment d;
  d.chain_id = 3338;
  d.token = PrivateKey::generate().address();
  d.escrow = PrivateKey::generate().address();
  d.deployed_block = 77;
  auto back = deployment_from_json(json::value(to_json(d)));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, d);
  for (std::string_view bad : {R"([])", R"({})", R"({"chain_id":-1})"}) {
    EXPECT_FALSE(deployment_from_json(json::parse(bad))) << bad;
  }
  json::object o = to_json(d);
  o["escrow"] = "0x1234";
  auto r = deployment_from_json(json::value(o));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("escrow"), std::string::npos);
}

TEST_F(ChainTest, DeployedContractsWorkWithCast) {
  EXPECT_EQ(deployment_.chain_id, kAnvilChainId);
  EXPECT_EQ(cast({"call", "--rpc-url", anvil_.url, deployment_.token.to_checksum(), "symbol()(string)"}), "\"KAI\"");
  EXPECT_EQ(cast({"call", "--rpc-url", anvil_.url, deployment_.escrow.to_checksum(), "token()(address)"}),
            deployment_.token.to_checksum());
  EXPECT_EQ(cast({"call", "--rpc-url", anvil_.url, deployment_.points.to_checksum(), "isMinter(address)(bool)",
                  deployment_.escrow.to_checksum()}),
            "true");
  // Our view call reads what cast wrote.
  const Address holder = PrivateKey::generate().address();
  cast({"send", "--rpc-url", anvil_.url, "--private-key", std::string(kDeployerKey), deployment_.token.to_checksum(),
        "mint(address,uint256)", holder.to_checksum(), "4242"});
  EXPECT_EQ(balance(holder), 4242U);
}

// --- outbox -------------------------------------------------------------------------------

TEST_F(ChainTest, OutboxLandsEachWriteOnceAndKeysAreIdempotent) {
  const PrivateKey op = deployer();
  mint(op.address(), 1000);
  const Address to = PrivateKey::generate().address();
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  std::vector<std::string> changes;
  outbox.on_change([&](const OutboxEntry& e) { changes.push_back(e.key + ":" + std::string(to_string(e.state))); });
  for (int i = 0; i < 5; ++i) {
    auto e = outbox.enqueue("pay-" + std::to_string(i), "transfer", deployment_.token, transfer_call(to, 7));
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_EQ(e->state, WriteState::kQueued);
  }
  // The same key again is the same write.
  auto again = outbox.enqueue("pay-0", "transfer", deployment_.token, transfer_call(to, 7));
  ASSERT_TRUE(again);
  auto conflict = outbox.enqueue("pay-0", "transfer", deployment_.token, transfer_call(to, 8));
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::kConflict);
  EXPECT_EQ(outbox.enqueue("", "transfer", deployment_.token, {}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(outbox.enqueue("k", "transfer", deployment_.token, Bytes(200000)).error().code,
            ErrorCode::kPayloadTooLarge);

  drain(outbox);
  EXPECT_EQ(balance(to), 35U);
  auto all = outbox.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 5U);
  std::set<std::uint64_t> nonces;
  for (const auto& e : *all) {
    EXPECT_EQ(e.state, WriteState::kConfirmed) << e.key << " " << e.error;
    ASSERT_TRUE(e.nonce && e.tx_hash && e.block_number);
    nonces.insert(*e.nonce);
    EXPECT_EQ(cast({"receipt", "--rpc-url", anvil_.url, to_hex(*e.tx_hash), "status"}).substr(0, 4), "true");
  }
  EXPECT_EQ(nonces.size(), 5U);
  // sent, mined, confirmed for each write
  EXPECT_EQ(std::count(changes.begin(), changes.end(), "pay-3:confirmed"), 1);
  EXPECT_EQ(std::count(changes.begin(), changes.end(), "pay-3:sent"), 1);

  // Enqueueing a finished key changes nothing on chain.
  ASSERT_TRUE(outbox.enqueue("pay-4", "transfer", deployment_.token, transfer_call(to, 7)));
  drain(outbox);
  EXPECT_EQ(balance(to), 35U);
}

TEST_F(ChainTest, OutboxLostSendResponsesDoNotDoubleApply) {
  const PrivateKey op = deployer();
  mint(op.address(), 1000);
  const Address to = PrivateKey::generate().address();
  FaultyTransport faulty(*http_);
  // The node takes every transaction, but the first three answers are lost on the way back.
  std::atomic<int> lost{0};
  faulty.set([&](std::string_view body, eth::RpcTransport& inner) -> std::optional<Result<std::string>> {
    if (body.find("eth_sendRawTransaction") != std::string_view::npos && lost < 3) {
      ++lost;
      (void)inner.post(body);
      return Result<std::string>(fail(ErrorCode::kTimeout, "injected: response lost"));
    }
    return std::nullopt;
  });
  Outbox outbox(*db_, faulty, op, fast_options(), clock_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(outbox.enqueue("w" + std::to_string(i), "transfer", deployment_.token,
                                                         transfer_call(to, 100)));
  drain(outbox);
  EXPECT_EQ(lost.load(), 3);
  EXPECT_EQ(balance(to), 300U);
}

TEST_F(ChainTest, OutboxSurvivesAnvilStoppingAndStarting) {
  const PrivateKey op = deployer();
  mint(op.address(), 1000);
  const Address to = PrivateKey::generate().address();
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  ASSERT_TRUE(outbox.enqueue("before", "transfer", deployment_.token, transfer_call(to, 1)));
  drain(outbox);

  // Stop the chain (it writes its state), queue writes, try to send them.
  const int port = anvil_.port;
  anvil_.process->stop(SIGTERM);
  ASSERT_FALSE(anvil_.process->running());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(outbox.enqueue("while-down-" + std::to_string(i), "transfer", deployment_.token, transfer_call(to, 10)));
  }
  auto down = outbox.poll_once();
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ErrorCode::kUnavailable) << down.error().message;
  auto waiting = outbox.find("while-down-0");
  ASSERT_TRUE(waiting && *waiting);
  EXPECT_EQ((*waiting)->state, WriteState::kQueued);

  anvil_ = start_anvil(port, dir_ + "/anvil-state.json");
  ASSERT_FALSE(anvil_.url.empty()) << "anvil did not restart on port " << port;
  drain(outbox);
  EXPECT_EQ(balance(to), 41U);
}

TEST_F(ChainTest, OutboxResumesAfterARestartWithSignedButUnsentWrites) {
  const PrivateKey op = deployer();
  mint(op.address(), 1000);
  const Address to = PrivateKey::generate().address();
  std::map<std::string, std::uint64_t> nonce_of;
  {
    // The process dies right after signing: the node never hears of these transactions.
    FaultyTransport faulty(*http_);
    faulty.set([](std::string_view body, eth::RpcTransport&) -> std::optional<Result<std::string>> {
      if (body.find("eth_sendRawTransaction") != std::string_view::npos) {
        return Result<std::string>(fail(ErrorCode::kUnavailable, "injected: crash before broadcast"));
      }
      return std::nullopt;
    });
    Outbox outbox(*db_, faulty, op, fast_options(), clock_);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(outbox.enqueue("r" + std::to_string(i), "transfer", deployment_.token,
                                                           transfer_call(to, 5)));
    EXPECT_FALSE(outbox.poll_once());
    auto first = outbox.find("r0");
    ASSERT_TRUE(first && *first && (*first)->nonce && !(*first)->raw_tx.empty());
    nonce_of["r0"] = *(*first)->nonce;
  }
  db_.reset();
  db_ = open_db(dir_ + "/chain.db");
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  drain(outbox);
  EXPECT_EQ(balance(to), 15U);
  auto r0 = outbox.find("r0");
  ASSERT_TRUE(r0 && *r0);
  EXPECT_EQ((*r0)->nonce, nonce_of["r0"]) << "the stored signed transaction is the one that landed";
}

TEST_F(ChainTest, OutboxSignsAgainOnlyWhenAnotherTransactionTookItsNonce) {
  const PrivateKey op = deployer();
  mint(op.address(), 1000);
  const Address to = PrivateKey::generate().address();
  {
    // Signed, then the process dies before broadcasting.
    FaultyTransport faulty(*http_);
    faulty.set([](std::string_view body, eth::RpcTransport&) -> std::optional<Result<std::string>> {
      if (body.find("eth_sendRawTransaction") != std::string_view::npos) {
        return Result<std::string>(fail(ErrorCode::kUnavailable, "injected: crash before broadcast"));
      }
      return std::nullopt;
    });
    Outbox outbox(*db_, faulty, op, fast_options(), clock_);
    ASSERT_TRUE(outbox.enqueue("taken", "transfer", deployment_.token, transfer_call(to, 9)));
    EXPECT_FALSE(outbox.poll_once());
  }
  // Meanwhile someone uses the operator key: our signed nonce is gone.
  mint(PrivateKey::generate().address(), 1);
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  drain(outbox);
  auto e = outbox.find("taken").value();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->state, WriteState::kConfirmed) << e->error;
  EXPECT_EQ(e->previous_hashes.size(), 1U) << "signed once more, after checking";
  EXPECT_EQ(balance(to), 9U);
}

TEST_F(ChainTest, OutboxRefusesAWrongChainAndSendsNothing) {
  const PrivateKey op = deployer();
  Outbox outbox(*db_, *http_, op, fast_options(kAnvilChainId + 1), clock_);
  ASSERT_TRUE(outbox.enqueue("x", "transfer", deployment_.token, transfer_call(op.address(), 0)));
  auto before = rpc_->get_transaction_count(op.address());
  auto r = outbox.poll_once();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("chain id 31337"), std::string::npos) << r.error().message;
  EXPECT_EQ(rpc_->get_transaction_count(op.address()).value(), before.value());
  EXPECT_EQ(outbox.find("x").value()->state, WriteState::kQueued);
}

TEST_F(ChainTest, OutboxWaitsForAnUnfundedOperatorAndThenLands) {
  const PrivateKey op = PrivateKey::generate();  // no ETH for gas
  const Address to = PrivateKey::generate().address();
  mint(op.address(), 50);
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  ASSERT_TRUE(outbox.enqueue("u", "transfer", deployment_.token, transfer_call(to, 50)));
  for (int i = 0; i < 3; ++i) (void)outbox.poll_once();
  auto waiting = outbox.find("u");
  ASSERT_TRUE(waiting && *waiting);
  EXPECT_EQ((*waiting)->state, WriteState::kQueued);
  EXPECT_GE((*waiting)->attempts, 1);
  EXPECT_NE((*waiting)->error.find("funds"), std::string::npos) << (*waiting)->error;

  ASSERT_TRUE(rpc_->request("anvil_setBalance", json::array{op.address().to_lower_hex(), "0xde0b6b3a7640000"}));
  drain(outbox);
  EXPECT_EQ(balance(to), 50U);
}

TEST_F(ChainTest, OutboxFailsAWriteThatRevertsAndGoesOn) {
  const PrivateKey op = deployer();
  mint(op.address(), 10);
  const Address to = PrivateKey::generate().address();
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  // Settling a record nobody deposited into reverts (NoRecord).
  auto settle = settle_calldata(Hash32{0x11}, to, to, 1, 0, 0);
  ASSERT_TRUE(settle);
  ASSERT_TRUE(outbox.enqueue("bad-settle", "settle", deployment_.escrow, *settle));
  ASSERT_TRUE(outbox.enqueue("good", "transfer", deployment_.token, transfer_call(to, 10)));
  drain(outbox);
  auto bad = outbox.find("bad-settle").value();
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->state, WriteState::kFailed);
  EXPECT_NE(bad->error.find("revert"), std::string::npos) << bad->error;
  EXPECT_EQ(outbox.find("good").value()->state, WriteState::kConfirmed);
  EXPECT_EQ(balance(to), 10U);
}

TEST_F(ChainTest, OutboxSurvivesMalformedNodeAnswers) {
  const PrivateKey op = deployer();
  mint(op.address(), 10);
  const Address to = PrivateKey::generate().address();
  FaultyTransport faulty(*http_);
  int garbage = 0;
  faulty.set([&](std::string_view, eth::RpcTransport&) -> std::optional<Result<std::string>> {
    if (garbage++ < 6) return Result<std::string>(std::string(R"({"jsonrpc":"2.0","id":1,"result":{"x":[)"));
    return std::nullopt;
  });
  Outbox outbox(*db_, faulty, op, fast_options(), clock_);
  ASSERT_TRUE(outbox.enqueue("g", "transfer", deployment_.token, transfer_call(to, 10)));
  auto r = outbox.poll_once();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  drain(outbox);
  EXPECT_EQ(balance(to), 10U);
}

TEST_F(ChainTest, OutboxWorkerThreadFinishesWrites) {
  const PrivateKey op = deployer();
  mint(op.address(), 10);
  const Address to = PrivateKey::generate().address();
  Outbox outbox(*db_, *http_, op, fast_options(), clock_);
  std::atomic<int> confirmed{0};
  outbox.on_change([&](const OutboxEntry& e) {
    if (e.state == WriteState::kConfirmed) ++confirmed;
  });
  outbox.start();
  ASSERT_TRUE(outbox.enqueue("t1", "transfer", deployment_.token, transfer_call(to, 4)));
  ASSERT_TRUE(outbox.enqueue("t2", "transfer", deployment_.token, transfer_call(to, 6)));
  for (int i = 0; i < 500 && confirmed < 2; ++i) std::this_thread::sleep_for(milliseconds{10});
  outbox.stop();
  EXPECT_EQ(confirmed.load(), 2);
  EXPECT_EQ(balance(to), 10U);
}

// --- indexer ------------------------------------------------------------------------------

// Keeps the Transfer amounts to one address, in a table, as a real handler would.
class TransferSum final : public LogHandler {
 public:
  TransferSum(store::Database& db, Address to) : db_(db), to_(to) {
    (void)db_.execute("CREATE TABLE IF NOT EXISTS received (block INTEGER, amount INTEGER)");
  }
  Result<void> apply(const eth::Log& log) override {
    if (log.topics.size() != 3 || log.topics[0] != eth::event_topic0("Transfer(address,address,uint256)")) return {};
    Hash32 want{};
    std::copy(to_.bytes().begin(), to_.bytes().end(), want.begin() + 12);
    if (log.topics[2] != want) return {};
    auto amount = eth::Uint256::from_be_bytes(log.data);
    if (!amount) return std::unexpected(amount.error());
    auto r = db_.execute("INSERT INTO received (block, amount) VALUES (?, ?)",
                         {static_cast<std::int64_t>(*log.block_number), static_cast<std::int64_t>(amount->low_u64())});
    if (!r) return std::unexpected(r.error());
    return {};
  }
  Result<void> rewind(std::uint64_t first_block) override {
    ++rewinds;
    auto r = db_.execute("DELETE FROM received WHERE block >= ?", {static_cast<std::int64_t>(first_block)});
    if (!r) return std::unexpected(r.error());
    return {};
  }
  std::int64_t total() {
    auto rows = db_.query("SELECT COALESCE(SUM(amount), 0) FROM received");
    return rows && !rows->empty() ? rows->front().integer(0) : -1;
  }
  int rewinds = 0;

 private:
  store::Database& db_;
  Address to_;
};

TEST_F(ChainTest, IndexerFollowsLogsAcrossRestartsAndReorgs) {
  const Address to = PrivateKey::generate().address();
  TransferSum sum(*db_, to);
  IndexerOptions options;
  options.addresses = {deployment_.token};
  options.start_block = deployment_.deployed_block;
  options.max_range = 3;  // several rounds to catch up
  auto catch_up = [&](Indexer& indexer) {
    const auto head = rpc_->block_number().value();
    for (int i = 0; i < 100; ++i) {
      auto next = indexer.poll_once();
      ASSERT_TRUE(next) << next.error().message;
      if (*next > head) return;
    }
    FAIL() << "indexer did not catch up";
  };

  mint(to, 5);
  mint(to, 6);
  {
    Indexer indexer(*db_, *http_, options, &sum);
    catch_up(indexer);
    EXPECT_EQ(sum.total(), 11);
  }
  // A restart: the cursor is in the database, nothing is applied twice.
  mint(to, 100);
  Indexer indexer(*db_, *http_, options, &sum);
  catch_up(indexer);
  EXPECT_EQ(sum.total(), 111);
  catch_up(indexer);
  EXPECT_EQ(sum.total(), 111);

  // Reorganization: take a snapshot, mint twice, index, roll back, mint something else.
  auto snapshot = rpc_->request("evm_snapshot");
  ASSERT_TRUE(snapshot && snapshot->is_string());
  mint(to, 1000);
  mint(to, 2000);
  catch_up(indexer);
  EXPECT_EQ(sum.total(), 3111);
  ASSERT_TRUE(rpc_->request("evm_revert", json::array{snapshot->as_string()}));
  nonces_->resync(deployer().address());
  mint(to, 7);
  // While the new chain is shorter than what was read, the indexer waits for it.
  auto waiting = indexer.poll_once();
  ASSERT_FALSE(waiting);
  EXPECT_EQ(waiting.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(sum.total(), 3111) << "nothing is undone before the node shows a different chain";
  ASSERT_TRUE(rpc_->request("anvil_mine", json::array{"0x3"}));
  catch_up(indexer);
  EXPECT_EQ(sum.total(), 118);
  EXPECT_GE(indexer.reorgs(), 1U);
  EXPECT_GE(sum.rewinds, 1);
  // The stored logs are those of the chain as it is now.
  auto rows = db_->query("SELECT COUNT(*) FROM chain_logs");
  ASSERT_TRUE(rows);
  auto logs = rpc_->get_logs(eth::LogFilter{deployment_.token, {}, eth::BlockId::number(deployment_.deployed_block),
                                            eth::BlockId::latest()});
  ASSERT_TRUE(logs);
  EXPECT_EQ(static_cast<std::size_t>(rows->front().integer(0)), logs->size());
}

TEST_F(ChainTest, IndexerStaysBehindByTheConfirmationDepth) {
  const Address to = PrivateKey::generate().address();
  TransferSum sum(*db_, to);
  IndexerOptions options;
  options.addresses = {deployment_.token};
  options.start_block = deployment_.deployed_block;
  options.confirmations = 2;
  Indexer indexer(*db_, *http_, options, &sum);
  mint(to, 9);
  const auto head = rpc_->block_number().value();
  auto next = indexer.poll_once();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, head - 1);
  EXPECT_EQ(sum.total(), 0);
  ASSERT_TRUE(rpc_->request("anvil_mine", json::array{"0x2"}));
  ASSERT_TRUE(indexer.poll_once());
  EXPECT_EQ(sum.total(), 9);
}

TEST_F(ChainTest, IndexerReportsAnUnreachableNodeAndKeepsItsCursor) {
  IndexerOptions options;
  options.addresses = {deployment_.token};
  options.start_block = deployment_.deployed_block;
  Indexer indexer(*db_, *http_, options);
  auto next = indexer.poll_once();
  ASSERT_TRUE(next);
  anvil_.process->stop(SIGKILL);
  ASSERT_FALSE(anvil_.process->running());
  auto r = indexer.poll_once();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(indexer.next_block().value(), *next);
}

// --- the lease payment path ----------------------------------------------------------------

TEST_F(ChainTest, LeasePaymentIsDepositedIndexedAndSettledThroughTheOutbox) {
  const PrivateKey renter = PrivateKey::generate();
  const Address provider = PrivateKey::generate().address();
  ASSERT_TRUE(rpc_->request("anvil_setBalance", json::array{renter.address().to_lower_hex(), "0xde0b6b3a7640000"}));
  mint(renter.address(), 10000);

  const auto lock = std::chrono::sys_seconds{std::chrono::seconds{4102444800}};
  LeasePayment payment{kAnvilChainId, deployment_.escrow, deployment_.token, escrow_lease_id("lease-42"), 6000, lock};
  // The payment round-trips through JSON as the API hands it out.
  auto parsed = payment_from_json(json::value(to_json(payment)));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->lease_id, payment.lease_id);
  EXPECT_EQ(parsed->amount, payment.amount);
  EXPECT_EQ(parsed->locked_until, lock);
  for (std::string_view bad : {R"({})", R"({"chain_id":1,"escrow":"0x1","token":"0x2","lease_id":"0x","amount":"1"})"}) {
    EXPECT_FALSE(payment_from_json(json::parse(bad))) << bad;
  }
  json::object zero = to_json(payment);
  zero["amount"] = "0";
  EXPECT_FALSE(payment_from_json(json::value(zero)));
  json::object unlocked = to_json(payment);
  unlocked.erase("locked_until");
  EXPECT_FALSE(payment_from_json(json::value(unlocked)));

  // Wrong chain, not enough tokens: clear errors, nothing sent.
  LeasePayment wrong_chain = payment;
  wrong_chain.chain_id = 1;
  eth::NonceManager renter_nonces(*rpc_);
  EXPECT_EQ(pay_lease(*rpc_, renter, renter_nonces, wrong_chain).error().code, ErrorCode::kInvalidArgument);
  LeasePayment too_much = payment;
  too_much.amount = 20000;
  auto poor = pay_lease(*rpc_, renter, renter_nonces, too_much);
  ASSERT_FALSE(poor);
  EXPECT_NE(poor.error().message.find("not enough tokens"), std::string::npos) << poor.error().message;

  // A stranger front-runs the renter under the same lease id: its deposit is a record of its
  // own and neither blocks nor funds the renter's.
  const PrivateKey stranger = deployer();
  mint(stranger.address(), 6000);
  auto front = pay_lease(*rpc_, stranger, *nonces_, payment, milliseconds{10000}, milliseconds{20});
  ASSERT_TRUE(front) << front.error().message;
  EXPECT_EQ(escrow_record(*rpc_, deployment_.escrow, payment.lease_id, renter.address())->state,
            EscrowRecord::State::kNone);

  // The renter pays in two parts (an earlier, smaller deposit is topped up to the amount).
  LeasePayment part = payment;
  part.amount = 2500;
  auto first = pay_lease(*rpc_, renter, renter_nonces, part, milliseconds{10000}, milliseconds{20});
  ASSERT_TRUE(first) << first.error().message;
  auto paid = pay_lease(*rpc_, renter, renter_nonces, payment, milliseconds{10000}, milliseconds{20});
  ASSERT_TRUE(paid) << paid.error().message;
  EXPECT_TRUE(paid->deposit_tx);
  auto record = escrow_record(*rpc_, deployment_.escrow, payment.lease_id, renter.address());
  ASSERT_TRUE(record);
  EXPECT_EQ(record->amount, Uint256(6000));
  EXPECT_EQ(record->state, EscrowRecord::State::kOpen);
  EXPECT_EQ(record->locked_until, lock);
  // Paying again is a no-op.
  auto again = pay_lease(*rpc_, renter, renter_nonces, payment, milliseconds{10000}, milliseconds{20});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->deposit_tx);

  // The indexer sees both records apart.
  EscrowLedger ledger(*db_, deployment_.escrow);
  IndexerOptions options;
  options.addresses = {deployment_.escrow};
  options.start_block = deployment_.deployed_block;
  Indexer indexer(*db_, *http_, options, &ledger);
  ASSERT_TRUE(indexer.poll_once());
  auto funds = ledger.funds(payment.lease_id, renter.address());
  ASSERT_TRUE(funds && *funds);
  EXPECT_EQ((*funds)->renter, renter.address());
  EXPECT_EQ((*funds)->deposited, Uint256(6000));  // deposit + top-up
  EXPECT_EQ((*funds)->locked_until, lock);
  EXPECT_EQ((*funds)->events.size(), 2U);
  EXPECT_FALSE((*funds)->settled);
  EXPECT_EQ(ledger.funds(payment.lease_id, stranger.address()).value().value().deposited, Uint256(6000));
  EXPECT_EQ(ledger.depositors(payment.lease_id).value(), (std::vector<Address>{stranger.address(), renter.address()}));
  EXPECT_FALSE(ledger.funds(escrow_lease_id("nobody"), renter.address())->has_value());

  // Settlement of the renter's record through the outbox: 4500 delivered, 1500 back, 3 points.
  Outbox outbox(*db_, *http_, deployer(), fast_options(), clock_);
  auto settle = settle_calldata(payment.lease_id, renter.address(), provider, 4500, 1500, 3);
  ASSERT_TRUE(settle);
  ASSERT_TRUE(outbox.enqueue("settle:lease-42", "settle", deployment_.escrow, *settle));
  drain(outbox);
  EXPECT_EQ(outbox.find("settle:lease-42").value()->state, WriteState::kConfirmed);
  ASSERT_TRUE(indexer.poll_once());
  funds = ledger.funds(payment.lease_id, renter.address());
  ASSERT_TRUE(funds && *funds);
  EXPECT_TRUE((*funds)->settled);
  EXPECT_EQ((*funds)->paid_to_provider, Uint256(4500));
  EXPECT_EQ((*funds)->refunded, Uint256(1500));
  EXPECT_EQ(balance(provider), 4500U);
  EXPECT_EQ(balance(renter.address()), 4000U + 1500U);
  EXPECT_EQ(call_view(*rpc_, deployment_.points, "balanceOf(address)", {AbiValue::address(renter.address())},
                      "(uint256)")
                .value()
                .at(0),
            AbiValue::uint(3));
  EXPECT_FALSE(ledger.funds(payment.lease_id, stranger.address()).value().value().settled);
  // A second settlement of the same record fails in the outbox (it would revert) and moves nothing.
  ASSERT_TRUE(outbox.enqueue("settle:lease-42:again", "settle", deployment_.escrow, *settle));
  drain(outbox);
  EXPECT_EQ(outbox.find("settle:lease-42:again").value()->state, WriteState::kFailed);
  EXPECT_EQ(balance(provider), 4500U);
}

// Tests judge chain calls by cast's exit status: the npm wrapper in node_modules/.bin exits 0
// when the call fails, so node_tool must hand out Foundry's native binary.
TEST(Cast, AFailingCallIsSeenInTheExitStatus) {
  const std::string cast_path = kaisar::testing::node_tool("cast");
  EXPECT_NE(cast_path.find("@foundry-rs/cast-"), std::string::npos) << cast_path;
  auto r = kaisar::testing::run_process(
      {cast_path, "call", "--rpc-url", "http://127.0.0.1:1", "0x0000000000000000000000000000000000000001", "x()"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
}

// --- the provider registry -------------------------------------------------------------------

TEST_F(ChainTest, RegistryBindsANodeOnlyWithItsKeysSignatureForThisChainAndContract) {
  const PrivateKey owner = PrivateKey::generate();
  const PrivateKey node = PrivateKey::generate();
  ASSERT_TRUE(rpc_->request("anvil_setBalance", json::array{owner.address().to_lower_hex(), "0xde0b6b3a7640000"}));
  const NodeBinding binding{kAnvilChainId, deployment_.registry, node.address(), owner.address(), 0};
  auto digest = binding_digest(binding);
  ASSERT_TRUE(digest) << digest.error().message;
  // Our EIP-712 digest is the contract's, and cast signs the same typed data to the same bytes.
  EXPECT_EQ(call_view(*rpc_, deployment_.registry, "bindingDigest(address,address)",
                      {AbiValue::address(node.address()), AbiValue::address(owner.address())}, "(bytes32)")
                .value()
                .at(0),
            AbiValue::bytes(Bytes(digest->begin(), digest->end())));
  EXPECT_EQ(cast({"wallet", "sign", "--private-key", to_hex(node.bytes()), "--data", json::serialize(typed_data(binding))}),
            to_hex(node.sign_digest(*digest).rsv));

  eth::NonceManager owner_nonces(*rpc_);
  auto send_register = [&](const Bytes& signature) {
    return transact(*rpc_, owner, owner_nonces, deployment_.registry, "register(address,bytes)",
                    {AbiValue::address(node.address()), AbiValue::bytes(signature)}, milliseconds{10000}, milliseconds{20});
  };
  auto signed_by = [&](const PrivateKey& key, const NodeBinding& b) {
    const auto sig = key.sign_digest(binding_digest(b).value());
    return Bytes(sig.rsv.begin(), sig.rsv.end());
  };
  auto owner_of = [&] {
    return std::get<Address>(
        call_view(*rpc_, deployment_.registry, "ownerOf(address)", {AbiValue::address(node.address())}, "(address)")
            .value()
            .at(0)
            .value);
  };
  NodeBinding other_chain = binding;
  other_chain.chain_id = kAnvilChainId + 1;
  NodeBinding other_registry = binding;
  other_registry.registry = deployment_.escrow;
  EXPECT_EQ(send_register({}).error().code, ErrorCode::kConflict);                          // no signature
  EXPECT_EQ(send_register(signed_by(owner, binding)).error().code, ErrorCode::kConflict);   // not the node's
  EXPECT_EQ(send_register(signed_by(node, other_chain)).error().code, ErrorCode::kConflict);
  EXPECT_EQ(send_register(signed_by(node, other_registry)).error().code, ErrorCode::kConflict);
  EXPECT_EQ(owner_of(), Address{});

  auto bound = register_node(*rpc_, owner, owner_nonces, deployment_.registry, node);
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_EQ(owner_of(), owner.address());
  // Someone else with a node signature for itself still cannot take the bound node.
  const PrivateKey thief = deployer();
  EXPECT_EQ(register_node(*rpc_, thief, *nonces_, deployment_.registry, node).error().code, ErrorCode::kConflict);
  EXPECT_EQ(owner_of(), owner.address());
}

TEST(EscrowEvents, HostileLogsAreRejectedOrIgnored) {
  eth::Log log;
  log.address = PrivateKey::generate().address();
  EXPECT_FALSE(decode_escrow_event(log).value().has_value());  // no topics: not ours
  log.topics = {eth::event_topic0("Deposited(bytes32,address,uint256,uint256)")};
  EXPECT_FALSE(decode_escrow_event(log));  // too few topics
  Hash32 renter{};
  renter[0] = 1;  // high bits set in an address topic
  log.topics = {eth::event_topic0("Deposited(bytes32,address,uint256,uint256)"), Hash32{}, renter};
  log.data = Bytes(64, 0);
  EXPECT_FALSE(decode_escrow_event(log));
  renter[0] = 0;
  log.topics[2] = renter;
  log.data = Bytes(63, 0);  // short data
  EXPECT_FALSE(decode_escrow_event(log));
  log.data = Bytes(64, 0xff);  // a lock beyond uint64 clamps instead of wrapping
  auto ok = decode_escrow_event(log);
  ASSERT_TRUE(ok && *ok);
  EXPECT_EQ((*ok)->kind, EscrowEvent::Kind::kDeposited);
  EXPECT_GT((*ok)->locked_until.time_since_epoch().count(), 0);
}

}  // namespace
}  // namespace kaisar::chain
