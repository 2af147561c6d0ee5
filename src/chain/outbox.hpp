#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/rpc.hpp"
#include "chain/worker.hpp"
#include "store/database.hpp"

namespace kaisar::chain {

// Where a chain write is. queued: stored, not yet accepted by the node (it may already be
// signed); sent: accepted, not yet in a block; mined: in a block, fewer than `confirmations`
// deep; confirmed and failed are final. A failed write never reached the chain or reverted
// there (see `error`).
enum class WriteState { kQueued, kSent, kMined, kConfirmed, kFailed };
std::string_view to_string(WriteState state);

struct OutboxEntry {
  std::int64_t id = 0;
  std::string key;   // idempotency key: the same key is one write, however often enqueued
  std::string kind;  // what it is for, e.g. "settle" (for people and metrics)
  crypto::Address to;
  Bytes data;
  WriteState state = WriteState::kQueued;
  std::optional<std::uint64_t> nonce;
  std::optional<Hash32> tx_hash;
  std::optional<std::uint64_t> block_number;
  std::int64_t attempts = 0;
  std::string error;  // the last problem seen (kept while retrying)

  // Bookkeeping: the signed transaction, when to try next, when it was last broadcast.
  Bytes raw_tx;
  // Hashes this write was signed with before (when its nonce was taken by another
  // transaction); any of them landing means the write landed.
  std::vector<Hash32> previous_hashes;
  std::int64_t stale_rounds = 0;  // rounds the node said "nonce too low" without a receipt
  std::optional<Hash32> block_hash;
  std::int64_t next_attempt_ms = 0;
  std::int64_t last_broadcast_ms = 0;
};

struct OutboxOptions {
  std::uint64_t chain_id = 0;        // the node must report this chain id
  // Blocks that must hold the transaction before it is final, counting its own: 1 means
  // as soon as it is mined (a dev chain), 12 means 11 more blocks on top.
  std::uint64_t confirmations = 1;
  std::chrono::milliseconds poll_interval{500};
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // A sent transaction that is still not mined is broadcast again after this long (a node
  // that restarted may have dropped it from its pool).
  std::chrono::milliseconds rebroadcast_after{5000};
};

// Every chain write goes through here: stored first, then signed with the next nonce of
// the operator key (the signed bytes are stored before they are broadcast), sent, followed
// to its receipt and confirmed. A write is never signed twice with different nonces unless
// the chain shows its nonce was used by another transaction, so it lands at most once;
// it is retried with exponential backoff until it lands or fails for good (a revert).
// Writes are sent in the order they were enqueued.
//
// The operator key must not be used by anything else while the outbox runs.
class Outbox {
 public:
  using Listener = std::function<void(const OutboxEntry&)>;

  Outbox(store::Database& db, eth::RpcTransport& transport, crypto::PrivateKey operator_key, OutboxOptions options,
         const Clock& clock);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Stores a write. Enqueueing an existing key with the same target and data returns the
  // stored entry; with different target or data it is kConflict.
  Result<OutboxEntry> enqueue(std::string_view key, std::string_view kind, const crypto::Address& to, ByteView data);
  Result<std::optional<OutboxEntry>> find(std::string_view key);
  Result<std::vector<OutboxEntry>> list(std::size_t limit = 100);
  // Number of writes in each state (states without writes are absent).
  Result<std::map<std::string, std::int64_t>> counts();

  // One round: sign and broadcast what is due, follow receipts, confirm. Returns the
  // problem of this round (the entries keep theirs), or success.
  Result<void> poll_once();

  // Runs poll_once every poll_interval on a thread until stop() (or destruction).
  void start();
  void stop();
  // Wakes the worker now (after enqueue).
  void wake();

  // Called on the worker thread after every state change.
  void on_change(Listener listener) { listener_ = std::move(listener); }

  const crypto::Address& sender() const { return sender_; }

 private:
  Result<void> check_chain();
  Result<void> sign_next(OutboxEntry& entry, bool earlier_unmined);
  Result<void> broadcast(OutboxEntry& entry, std::int64_t now_ms);
  Result<void> follow(OutboxEntry& entry, std::uint64_t head, std::int64_t now_ms);
  // The receipt of whichever of the write's hashes is in a block.
  Result<std::optional<eth::Receipt>> find_receipt(OutboxEntry& entry);
  Result<void> save(const OutboxEntry& entry);
  Result<void> retry_later(OutboxEntry& entry, const Error& error, std::int64_t now_ms);
  Result<void> finish_failed(OutboxEntry& entry, std::string reason);
  Result<std::vector<OutboxEntry>> load_open();
  Result<std::vector<OutboxEntry>> load(const std::string& sql, const std::vector<store::Value>& params = {});
  void notify(const OutboxEntry& entry);
  std::int64_t now_ms() const;

  store::Database& db_;
  eth::RpcClient rpc_;
  crypto::PrivateKey key_;
  crypto::Address sender_;
  OutboxOptions options_;
  const Clock& clock_;
  Listener listener_;
  bool chain_checked_ = false;

  std::mutex mutex_;  // serializes poll_once
  PeriodicWorker worker_;  // last: stopped before the rest goes
};

}  // namespace kaisar::chain
