#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "eth/uint256.hpp"

namespace kaisar::eth {

// Carries one JSON-RPC body to a node and returns the node's body. The HTTP implementation
// lives outside eth (eth does no I/O of its own); tests wrap it to inject faults.
class RpcTransport {
 public:
  virtual ~RpcTransport();
  // kUnavailable when the node cannot be reached, kTimeout when it does not answer in time.
  virtual Result<std::string> post(std::string_view json_body) = 0;
};

// Strict JSON-RPC quantities: "0x" + 1..64 hex digits, no leading zeros except "0x0".
Result<Uint256> parse_quantity(std::string_view text) noexcept;
Result<std::uint64_t> parse_quantity_u64(std::string_view text) noexcept;
// "0x" + an even number of hex digits.
Result<Bytes> parse_data(std::string_view text) noexcept;
Result<Hash32> parse_hash(std::string_view text) noexcept;

// Which block a query reads: a tag or a number.
class BlockId {
 public:
  static BlockId latest() { return BlockId("latest"); }
  static BlockId pending() { return BlockId("pending"); }
  static BlockId earliest() { return BlockId("earliest"); }
  static BlockId number(std::uint64_t n) { return BlockId(Uint256(n).to_hex()); }
  const std::string& to_json() const { return text_; }

 private:
  explicit BlockId(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// The fields of eth_call / eth_estimateGas.
struct CallRequest {
  std::optional<crypto::Address> from;
  std::optional<crypto::Address> to;  // empty: contract creation
  Uint256 value;
  Bytes data;
  std::optional<std::uint64_t> gas;
};

struct Log {
  crypto::Address address;
  std::vector<Hash32> topics;
  Bytes data;
  std::optional<std::uint64_t> block_number;  // empty while pending
  std::optional<Hash32> transaction_hash;
  std::optional<std::uint64_t> log_index;
};

struct Receipt {
  Hash32 transaction_hash{};
  std::uint64_t status = 0;  // 1 success, 0 reverted
  std::uint64_t block_number = 0;
  Hash32 block_hash{};
  std::uint64_t gas_used = 0;
  std::optional<Uint256> effective_gas_price;
  std::optional<crypto::Address> contract_address;
  std::vector<Log> logs;
};

struct Block {
  std::uint64_t number = 0;
  Hash32 hash{};
  Hash32 parent_hash{};
  std::uint64_t timestamp = 0;
  std::optional<Uint256> base_fee_per_gas;  // absent before London
};

struct LogFilter {
  std::optional<crypto::Address> address;
  // Position i matches topic i; an empty entry matches anything.
  std::vector<std::optional<Hash32>> topics;
  BlockId from_block = BlockId::earliest();
  BlockId to_block = BlockId::latest();
};

// EIP-1559 fees for a transaction that should land within a few blocks even if the base
// fee keeps rising: max_fee = 2 * base fee of the latest block + tip.
struct FeeEstimate {
  Uint256 max_fee_per_gas;
  Uint256 max_priority_fee_per_gas;
};

struct RpcCall {
  std::string method;
  boost::json::array params;
};

// JSON-RPC 2.0 over an RpcTransport. Every response is untrusted: it must be JSON, carry
// the id we sent, and hold exactly one of result or error. Node errors keep the node's
// message and map to an ErrorCode (kConflict for nonce/funds/revert, kInvalidArgument for
// rejected input, kUnavailable for node trouble). Malformed responses are kUnavailable.
class RpcClient {
 public:
  static constexpr std::size_t kDefaultMaxResponseBytes = 16 * 1024 * 1024;

  explicit RpcClient(RpcTransport& transport, std::size_t max_response_bytes = kDefaultMaxResponseBytes)
      : transport_(transport), max_response_bytes_(max_response_bytes) {}

  Result<boost::json::value> request(std::string_view method, boost::json::array params = {});
  // One POST carrying all calls. The outer error is for the exchange as a whole (transport,
  // malformed or incomplete response); each inner result is that call's own outcome.
  Result<std::vector<Result<boost::json::value>>> batch(std::span<const RpcCall> calls);

  Result<std::uint64_t> chain_id();
  Result<std::uint64_t> block_number();
  Result<Uint256> get_balance(const crypto::Address& address, const BlockId& block = BlockId::latest());
  Result<std::uint64_t> get_transaction_count(const crypto::Address& address,
                                              const BlockId& block = BlockId::pending());
  Result<Uint256> gas_price();
  Result<Uint256> max_priority_fee();
  Result<FeeEstimate> estimate_fees();
  Result<std::uint64_t> estimate_gas(const CallRequest& call);
  Result<Bytes> call(const CallRequest& call, const BlockId& block = BlockId::latest());
  Result<Hash32> send_raw_transaction(ByteView raw);
  // Empty while the transaction is unknown or not yet mined.
  Result<std::optional<Receipt>> get_transaction_receipt(const Hash32& hash);
  // Polls until the receipt appears; kTimeout after `timeout`.
  Result<Receipt> wait_for_receipt(const Hash32& hash, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds poll_interval = std::chrono::milliseconds{200});
  Result<std::vector<Log>> get_logs(const LogFilter& filter);
  // Empty when the node has no such block.
  Result<std::optional<Block>> get_block(const BlockId& block);

 private:
  Result<boost::json::value> checked_body(std::string_view body) const;

  RpcTransport& transport_;
  std::size_t max_response_bytes_;
  std::uint64_t next_id_ = 1;
};

// Decoders for node objects, exposed for tests and fuzzing.
Result<Receipt> parse_receipt(const boost::json::value& value) noexcept;
Result<Log> parse_log(const boost::json::value& value) noexcept;
Result<Block> parse_block(const boost::json::value& value) noexcept;

}  // namespace kaisar::eth
