#include <gtest/gtest.h>

#include <thread>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crypto/keccak.hpp"
#include "crypto/random.hpp"
#include "eth/rpc.hpp"
#include "eth/transaction.hpp"
#include "eth/wallet_signer.hpp"
#include "net/client.hpp"
#include "process.hpp"

namespace kaisar::eth {
namespace {

namespace json = boost::json;
using crypto::Address;
using crypto::PrivateKey;
using std::chrono::milliseconds;

constexpr std::string_view kFundedKey = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
constexpr std::string_view kFundedAddress = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
constexpr milliseconds kReceiptTimeout{10000};
constexpr milliseconds kPoll{20};

// JSON-RPC over HTTP POST with the project's blocking client.
class HttpTransport final : public RpcTransport {
 public:
  explicit HttpTransport(std::string url) : url_(std::move(url)) {}

  Result<std::string> post(std::string_view json_body) override {
    auto response = net::http_request("POST", url_, json_body, {{"content-type", "application/json"}},
                                      std::chrono::seconds{10});
    if (!response) return std::unexpected(response.error());
    if (response->status != 200) {
      return fail(ErrorCode::kUnavailable,
                  "Ethereum node answered HTTP " + std::to_string(response->status) + ": " + response->body);
    }
    return std::move(response->body);
  }

 private:
  std::string url_;
};

// Forwards to the real transport unless told to break the next exchange.
class FaultyTransport final : public RpcTransport {
 public:
  using Fault = std::function<Result<std::string>(std::string_view request, RpcTransport& inner)>;

  explicit FaultyTransport(RpcTransport& inner) : inner_(inner) {}

  void fail_next(Error error) {
    fault_ = [error](std::string_view, RpcTransport&) -> Result<std::string> { return std::unexpected(error); };
  }
  // The next exchange answers make(request) without reaching the node.
  void respond_next(std::function<std::string(const json::value& request)> make) {
    fault_ = [make = std::move(make)](std::string_view request, RpcTransport&) -> Result<std::string> {
      return make(json::parse(request));
    };
  }
  // The next exchange reaches the node; `mutate` rewrites its answer.
  void mutate_next(std::function<std::string(std::string response)> mutate) {
    fault_ = [mutate = std::move(mutate)](std::string_view request, RpcTransport& inner) -> Result<std::string> {
      auto real = inner.post(request);
      if (!real) return real;
      return mutate(std::move(*real));
    };
  }

  Result<std::string> post(std::string_view json_body) override {
    if (fault_) {
      Fault fault = std::exchange(fault_, nullptr);
      return fault(json_body, inner_);
    }
    return inner_.post(json_body);
  }

