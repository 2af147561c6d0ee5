#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "crypto/address.hpp"
#include "eth/rpc.hpp"
#include "chain/worker.hpp"
#include "store/database.hpp"

namespace kaisar::chain {

// Receives the indexed logs. Both calls run inside the indexer's database transaction, so
// whatever the handler writes to the same database commits or rolls back with the cursor.
class LogHandler {
 public:
  virtual ~LogHandler() = default;
  // Logs arrive in chain order, each exactly once per block that holds it.
  virtual Result<void> apply(const eth::Log& log) = 0;
  // Blocks from `first_block` on were reorganized away: undo what their logs did.
  virtual Result<void> rewind(std::uint64_t first_block) = 0;
};

struct IndexerOptions {
  std::string name = "main";                // several indexers may share a database
  std::vector<crypto::Address> addresses;   // contracts whose logs are followed
  std::uint64_t start_block = 0;            // where a new cursor starts
  std::uint64_t confirmations = 0;          // stay this many blocks behind the head
  std::uint64_t max_range = 2000;           // blocks per eth_getLogs
  std::size_t reorg_window = 128;           // block hashes kept to find a fork point
  std::chrono::milliseconds poll_interval{1000};
};

// Follows the logs of a few contracts block by block. It stores its cursor and the hashes
// of the blocks it has read; at each step it checks that the last block it read is still
// on the chain, and when it is not, it walks back to the newest block that is, deletes the
// logs after it, tells the handler, and reads forward again. Survives restarts (the cursor
// is in the database) and node outages (it retries on the next round).
class Indexer {
 public:
  Indexer(store::Database& db, eth::RpcTransport& transport, IndexerOptions options, LogHandler* handler = nullptr);
  ~Indexer();
  Indexer(const Indexer&) = delete;
  Indexer& operator=(const Indexer&) = delete;

  // One step: reorg check, then up to max_range blocks. Returns the next block to read.
  Result<std::uint64_t> poll_once();
  // The next block to read (all blocks before it are indexed).
  Result<std::uint64_t> next_block();
  // Rewinds seen since construction (for metrics and tests).
  std::uint64_t reorgs() const { return reorgs_; }

  void start();
  void stop();

 private:
  Result<std::uint64_t> check_reorg(std::uint64_t cursor);

  store::Database& db_;
  eth::RpcClient rpc_;
  IndexerOptions options_;
  LogHandler* handler_;
  std::uint64_t reorgs_ = 0;

  std::mutex mutex_;
  PeriodicWorker worker_;  // last: stopped before the rest goes
};

}  // namespace kaisar::chain
