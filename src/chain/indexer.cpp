#include "chain/indexer.hpp"

#include <algorithm>
#include <optional>

namespace kaisar::chain {

namespace {

std::string topics_text(const std::vector<Hash32>& topics) {
  std::string out;
  for (const Hash32& t : topics) {
    if (!out.empty()) out += ',';
    out += to_hex(t);
  }
  return out;
}

}  // namespace

Indexer::Indexer(store::Database& db, eth::RpcTransport& transport, IndexerOptions options, LogHandler* handler)
    : db_(db), rpc_(transport), options_(std::move(options)), handler_(handler) {
  options_.max_range = std::max<std::uint64_t>(options_.max_range, 1);
  options_.reorg_window = std::max<std::size_t>(options_.reorg_window, 2);
}

Indexer::~Indexer() { stop(); }

Result<std::uint64_t> Indexer::next_block() {
  auto rows = db_.query("SELECT next_block FROM chain_cursor WHERE name = ?", {options_.name});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return options_.start_block;
  return static_cast<std::uint64_t>(rows->front().integer(0));
}

// Returns the cursor to read from: unchanged, or moved back past a reorganization.
Result<std::uint64_t> Indexer::check_reorg(std::uint64_t cursor) {
  auto rows = db_.query("SELECT number, hash FROM chain_blocks WHERE name = ? ORDER BY number DESC LIMIT ?",
                        {options_.name, static_cast<std::int64_t>(options_.reorg_window)});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return cursor;

  auto head = rpc_.block_number();
  if (!head) return std::unexpected(head.error());
  std::optional<std::uint64_t> fork_next;  // first block to read again
  bool newest = true;
  for (const auto& row : *rows) {
    const auto number = static_cast<std::uint64_t>(row.integer(0));
    if (number > *head) {
      // The node is behind what we read (a lagging or restarted node, or a reorg to a
      // shorter chain that has not grown back yet): wait instead of rewinding.
      if (newest) return fail(ErrorCode::kUnavailable, "the node's head " + std::to_string(*head) +
                                                           " is behind the indexed block " + std::to_string(number));
      continue;
    }
    auto block = rpc_.get_block(eth::BlockId::number(number));
    if (!block) return std::unexpected(block.error());
    if (!*block) return fail(ErrorCode::kUnavailable, "the node does not have block " + std::to_string(number) + " yet");
    if (to_hex((*block)->hash) == row.text(1)) {
      if (newest) return cursor;  // the last block read is still on the chain
      fork_next = number + 1;
      break;
    }
    newest = false;
  }
  // No stored block is on the chain any more: start over from the oldest one we know.
  if (!fork_next) fork_next = static_cast<std::uint64_t>(rows->back().integer(0));
  const std::uint64_t from = std::max(*fork_next, options_.start_block);
  auto tx = db_.transaction([&]() -> Result<void> {
    const auto first = static_cast<std::int64_t>(from);
    if (auto r = db_.execute("DELETE FROM chain_logs WHERE name = ? AND block_number >= ?", {options_.name, first});
        !r) {
      return std::unexpected(r.error());
    }
    if (auto r = db_.execute("DELETE FROM chain_blocks WHERE name = ? AND number >= ?", {options_.name, first}); !r) {
      return std::unexpected(r.error());
    }
    if (handler_ != nullptr) {
      if (auto r = handler_->rewind(from); !r) return r;
    }
    auto r = db_.execute(
        "INSERT INTO chain_cursor (name, next_block) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET next_block = excluded.next_block",
        {options_.name, first});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!tx) return std::unexpected(tx.error());
  ++reorgs_;
  return from;
}

Result<std::uint64_t> Indexer::poll_once() {
  std::lock_guard lock(mutex_);
  auto cursor = next_block();
  if (!cursor) return cursor;
  auto checked = check_reorg(*cursor);
  if (!checked) return checked;
  const std::uint64_t from = *checked;

  auto head = rpc_.block_number();
  if (!head) return std::unexpected(head.error());
  if (*head < options_.confirmations || *head - options_.confirmations < from) return from;
  const std::uint64_t safe = *head - options_.confirmations;
  const std::uint64_t to = std::min(safe, from + options_.max_range - 1);

  auto end_before = rpc_.get_block(eth::BlockId::number(to));
  if (!end_before) return std::unexpected(end_before.error());
  if (!*end_before) return from;  // the head moved back under us; next round
  std::vector<eth::Log> logs;
  for (const crypto::Address& address : options_.addresses) {
    eth::LogFilter filter;
    filter.address = address;
    filter.from_block = eth::BlockId::number(from);
    filter.to_block = eth::BlockId::number(to);
    auto got = rpc_.get_logs(filter);
    if (!got) return std::unexpected(got.error());
    for (auto& log : *got) {
      if (!log.block_number || !log.log_index || !log.transaction_hash || *log.block_number < from ||
          *log.block_number > to || log.address != address) {
        return fail(ErrorCode::kUnavailable, "node returned a log outside the requested range or contract");
      }
      logs.push_back(std::move(log));
    }
  }
  // A reorganization while we read: the range is read again next round.
  auto end_after = rpc_.get_block(eth::BlockId::number(to));
  if (!end_after) return std::unexpected(end_after.error());
  if (!*end_after || (*end_after)->hash != (*end_before)->hash) return from;

  std::sort(logs.begin(), logs.end(), [](const eth::Log& a, const eth::Log& b) {
    return std::pair(*a.block_number, *a.log_index) < std::pair(*b.block_number, *b.log_index);
  });

  auto tx = db_.transaction([&]() -> Result<void> {
    for (const eth::Log& log : logs) {
      auto inserted = db_.execute(
          "INSERT OR IGNORE INTO chain_logs (name, block_number, log_index, tx_hash, address, topics, data) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)",
          {options_.name, static_cast<std::int64_t>(*log.block_number), static_cast<std::int64_t>(*log.log_index),
           to_hex(*log.transaction_hash), log.address.to_checksum(), topics_text(log.topics),
           log.data});
      if (!inserted) return std::unexpected(inserted.error());
      if (*inserted == 0) continue;  // already applied
      if (handler_ != nullptr) {
        if (auto r = handler_->apply(log); !r) return r;
      }
    }
    if (auto r = db_.execute("INSERT OR REPLACE INTO chain_blocks (name, number, hash) VALUES (?, ?, ?)",
                             {options_.name, static_cast<std::int64_t>(to), to_hex((*end_after)->hash)});
        !r) {
      return std::unexpected(r.error());
    }
    if (auto r = db_.execute(
            "DELETE FROM chain_blocks WHERE name = ? AND number NOT IN "
            "(SELECT number FROM chain_blocks WHERE name = ? ORDER BY number DESC LIMIT ?)",
            {options_.name, options_.name, static_cast<std::int64_t>(options_.reorg_window)});
        !r) {
      return std::unexpected(r.error());
    }
    auto r = db_.execute(
        "INSERT INTO chain_cursor (name, next_block) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET next_block = excluded.next_block",
        {options_.name, static_cast<std::int64_t>(to + 1)});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!tx) return std::unexpected(tx.error());
  return to + 1;
}

void Indexer::start() {
  worker_.start(options_.poll_interval, [this] {
    // Catch up in one go when far behind.
    for (int i = 0; i < 100; ++i) {
      auto before = next_block();
      auto after = poll_once();
      if (!before || !after || *after == *before) break;
    }
  });
}

void Indexer::stop() { worker_.stop(); }

}  // namespace kaisar::chain
