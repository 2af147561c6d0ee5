#include "chain/outbox.hpp"

#include <algorithm>
#include <cctype>

#include "crypto/random.hpp"
#include "eth/transaction.hpp"

namespace kaisar::chain {

namespace {

constexpr std::size_t kMaxKeyBytes = 200;
constexpr std::size_t kMaxKindBytes = 64;
constexpr std::size_t kMaxDataBytes = 128 * 1024;

constexpr std::string_view kColumns =
    "id, idempotency_key, kind, to_address, data, state, nonce, raw_tx, tx_hash, block_number, block_hash, "
    "attempts, next_attempt_ms, last_broadcast_ms, error, previous_hashes, stale_rounds";

bool contains_lower(std::string_view text, std::string_view needle) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find(needle) != std::string::npos;
}

Result<WriteState> parse_state(std::string_view s) {
  for (WriteState st : {WriteState::kQueued, WriteState::kSent, WriteState::kMined, WriteState::kConfirmed,
                        WriteState::kFailed}) {
    if (to_string(st) == s) return st;
  }
  return fail(ErrorCode::kInternal, "outbox: unknown state '" + std::string(s) + "' in the database");
}

Bytes blob(const store::Row& row, std::size_t i) {
  if (const Bytes* b = std::get_if<Bytes>(&row.at(i))) return *b;
  return {};
}

Result<OutboxEntry> entry_from_row(const store::Row& row) {
  OutboxEntry e;
  e.id = row.integer(0);
  e.key = row.text(1);
  e.kind = row.text(2);
  auto to = crypto::Address::parse(row.text(3));
  if (!to) return fail(ErrorCode::kInternal, "outbox: bad address in the database");
  e.to = *to;
  e.data = blob(row, 4);
  auto state = parse_state(row.text(5));
  if (!state) return std::unexpected(state.error());
  e.state = *state;
  if (!row.is_null(6)) e.nonce = static_cast<std::uint64_t>(row.integer(6));
  e.raw_tx = blob(row, 7);
  if (!row.is_null(8)) {
    auto h = eth::parse_hash(row.text(8));
    if (!h) return fail(ErrorCode::kInternal, "outbox: bad transaction hash in the database");
    e.tx_hash = *h;
  }
  if (!row.is_null(9)) e.block_number = static_cast<std::uint64_t>(row.integer(9));
  if (!row.is_null(10)) {
    auto h = eth::parse_hash(row.text(10));
    if (!h) return fail(ErrorCode::kInternal, "outbox: bad block hash in the database");
    e.block_hash = *h;
  }
  e.attempts = row.integer(11);
  e.next_attempt_ms = row.integer(12);
  e.last_broadcast_ms = row.integer(13);
  e.error = row.text(14);
  const std::string previous = row.text(15);
  for (std::size_t at = 0; at < previous.size();) {
    const std::size_t comma = std::min(previous.find(',', at), previous.size());
    auto h = eth::parse_hash(std::string_view(previous).substr(at, comma - at));
    if (!h) return fail(ErrorCode::kInternal, "outbox: bad previous hash in the database");
    e.previous_hashes.push_back(*h);
    at = comma + 1;
  }
  e.stale_rounds = row.integer(16);
  return e;
}

store::Value optional_int(const std::optional<std::uint64_t>& v) {
  if (!v) return std::monostate{};
  return static_cast<std::int64_t>(*v);
}

std::string previous_text(const std::vector<Hash32>& hashes) {
  std::string out;
  for (const Hash32& h : hashes) {
    if (!out.empty()) out += ',';
    out += to_hex(h);
  }
  return out;
}

store::Value optional_hash(const std::optional<Hash32>& h) {
  if (!h) return std::monostate{};
  return to_hex(*h);
}

}  // namespace

std::string_view to_string(WriteState state) {
  switch (state) {
    case WriteState::kQueued: return "queued";
    case WriteState::kSent: return "sent";
    case WriteState::kMined: return "mined";
    case WriteState::kConfirmed: return "confirmed";
    case WriteState::kFailed: return "failed";
  }
  return "unknown";
}