 private:
  RpcTransport& inner_;
  Fault fault_;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Bytes hex(std::string_view text) {
  auto b = from_hex(text);
  EXPECT_TRUE(b) << text;
  return b ? *b : Bytes{};
}

Address random_address() { return PrivateKey::generate().address(); }

using kaisar::testing::Anvil;
using kaisar::testing::start_anvil;

// --- pure parsing ---------------------------------------------------------------------------

TEST(RpcParse, QuantitiesAreStrict) {
  EXPECT_EQ(parse_quantity("0x0").value(), Uint256(0));
  EXPECT_EQ(parse_quantity("0x7a69").value(), Uint256(31337));
  EXPECT_EQ(parse_quantity("0xFF").value(), Uint256(255));
  EXPECT_EQ(parse_quantity(std::string("0x") + std::string(64, 'f')).value(), ~Uint256(0));
  for (std::string_view bad : {"", "0x", "0x00", "0x01", "7a69", "0X1", "0xg", "0x 1", "-0x1", "0x1 "}) {
    EXPECT_FALSE(parse_quantity(bad)) << bad;
  }
  EXPECT_FALSE(parse_quantity(std::string("0x1") + std::string(64, '0')));
  EXPECT_FALSE(parse_quantity_u64("0x10000000000000000"));
  EXPECT_EQ(parse_quantity_u64("0xffffffffffffffff").value(), UINT64_MAX);

  EXPECT_EQ(parse_data("0x").value(), Bytes{});
  EXPECT_EQ(parse_data("0x00ff").value(), (Bytes{0x00, 0xff}));
  EXPECT_FALSE(parse_data("0x0"));
  EXPECT_FALSE(parse_data("00"));
  EXPECT_FALSE(parse_hash("0x" + std::string(62, '0')));
  EXPECT_TRUE(parse_hash("0x" + std::string(64, '0')));
}

TEST(RpcParse, HostileObjectsAreRejected) {
  EXPECT_FALSE(parse_receipt(json::parse(R"({"status":"0x1"})")));
  EXPECT_FALSE(parse_receipt(json::parse("[]")));
  EXPECT_FALSE(parse_log(json::parse(R"({"address":"0x00","topics":[],"data":"0x"})")));
  EXPECT_FALSE(parse_log(json::parse(
      R"({"address":"0x0000000000000000000000000000000000000001","topics":["0x1"],"data":"0x"})")));
  EXPECT_TRUE(parse_log(json::parse(
      R"({"address":"0x0000000000000000000000000000000000000001","topics":[],"data":"0x"})")));
  EXPECT_FALSE(parse_block(json::parse(R"({"number":"0x1","hash":7})")));
}

// --- against anvil ----------------------------------------------------------------------------

class RpcAnvilTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { anvil_ = new Anvil(start_anvil()); }
  static void TearDownTestSuite() {
    delete anvil_;
    anvil_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(anvil_->url.empty()) << "anvil did not start: " << anvil_->process->output();
    http_ = std::make_unique<HttpTransport>(anvil_->url);
    faulty_ = std::make_unique<FaultyTransport>(*http_);
    rpc_ = std::make_unique<RpcClient>(*faulty_);
  }

  static PrivateKey funded_key() { return PrivateKey::from_hex(kFundedKey).value(); }

  Receipt transfer(NonceManager& nonces, const Address& to, const Uint256& value) {
    auto hash = send_transaction(*rpc_, funded_key(), nonces, TxRequest{to, value, {}, std::nullopt});
    EXPECT_TRUE(hash) << hash.error().message;
    if (!hash) return {};
    auto receipt = rpc_->wait_for_receipt(*hash, kReceiptTimeout, kPoll);
    EXPECT_TRUE(receipt) << receipt.error().message;
    return receipt ? *receipt : Receipt{};
  }