Outbox::Outbox(store::Database& db, eth::RpcTransport& transport, crypto::PrivateKey operator_key,
               OutboxOptions options, const Clock& clock)
    : db_(db),
      rpc_(transport),
      key_(std::move(operator_key)),
      sender_(key_.address()),
      options_(options),
      clock_(clock) {}

Outbox::~Outbox() { stop(); }

std::int64_t Outbox::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch()).count();
}

Result<OutboxEntry> Outbox::enqueue(std::string_view key, std::string_view kind, const crypto::Address& to,
                                    ByteView data) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return fail(ErrorCode::kInvalidArgument, "outbox: idempotency key must be 1 to 200 bytes");
  }
  if (kind.empty() || kind.size() > kMaxKindBytes) {
    return fail(ErrorCode::kInvalidArgument, "outbox: kind must be 1 to 64 bytes");
  }
  if (data.size() > kMaxDataBytes) return fail(ErrorCode::kPayloadTooLarge, "outbox: call data over 128 KiB");
  const Bytes bytes(data.begin(), data.end());
  const std::int64_t now = now_ms();
  std::optional<OutboxEntry> result;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto existing = find(key);
    if (!existing) return std::unexpected(existing.error());
    if (*existing) {
      if ((*existing)->to != to || (*existing)->data != bytes) {
        return fail(ErrorCode::kConflict,
                    "outbox: key '" + std::string(key) + "' was already used for a different write");
      }
      result = **existing;
      return {};
    }
    auto inserted = db_.execute(
        "INSERT INTO chain_outbox (idempotency_key, kind, to_address, data, state, created_ms, updated_ms) "
        "VALUES (?, ?, ?, ?, 'queued', ?, ?)",
        {std::string(key), std::string(kind), to.to_checksum(), bytes, now, now});
    if (!inserted) return std::unexpected(inserted.error());
    auto stored = find(key);
    if (!stored) return std::unexpected(stored.error());
    if (!*stored) return fail(ErrorCode::kInternal, "outbox: inserted write not found");
    result = **stored;
    return {};
  });
  if (!tx) return std::unexpected(tx.error());
  wake();
  return *result;
}

Result<std::optional<OutboxEntry>> Outbox::find(std::string_view key) {
  auto rows = db_.query("SELECT " + std::string(kColumns) + " FROM chain_outbox WHERE idempotency_key = ?",
                        {std::string(key)});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<OutboxEntry>{};
  auto e = entry_from_row(rows->front());
  if (!e) return std::unexpected(e.error());
  return std::optional<OutboxEntry>{std::move(*e)};
}

Result<std::vector<OutboxEntry>> Outbox::list(std::size_t limit) {
  return load("SELECT " + std::string(kColumns) + " FROM chain_outbox ORDER BY id DESC LIMIT ?",
              {static_cast<std::int64_t>(std::min<std::size_t>(limit, 10000))});
}

Result<std::vector<OutboxEntry>> Outbox::load(const std::string& sql, const std::vector<store::Value>& params) {
  auto rows = db_.query(sql, params);
  if (!rows) return std::unexpected(rows.error());
  std::vector<OutboxEntry> out;
  for (const auto& row : *rows) {
    auto e = entry_from_row(row);
    if (!e) return std::unexpected(e.error());
    out.push_back(std::move(*e));
  }
  return out;
}

Result<std::map<std::string, std::int64_t>> Outbox::counts() {
  auto rows = db_.query("SELECT state, COUNT(*) FROM chain_outbox GROUP BY state");
  if (!rows) return std::unexpected(rows.error());
  std::map<std::string, std::int64_t> out;
  for (const auto& row : *rows) out[row.text(0)] = row.integer(1);
  return out;
}

Result<std::vector<OutboxEntry>> Outbox::load_open() {
  return load("SELECT " + std::string(kColumns) +
              " FROM chain_outbox WHERE state IN ('queued', 'sent', 'mined') ORDER BY id LIMIT 1000");
}

Result<void> Outbox::save(const OutboxEntry& e) {
  auto r = db_.execute(
      "UPDATE chain_outbox SET state = ?, sender = ?, nonce = ?, raw_tx = ?, tx_hash = ?, block_number = ?, "
      "block_hash = ?, attempts = ?, next_attempt_ms = ?, last_broadcast_ms = ?, error = ?, updated_ms = ?, "
      "previous_hashes = ?, stale_rounds = ? WHERE id = ?",
      {std::string(to_string(e.state)), sender_.to_checksum(), optional_int(e.nonce),
       e.raw_tx.empty() ? store::Value{std::monostate{}} : store::Value{e.raw_tx}, optional_hash(e.tx_hash),
       optional_int(e.block_number), optional_hash(e.block_hash), e.attempts, e.next_attempt_ms,
       e.last_broadcast_ms, e.error, now_ms(), previous_text(e.previous_hashes), e.stale_rounds, e.id});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::optional<eth::Receipt>> Outbox::find_receipt(OutboxEntry& e) {
  std::vector<Hash32> hashes;
  if (e.tx_hash) hashes.push_back(*e.tx_hash);
  hashes.insert(hashes.end(), e.previous_hashes.begin(), e.previous_hashes.end());
  for (const Hash32& h : hashes) {
    auto receipt = rpc_.get_transaction_receipt(h);
    if (!receipt) return std::unexpected(receipt.error());
    if (*receipt) {
      if (!e.tx_hash || *e.tx_hash != h) {
        // An earlier signing of this write landed after all: that is the one.
        if (e.tx_hash) e.previous_hashes.push_back(*e.tx_hash);
        std::erase(e.previous_hashes, h);
        e.tx_hash = h;
        e.raw_tx.clear();
      }
      return receipt;
    }
  }
  return std::optional<eth::Receipt>{};
}

void Outbox::notify(const OutboxEntry& entry) {
  if (listener_) listener_(entry);
}

Result<void> Outbox::retry_later(OutboxEntry& e, const Error& error, std::int64_t now) {
  e.attempts += 1;
  const auto shift = std::min<std::int64_t>(e.attempts - 1, 16);
  std::int64_t backoff = std::min<std::int64_t>(options_.max_backoff.count(), options_.min_backoff.count() << shift);
  // Jitter of up to a quarter so that many OneNodes do not retry in step.
  backoff += static_cast<std::int64_t>(crypto::random_below(static_cast<std::uint64_t>(backoff / 4 + 1)));
  e.next_attempt_ms = now + backoff;
  e.error = error.message;
  if (auto r = save(e); !r) return r;
  return std::unexpected(error);
}

Result<void> Outbox::finish_failed(OutboxEntry& e, std::string reason) {
  e.state = WriteState::kFailed;
  e.error = std::move(reason);
  if (auto r = save(e); !r) return r;
  notify(e);
  return {};
}

Result<void> Outbox::check_chain() {
  auto id = rpc_.chain_id();
  if (!id) return std::unexpected(id.error());
  if (*id != options_.chain_id) {
    return fail(ErrorCode::kInvalidArgument, "outbox: the node is on chain id " + std::to_string(*id) +
                                                 ", configured chain id is " + std::to_string(options_.chain_id) +
                                                 "; nothing is sent");
  }
  return {};
}

Result<void> Outbox::sign_next(OutboxEntry& e, bool earlier_unmined) {
  auto gas = rpc_.estimate_gas(eth::CallRequest{sender_, e.to, {}, e.data, std::nullopt});
  if (!gas) {
    if (gas.error().code == ErrorCode::kConflict && contains_lower(gas.error().message, "revert") && earlier_unmined) {
      // It may depend on an earlier write that is not in a block yet: try again after it.
      return fail(ErrorCode::kConflict, "the call reverts before earlier writes are mined; waiting for them: " +
                                            gas.error().message);
    }
    if (gas.error().code == ErrorCode::kConflict && contains_lower(gas.error().message, "revert")) {
      // The call reverts against the current state: sending it would only burn gas.
      return finish_failed(e, "the call would revert: " + gas.error().message);
    }
    return std::unexpected(gas.error());
  }
  auto fees = rpc_.estimate_fees();
  if (!fees) return std::unexpected(fees.error());
  auto pending = rpc_.get_transaction_count(sender_, eth::BlockId::pending());
  if (!pending) return std::unexpected(pending.error());

  std::optional<OutboxEntry> signed_entry;
  auto tx = db_.transaction([&]() -> Result<void> {
    auto rows = db_.query("SELECT next_nonce FROM chain_nonces WHERE sender = ?", {sender_.to_checksum()});
    if (!rows) return std::unexpected(rows.error());
    std::uint64_t nonce = *pending;
    if (!rows->empty()) nonce = std::max(nonce, static_cast<std::uint64_t>(rows->front().integer(0)));
    eth::Eip1559Transaction t;
    t.chain_id = options_.chain_id;
    t.nonce = nonce;
    t.max_priority_fee_per_gas = fees->max_priority_fee_per_gas;
    t.max_fee_per_gas = fees->max_fee_per_gas;
    t.gas_limit = *gas + *gas / 5 + 10000;
    t.to = e.to;
    t.data = e.data;
    const auto s = eth::sign_transaction(t, key_);
    OutboxEntry next = e;
    next.nonce = nonce;
    next.raw_tx = s.raw;
    next.tx_hash = s.hash;
    next.error.clear();
    if (auto r = save(next); !r) return r;
    auto upsert = db_.execute(
        "INSERT INTO chain_nonces (sender, next_nonce) VALUES (?, ?) "
        "ON CONFLICT(sender) DO UPDATE SET next_nonce = excluded.next_nonce",
        {sender_.to_checksum(), static_cast<std::int64_t>(nonce + 1)});
    if (!upsert) return std::unexpected(upsert.error());
    signed_entry = std::move(next);
    return {};
  });
  if (!tx) return std::unexpected(tx.error());
  e = std::move(*signed_entry);
  return {};
}

Result<void> Outbox::broadcast(OutboxEntry& e, std::int64_t now) {
  auto sent = rpc_.send_raw_transaction(e.raw_tx);
  bool accepted = sent.has_value();
  if (sent && *sent != *e.tx_hash) {
    return retry_later(e, Error{ErrorCode::kUnavailable, "node returned a different transaction hash"}, now);
  }
  if (!sent) {
    const std::string& msg = sent.error().message;
    if (contains_lower(msg, "already known") || contains_lower(msg, "known transaction")) {
      accepted = true;
    } else if (contains_lower(msg, "nonce too low") || contains_lower(msg, "nonce too small")) {
      // Either this write (under any of its hashes) is in a block, or another transaction
      // took the nonce. A lagging node can show the first as the second, so the write is
      // signed again only after several rounds without any receipt.
      auto receipt = find_receipt(e);
      if (!receipt) return retry_later(e, receipt.error(), now);
      if (*receipt) {
        accepted = true;
      } else if (++e.stale_rounds < 3) {
        return retry_later(e, Error{ErrorCode::kConflict, "nonce " + std::to_string(e.nonce.value_or(0)) +
                                                             " is used and no receipt is seen yet; checking again"},
                           now + options_.rebroadcast_after.count());
      } else {
        e.error = "nonce " + std::to_string(e.nonce.value_or(0)) + " was used by another transaction; signing again";
        e.state = WriteState::kQueued;
        if (e.tx_hash) e.previous_hashes.push_back(*e.tx_hash);
        e.nonce.reset();
        e.tx_hash.reset();
        e.raw_tx.clear();
        e.block_number.reset();
        e.block_hash.reset();
        e.stale_rounds = 0;
        if (auto r = db_.execute("UPDATE chain_nonces SET next_nonce = 0 WHERE sender = ?", {sender_.to_checksum()});
            !r) {
          return std::unexpected(r.error());
        }
        if (auto r = save(e); !r) return r;
        notify(e);
        return {};
      }
    } else {
      return retry_later(e, sent.error(), now);
    }
  }
  (void)accepted;
  e.last_broadcast_ms = now;
  e.stale_rounds = 0;
  e.error.clear();
  const bool changed = e.state == WriteState::kQueued;
  if (changed) e.state = WriteState::kSent;
  if (auto r = save(e); !r) return r;
  if (changed) notify(e);
  return {};
}

Result<void> Outbox::follow(OutboxEntry& e, std::uint64_t head, std::int64_t now) {
  auto receipt = find_receipt(e);
  if (!receipt) return std::unexpected(receipt.error());
  if (!*receipt) {
    if (e.state == WriteState::kMined) {
      // The block that held it is no longer on the chain.
      e.state = WriteState::kSent;
      e.block_number.reset();
      e.block_hash.reset();
      e.error = "its block was reorganized away; broadcasting again";
      e.last_broadcast_ms = 0;
      if (auto r = save(e); !r) return r;
      notify(e);
    }
    if (now - e.last_broadcast_ms >= options_.rebroadcast_after.count() && !e.raw_tx.empty()) return broadcast(e, now);
    return {};
  }
  const eth::Receipt& rc = **receipt;
  if (rc.status != 1) {
    e.block_number = rc.block_number;
    e.block_hash = rc.block_hash;
    return finish_failed(e, "reverted on chain in block " + std::to_string(rc.block_number));
  }
  if (e.state == WriteState::kSent || e.block_hash != rc.block_hash) {
    e.state = WriteState::kMined;
    e.block_number = rc.block_number;
    e.block_hash = rc.block_hash;
    e.error.clear();
    if (auto r = save(e); !r) return r;
    notify(e);
  }
  const std::uint64_t depth = head >= rc.block_number ? head - rc.block_number + 1 : 0;
  if (depth >= std::max<std::uint64_t>(options_.confirmations, 1)) {
    e.state = WriteState::kConfirmed;
    if (auto r = save(e); !r) return r;
    notify(e);
  }
  return {};
}

Result<void> Outbox::poll_once() {
  std::lock_guard lock(mutex_);
  if (auto r = check_chain(); !r) return r;
  auto head = rpc_.block_number();
  if (!head) return std::unexpected(head.error());
  auto entries = load_open();
  if (!entries) return std::unexpected(entries.error());

  Result<void> outcome;
  const std::int64_t now = now_ms();
  bool blocked = false;  // writes go out in order: one waiting write holds back the later ones
  bool unmined = false;  // an earlier write is signed or sent but not in a block
  for (OutboxEntry& e : *entries) {
    Result<void> r;
    const bool earlier_unmined = unmined;
    if (e.state == WriteState::kSent || (e.state == WriteState::kQueued && !e.raw_tx.empty())) unmined = true;
    if (e.state == WriteState::kQueued) {
      if (blocked) continue;
      if (e.next_attempt_ms > now) {
        blocked = true;
        continue;
      }
      if (e.raw_tx.empty()) {
        r = sign_next(e, earlier_unmined);
        if (r && e.state == WriteState::kFailed) continue;
        if (!r) r = retry_later(e, r.error(), now);
      }
      if (r && e.state == WriteState::kQueued && !e.raw_tx.empty()) r = broadcast(e, now);
      if (!r || e.state == WriteState::kQueued) blocked = true;
    } else {
      r = follow(e, *head, now);
    }
    if (!r && outcome) outcome = std::unexpected(r.error());
  }
  return outcome;
}

void Outbox::start() {
  worker_.start(options_.poll_interval, [this] { (void)poll_once(); });
}

void Outbox::stop() { worker_.stop(); }

void Outbox::wake() { worker_.wake(); }

}  // namespace kaisar::chain