  static Anvil* anvil_;
  std::unique_ptr<HttpTransport> http_;
  std::unique_ptr<FaultyTransport> faulty_;
  std::unique_ptr<RpcClient> rpc_;
};

Anvil* RpcAnvilTest::anvil_ = nullptr;

TEST_F(RpcAnvilTest, ChainIdBlocksAndFees) {
  EXPECT_EQ(rpc_->chain_id().value(), 31337U);
  const std::uint64_t head = rpc_->block_number().value();
  auto latest = rpc_->get_block(BlockId::latest());
  ASSERT_TRUE(latest) << latest.error().message;
  ASSERT_TRUE(*latest);
  EXPECT_EQ((*latest)->number, head);
  auto same = rpc_->get_block(BlockId::number(head)).value();
  ASSERT_TRUE(same);
  EXPECT_EQ(same->hash, (*latest)->hash);
  EXPECT_TRUE((*latest)->base_fee_per_gas);
  EXPECT_FALSE(rpc_->get_block(BlockId::number(1'000'000)).value());

  const Uint256 tip = rpc_->max_priority_fee().value();
  const FeeEstimate fees = rpc_->estimate_fees().value();
  EXPECT_EQ(fees.max_priority_fee_per_gas, tip);
  EXPECT_EQ(fees.max_fee_per_gas, *(*latest)->base_fee_per_gas * 2 + tip);
  EXPECT_FALSE(rpc_->gas_price().value().is_zero());
}

TEST_F(RpcAnvilTest, ValueTransferLandsAndCastSeesTheBalance) {
  NonceManager nonces(*rpc_);
  const Address recipient = random_address();
  const Uint256 value = Uint256::from_decimal("1234567890123456789").value();
  EXPECT_TRUE(rpc_->get_balance(recipient).value().is_zero());
  const std::uint64_t before_block = rpc_->block_number().value();

  const Receipt receipt = transfer(nonces, recipient, value);
  EXPECT_EQ(receipt.status, 1U);
  EXPECT_EQ(receipt.gas_used, 21000U);
  EXPECT_GT(receipt.block_number, before_block);
  EXPECT_FALSE(receipt.contract_address);
  EXPECT_TRUE(receipt.effective_gas_price);

  EXPECT_EQ(rpc_->get_balance(recipient).value(), value);
  const auto cast = kaisar::testing::run_process(
      {kaisar::testing::node_tool("cast"), "balance", "--rpc-url", anvil_->url, recipient.to_checksum()});
  ASSERT_EQ(cast.exit_code, 0) << cast.err;
  EXPECT_EQ(trim(cast.out), value.to_decimal());

  // The block that holds it links to its parent.
  auto block = rpc_->get_block(BlockId::number(receipt.block_number)).value();
  ASSERT_TRUE(block);
  EXPECT_EQ(block->hash, receipt.block_hash);
  auto parent = rpc_->get_block(BlockId::number(receipt.block_number - 1)).value();
  ASSERT_TRUE(parent);
  EXPECT_EQ(block->parent_hash, parent->hash);
}

TEST_F(RpcAnvilTest, BatchOfThreeCalls) {
  const Address funded = Address::parse(kFundedAddress).value();
  const std::vector<RpcCall> calls = {
      {"eth_chainId", {}},
      {"eth_getBalance", json::array{json::value(funded.to_lower_hex()), json::value("latest")}},
      {"eth_noSuchMethod", {}},
  };
  // Responses come back reversed; they must still be matched by id.
  faulty_->mutate_next([](std::string response) {
    json::value v = json::parse(response);
    std::reverse(v.as_array().begin(), v.as_array().end());
    return json::serialize(v);
  });
  auto results = rpc_->batch(calls);
  ASSERT_TRUE(results) << results.error().message;
  ASSERT_EQ(results->size(), 3U);
  ASSERT_TRUE((*results)[0]);
  EXPECT_EQ((*results)[0]->as_string(), "0x7a69");
  ASSERT_TRUE((*results)[1]) << (*results)[1].error().message;
  EXPECT_FALSE(parse_quantity((*results)[1]->as_string()).value().is_zero());
  ASSERT_FALSE((*results)[2]);
  EXPECT_EQ((*results)[2].error().code, ErrorCode::kNotFound) << (*results)[2].error().message;

  EXPECT_TRUE(rpc_->batch({}).value().empty());
}

// Init code that copies the runtime after it into memory and returns it.
Bytes creation_code(const Bytes& runtime) {
  EXPECT_LT(runtime.size(), 256U);
  const auto n = static_cast<std::uint8_t>(runtime.size());
  Bytes code = {0x60, n, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xf3};  // CODECOPY, RETURN
  code.insert(code.end(), runtime.begin(), runtime.end());
  return code;
}

TEST_F(RpcAnvilTest, DeployContractAndCallIt) {
  NonceManager nonces(*rpc_);
  // mstore(0, 42); return(0, 32)
  const Bytes runtime = hex("602a60005260206000f3");
  auto deployed = deploy_contract(*rpc_, funded_key(), nonces, creation_code(runtime), {}, kReceiptTimeout, kPoll);
  ASSERT_TRUE(deployed) << deployed.error().message;
  EXPECT_EQ(deployed->receipt.status, 1U);

  const auto code = kaisar::testing::run_process(
      {kaisar::testing::node_tool("cast"), "code", "--rpc-url", anvil_->url, deployed->address.to_checksum()});
  ASSERT_EQ(code.exit_code, 0) << code.err;
  EXPECT_EQ(trim(code.out), to_hex(runtime));

  auto out = rpc_->call(CallRequest{std::nullopt, deployed->address, {}, {}, std::nullopt});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 32U);
  EXPECT_EQ(Uint256::from_be_bytes(*out).value(), Uint256(42));
}

TEST_F(RpcAnvilTest, ContractLogsReachReceiptsAndGetLogs) {
  NonceManager nonces(*rpc_);
  const Hash32 topic = crypto::keccak256(std::string_view("Ping()"));
  // mstore(0, 42); log1(0, 32, topic); stop
  Bytes runtime = hex("602a6000527f");
  runtime.insert(runtime.end(), topic.begin(), topic.end());
  const Bytes tail = hex("60206000a100");
  runtime.insert(runtime.end(), tail.begin(), tail.end());
  auto deployed = deploy_contract(*rpc_, funded_key(), nonces, creation_code(runtime), {}, kReceiptTimeout, kPoll);
  ASSERT_TRUE(deployed) << deployed.error().message;

  auto hash = send_transaction(*rpc_, funded_key(), nonces, TxRequest{deployed->address, {}, {}, std::nullopt});
  ASSERT_TRUE(hash) << hash.error().message;
  auto receipt = rpc_->wait_for_receipt(*hash, kReceiptTimeout, kPoll);
  ASSERT_TRUE(receipt) << receipt.error().message;
  EXPECT_EQ(receipt->status, 1U);
  ASSERT_EQ(receipt->logs.size(), 1U);
  const Log& log = receipt->logs[0];
  EXPECT_EQ(log.address, deployed->address);
  ASSERT_EQ(log.topics.size(), 1U);
  EXPECT_EQ(log.topics[0], topic);
  EXPECT_EQ(Uint256::from_be_bytes(log.data).value(), Uint256(42));

  LogFilter filter;
  filter.address = deployed->address;
  filter.topics = {topic};
  filter.from_block = BlockId::number(receipt->block_number);
  auto logs = rpc_->get_logs(filter);
  ASSERT_TRUE(logs) << logs.error().message;
  ASSERT_EQ(logs->size(), 1U);
  EXPECT_EQ((*logs)[0].transaction_hash, *hash);
  EXPECT_EQ((*logs)[0].block_number, receipt->block_number);
  EXPECT_EQ((*logs)[0].data, log.data);

  filter.topics = {crypto::keccak256(std::string_view("Pong()"))};
  EXPECT_TRUE(rpc_->get_logs(filter).value().empty());
  filter.topics = {std::nullopt};
  EXPECT_EQ(rpc_->get_logs(filter).value().size(), 1U);
}

TEST_F(RpcAnvilTest, NonceManagerSendsConsecutiveTransfers) {
  NonceManager nonces(*rpc_);
  const PrivateKey key = funded_key();
  const std::uint64_t start = rpc_->get_transaction_count(key.address()).value();
  const Address recipient = random_address();
  std::vector<Hash32> hashes;
  for (int i = 0; i < 3; ++i) {
    auto hash = send_transaction(*rpc_, key, nonces, TxRequest{recipient, Uint256(1000), {}, 21000});
    ASSERT_TRUE(hash) << hash.error().message;
    hashes.push_back(*hash);
  }
  for (const Hash32& hash : hashes) {
    auto receipt = rpc_->wait_for_receipt(hash, kReceiptTimeout, kPoll);
    ASSERT_TRUE(receipt) << receipt.error().message;
    EXPECT_EQ(receipt->status, 1U);
  }
  EXPECT_EQ(rpc_->get_transaction_count(key.address()).value(), start + 3);
  EXPECT_EQ(rpc_->get_balance(recipient).value(), Uint256(3000));

  // Out of step with the chain (another sender used the key): resync picks up the count.
  EXPECT_EQ(nonces.next(key.address()).value(), start + 3);
  nonces.resync(key.address());
  EXPECT_EQ(nonces.next(key.address()).value(), start + 3);
}

TEST_F(RpcAnvilTest, WrongChainIdIsRejected) {
  const PrivateKey key = funded_key();
  const FeeEstimate fees = rpc_->estimate_fees().value();
  Eip1559Transaction tx;
  tx.chain_id = 1;
  tx.nonce = rpc_->get_transaction_count(key.address()).value();
  tx.max_fee_per_gas = fees.max_fee_per_gas;
  tx.max_priority_fee_per_gas = fees.max_priority_fee_per_gas;
  tx.gas_limit = 21000;
  tx.to = random_address();
  tx.value = 1;
  auto sent = rpc_->send_raw_transaction(sign_transaction(tx, key).raw);
  ASSERT_FALSE(sent);
  EXPECT_NE(sent.error().message.find("chain"), std::string::npos) << sent.error().message;
  EXPECT_NE(sent.error().message.find("eth_sendRawTransaction"), std::string::npos) << sent.error().message;
}

TEST_F(RpcAnvilTest, UnfundedKeyFailsWithInsufficientFunds) {
  NonceManager nonces(*rpc_);
  const PrivateKey poor = PrivateKey::generate();
  const TxRequest request{Address::parse(kFundedAddress).value(), Uint256(1'000'000'000), {}, 21000};
  auto sent = send_transaction(*rpc_, poor, nonces, request);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, ErrorCode::kConflict) << sent.error().message;
  EXPECT_NE(sent.error().message.find("nsufficient funds"), std::string::npos) << sent.error().message;

  // Without a gas limit the estimate already fails, with the node's reason.
  auto estimated = send_transaction(*rpc_, poor, nonces, TxRequest{request.to, request.value, {}, std::nullopt});
  ASSERT_FALSE(estimated);
  EXPECT_NE(estimated.error().message.find("nsufficient funds"), std::string::npos) << estimated.error().message;
}

TEST_F(RpcAnvilTest, WaitForUnknownReceiptTimesOut) {
  Hash32 unknown{};
  crypto::random_bytes(unknown);
  const auto start = std::chrono::steady_clock::now();
  auto receipt = rpc_->wait_for_receipt(unknown, milliseconds{300}, milliseconds{50});
  ASSERT_FALSE(receipt);
  EXPECT_EQ(receipt.error().code, ErrorCode::kTimeout) << receipt.error().message;
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds{300});
  EXPECT_FALSE(rpc_->get_transaction_receipt(unknown).value());
}

std::uint64_t id_of(const json::value& request) { return request.at("id").to_number<std::uint64_t>(); }

TEST_F(RpcAnvilTest, MalformedResponsesGiveClearErrors) {
  struct Case {
    std::string name;
    std::function<std::string(const json::value&)> respond;
    ErrorCode code;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"not json", [](const json::value&) { return std::string("<html>502 Bad Gateway</html>"); },
       ErrorCode::kUnavailable, "not JSON"},
      {"wrong id",
       [](const json::value& r) {
         return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id_of(r) + 1}, {"result", "0x7a69"}});
       },
       ErrorCode::kUnavailable, "does not match"},
      {"error object",
       [](const json::value& r) {
         return json::serialize(json::object{
             {"jsonrpc", "2.0"}, {"id", id_of(r)}, {"error", json::object{{"code", -32000}, {"message", "nonce too low"}}}});
       },
       ErrorCode::kConflict, "nonce too low"},
      {"rate limited",
       [](const json::value& r) {
         return json::serialize(json::object{
             {"jsonrpc", "2.0"}, {"id", id_of(r)}, {"error", json::object{{"code", -32005}, {"message", "slow down"}}}});
       },
       ErrorCode::kUnavailable, "slow down"},
      {"missing result",
       [](const json::value& r) { return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id_of(r)}}); },
       ErrorCode::kUnavailable, "neither result nor error"},
      {"result and error",
       [](const json::value& r) {
         return json::serialize(json::object{
             {"jsonrpc", "2.0"}, {"id", id_of(r)}, {"result", "0x1"}, {"error", json::object{{"code", 1}}}});
       },
       ErrorCode::kUnavailable, "both"},
      {"padded quantity",
       [](const json::value& r) {
         return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id_of(r)}, {"result", "0x07a69"}});
       },
       ErrorCode::kUnavailable, "leading zeros"},
      {"number instead of string",
       [](const json::value& r) {
         return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id_of(r)}, {"result", 31337}});
       },
       ErrorCode::kUnavailable, "not a string"},
      {"no version",
       [](const json::value& r) { return json::serialize(json::object{{"id", id_of(r)}, {"result", "0x1"}}); },
       ErrorCode::kUnavailable, "jsonrpc"},
      {"array for single call", [](const json::value&) { return std::string("[]"); }, ErrorCode::kUnavailable,
       "not a JSON object"},
      {"deep nesting", [](const json::value&) { return std::string(100000, '['); }, ErrorCode::kUnavailable,
       "not JSON"},
  };
  for (const Case& c : cases) {
    faulty_->respond_next(c.respond);
    auto chain = rpc_->chain_id();
    ASSERT_FALSE(chain) << c.name;
    EXPECT_EQ(chain.error().code, c.code) << c.name << ": " << chain.error().message;
    EXPECT_NE(chain.error().message.find(c.text), std::string::npos) << c.name << ": " << chain.error().message;
  }

  // Transport errors pass through unchanged.
  faulty_->fail_next(Error{ErrorCode::kTimeout, "injected timeout"});
  auto timed_out = rpc_->block_number();
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, ErrorCode::kTimeout);

  // A receipt whose fields are not what they claim to be.
  faulty_->respond_next([](const json::value& r) {
    return json::serialize(json::object{
        {"jsonrpc", "2.0"}, {"id", id_of(r)}, {"result", json::object{{"transactionHash", "0x12"}, {"status", "0x1"}}}});
  });
  auto receipt = rpc_->get_transaction_receipt(Hash32{});
  ASSERT_FALSE(receipt);
  EXPECT_EQ(receipt.error().code, ErrorCode::kUnavailable) << receipt.error().message;

  // Batch answers: one without an id, one duplicated, one short.
  const std::vector<RpcCall> calls = {{"eth_chainId", {}}, {"eth_blockNumber", {}}, {"eth_gasPrice", {}}};
  faulty_->mutate_next([](std::string response) {
    json::value v = json::parse(response);
    v.as_array()[1].as_object().erase("id");
    return json::serialize(v);
  });
  auto no_id = rpc_->batch(calls);
  ASSERT_FALSE(no_id);
  EXPECT_EQ(no_id.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(no_id.error().message.find("missing or unknown id"), std::string::npos) << no_id.error().message;

  faulty_->mutate_next([](std::string response) {
    json::value v = json::parse(response);
    v.as_array()[2] = v.as_array()[0];
    return json::serialize(v);
  });
  auto duplicate = rpc_->batch(calls);
  ASSERT_FALSE(duplicate);
  EXPECT_NE(duplicate.error().message.find("two responses"), std::string::npos) << duplicate.error().message;

  faulty_->mutate_next([](std::string response) {
    json::value v = json::parse(response);
    v.as_array().pop_back();
    return json::serialize(v);
  });
  auto short_batch = rpc_->batch(calls);
  ASSERT_FALSE(short_batch);
  EXPECT_NE(short_batch.error().message.find("2 responses for 3"), std::string::npos) << short_batch.error().message;

  // Oversized answers are refused before parsing.
  RpcClient small(*faulty_, 64);
  auto block = small.get_block(BlockId::latest());
  ASSERT_FALSE(block);
  EXPECT_EQ(block.error().code, ErrorCode::kPayloadTooLarge) << block.error().message;

  // And the client is still usable after all of that.
  EXPECT_EQ(rpc_->chain_id().value(), 31337U);
}

TEST(RpcAnvilStopped, TransportReportsUnavailable) {
  Anvil anvil = start_anvil();
  ASSERT_FALSE(anvil.url.empty()) << anvil.process->output();
  HttpTransport http(anvil.url);
  RpcClient rpc(http);
  // Up first (a loaded CI machine can keep a fresh anvil from answering the first call in time).
  auto up = rpc.chain_id();
  for (int i = 0; i < 20 && !up; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
    up = rpc.chain_id();
  }
  ASSERT_TRUE(up) << up.error().message;
  ASSERT_EQ(*up, 31337U);
  anvil.process->stop(SIGTERM);
  auto chain = rpc.chain_id();
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().code, ErrorCode::kUnavailable) << chain.error().message;
}

}  // namespace
}  // namespace kaisar::eth
