#include "chain/payments.hpp"

#include "chain/contracts.hpp"
#include "core/time.hpp"
#include "crypto/keccak.hpp"
#include "eth/abi.hpp"

namespace kaisar::chain {

namespace json = boost::json;
using crypto::Address;
using eth::AbiValue;
using eth::Uint256;

namespace {

constexpr std::string_view kDeposited = "Deposited(bytes32,address,uint256,uint256)";
constexpr std::string_view kToppedUp = "ToppedUp(bytes32,address,uint256,uint256,uint256)";
constexpr std::string_view kReclaimed = "Reclaimed(bytes32,address,uint256)";
constexpr std::string_view kSettled = "Settled(bytes32,address,address,uint256,uint256,uint256)";
constexpr std::string_view kPointsUsed = "PointsUsed(bytes32,address,uint256)";

Result<Address> topic_address(const Hash32& topic) {
  for (std::size_t i = 0; i < 12; ++i) {
    if (topic[i] != 0) return fail(ErrorCode::kInvalidArgument, "escrow event: address topic has high bits set");
  }
  std::array<std::uint8_t, 20> bytes{};
  std::copy(topic.begin() + 12, topic.end(), bytes.begin());
  return Address(bytes);
}

Result<Uint256> as_uint(const AbiValue& v) {
  if (const auto* u = std::get_if<Uint256>(&v.value)) return *u;
  return fail(ErrorCode::kInvalidArgument, "escrow event: expected a uint256");
}

Result<Uint256> parse_amount(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return fail(ErrorCode::kInvalidArgument, "payment: \"" + std::string(key) + "\" must be a decimal string");
  }
  auto u = Uint256::from_decimal(v->get_string());
  if (!u) return fail(ErrorCode::kInvalidArgument, "payment: \"" + std::string(key) + "\": " + u.error().message);
  return *u;
}

std::string decimal(const Uint256& u) { return u.to_decimal(); }

// Unix seconds as the contracts keep them (uint64); larger values clamp, they only lock longer.
std::chrono::sys_seconds seconds_of(const Uint256& u) {
  const std::uint64_t s = u.bit_length() > 62 ? (std::uint64_t{1} << 62) : u.low_u64();
  return std::chrono::sys_seconds{std::chrono::seconds{static_cast<std::int64_t>(s)}};
}

Uint256 uint_of(std::chrono::sys_seconds t) {
  return Uint256(static_cast<std::uint64_t>(std::max<std::int64_t>(0, t.time_since_epoch().count())));
}

}  // namespace

json::object to_json(const LeasePayment& p) {
  return json::object{{"chain_id", p.chain_id},
                      {"escrow", p.escrow.to_checksum()},
                      {"token", p.token.to_checksum()},
                      {"lease_id", to_hex(p.lease_id)},
                      {"amount", p.amount.to_decimal()},
                      {"locked_until", p.locked_until.time_since_epoch().count()}};
}

Result<LeasePayment> payment_from_json(const json::value& value) {
  if (!value.is_object()) return fail(ErrorCode::kInvalidArgument, "payment must be a JSON object");
  const json::object& o = value.get_object();
  LeasePayment p;
  const json::value* chain_id = o.if_contains("chain_id");
  if (chain_id == nullptr || !(chain_id->is_uint64() || (chain_id->is_int64() && chain_id->get_int64() > 0))) {
    return fail(ErrorCode::kInvalidArgument, "payment: \"chain_id\" must be a positive integer");
  }
  p.chain_id = chain_id->is_uint64() ? chain_id->get_uint64() : static_cast<std::uint64_t>(chain_id->get_int64());
  for (auto [key, target] : {std::pair<std::string_view, Address*>{"escrow", &p.escrow}, {"token", &p.token}}) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) {
      return fail(ErrorCode::kInvalidArgument, "payment: \"" + std::string(key) + "\" must be an address");
    }
    auto a = Address::parse(v->get_string());
    if (!a) return fail(ErrorCode::kInvalidArgument, "payment: \"" + std::string(key) + "\": " + a.error().message);
    *target = *a;
  }
  const json::value* id = o.if_contains("lease_id");
  if (id == nullptr || !id->is_string()) return fail(ErrorCode::kInvalidArgument, "payment: \"lease_id\" missing");
  auto lease = eth::parse_hash(id->get_string());
  if (!lease) return fail(ErrorCode::kInvalidArgument, "payment: \"lease_id\" must be 32 bytes of 0x-hex");
  p.lease_id = *lease;
  auto amount = parse_amount(o, "amount");
  if (!amount) return std::unexpected(amount.error());
  if (amount->is_zero()) return fail(ErrorCode::kInvalidArgument, "payment: \"amount\" must be positive");
  p.amount = *amount;
  const json::value* lock = o.if_contains("locked_until");
  if (lock == nullptr || !lock->is_int64() || lock->get_int64() <= 0) {
    return fail(ErrorCode::kInvalidArgument, "payment: \"locked_until\" must be unix seconds");
  }
  p.locked_until = std::chrono::sys_seconds{std::chrono::seconds{lock->get_int64()}};
  return p;
}

Hash32 escrow_lease_id(std::string_view lease_id) { return crypto::keccak256(lease_id); }

Result<PaymentResult> pay_lease(eth::RpcClient& rpc, const crypto::PrivateKey& renter, eth::NonceManager& nonces,
                                const LeasePayment& payment, std::chrono::milliseconds timeout,
                                std::chrono::milliseconds poll_interval) {
  auto chain_id = rpc.chain_id();
  if (!chain_id) return std::unexpected(chain_id.error());
  if (*chain_id != payment.chain_id) {
    return fail(ErrorCode::kInvalidArgument, "the payment is for chain id " + std::to_string(payment.chain_id) +
                                                 ", the RPC node is on " + std::to_string(*chain_id));
  }
  const Address me = renter.address();
  auto record = escrow_record(rpc, payment.escrow, payment.lease_id, me);
  if (!record) return fail(record.error().code, "reading the lease from the escrow: " + record.error().message);
  if (record->state == EscrowRecord::State::kSettled) return fail(ErrorCode::kConflict, "this lease is already settled");
  if (record->state == EscrowRecord::State::kReclaimed) {
    return fail(ErrorCode::kConflict, "this wallet reclaimed its deposit for this lease; it cannot pay it again");
  }
  const bool locked = record->locked_until >= payment.locked_until;
  if (record->amount >= payment.amount && locked) return PaymentResult{};  // paid already
  if (record->amount >= payment.amount) {
    return fail(ErrorCode::kConflict, "this wallet deposited the amount locked only until " +
                                          std::to_string(record->locked_until.time_since_epoch().count()) +
                                          "; OneNode needs it locked until " +
                                          std::to_string(payment.locked_until.time_since_epoch().count()));
  }
  // An earlier, smaller deposit of this wallet is topped up to the amount.
  const Uint256 missing = payment.amount - record->amount;
  auto balance = token_balance(rpc, payment.token, me);
  if (!balance) return std::unexpected(balance.error());
  if (*balance < missing) {
    return fail(ErrorCode::kConflict, "not enough tokens: the wallet holds " + balance->to_decimal() +
                                          " base units, the lease needs " + missing.to_decimal());
  }
  PaymentResult result;
  auto allowance = call_view(rpc, payment.token, "allowance(address,address)",
                             {AbiValue::address(me), AbiValue::address(payment.escrow)}, "(uint256)");
  if (!allowance) return std::unexpected(allowance.error());
  const Uint256 allowed = std::get<Uint256>(allowance->at(0).value);
  if (allowed < missing) {
    // Tokens like USDT refuse to change a non-zero allowance to another non-zero one.
    if (!allowed.is_zero()) {
      auto reset = transact(rpc, renter, nonces, payment.token, "approve(address,uint256)",
                            {AbiValue::address(payment.escrow), AbiValue::uint(0)}, timeout, poll_interval);
      if (!reset) return fail(reset.error().code, "resetting the allowance: " + reset.error().message);
      result.gas_used += reset->gas_used;
    }
    auto approved = transact(rpc, renter, nonces, payment.token, "approve(address,uint256)",
                             {AbiValue::address(payment.escrow), AbiValue::uint(missing)}, timeout,
                             poll_interval);
    if (!approved) return fail(approved.error().code, "approving the escrow: " + approved.error().message);
    result.approve_tx = approved->transaction_hash;
    result.gas_used += approved->gas_used;
  }
  auto deposited = transact(rpc, renter, nonces, payment.escrow, "deposit(bytes32,uint256,uint64)",
                            {AbiValue::bytes(Bytes(payment.lease_id.begin(), payment.lease_id.end())),
                             AbiValue::uint(missing), AbiValue::uint(uint_of(payment.locked_until))},
                            timeout, poll_interval);
  if (!deposited) return fail(deposited.error().code, "depositing: " + deposited.error().message);
  result.deposit_tx = deposited->transaction_hash;
  result.gas_used += deposited->gas_used;
  return result;
}

Result<Bytes> settle_calldata(const Hash32& lease_id, const Address& renter, const Address& provider,
                              const Uint256& to_provider, const Uint256& refund_to_renter,
                              const Uint256& credit_points) {
  return eth::abi_encode_call("settle(bytes32,address,address,uint256,uint256,uint256)",
                              AbiValue::list({AbiValue::bytes(Bytes(lease_id.begin(), lease_id.end())),
                                              AbiValue::address(renter), AbiValue::address(provider),
                                              AbiValue::uint(to_provider), AbiValue::uint(refund_to_renter),
                                              AbiValue::uint(credit_points)}));
}

Result<Reclaimed> reclaim_deposit(eth::RpcClient& rpc, const crypto::PrivateKey& depositor, eth::NonceManager& nonces,
                                  const Address& escrow, const Hash32& lease_id, std::chrono::milliseconds timeout,
                                  std::chrono::milliseconds poll_interval) {
  auto record = escrow_record(rpc, escrow, lease_id, depositor.address());
  if (!record) return fail(record.error().code, "reading the lease from the escrow: " + record.error().message);
  if (record->state != EscrowRecord::State::kOpen) {
    return fail(ErrorCode::kNotFound, "this wallet has no unsettled deposit for this lease");
  }
  // The chain's clock decides: the latest block's time, not ours. Asked first, so that a
  // locked record costs no gas for a transaction that would revert.
  auto head = rpc.get_block(eth::BlockId::latest());
  if (!head) return fail(head.error().code, "reading the latest block: " + head.error().message);
  if (*head && seconds_of(Uint256((*head)->timestamp)) < record->locked_until) {
    return fail(ErrorCode::kConflict,
                "the deposit is locked until " + format_rfc3339(record->locked_until) + "; reclaim it after that");
  }
  auto sent = transact(rpc, depositor, nonces, escrow, "reclaim(bytes32)",
                       {AbiValue::bytes(Bytes(lease_id.begin(), lease_id.end()))}, timeout, poll_interval);
  if (!sent) return fail(sent.error().code, "reclaiming: " + sent.error().message);
  return Reclaimed{record->amount, sent->transaction_hash, sent->gas_used};
}

Result<EscrowRecord> escrow_record(eth::RpcClient& rpc, const Address& escrow, const Hash32& lease_id,
                                   const Address& depositor) {
  auto r = call_view(rpc, escrow, "recordOf(bytes32,address)",
                     {AbiValue::bytes(Bytes(lease_id.begin(), lease_id.end())), AbiValue::address(depositor)},
                     "(uint256,uint8,uint64)");
  if (!r) return std::unexpected(r.error());
  auto amount = as_uint(r->at(0));
  auto state = as_uint(r->at(1));
  auto lock = as_uint(r->at(2));
  if (!amount || !state || !lock || state->low_u64() > 3) {
    return fail(ErrorCode::kInvalidArgument, "the escrow's recordOf answered something else");
  }
  return EscrowRecord{*amount, static_cast<EscrowRecord::State>(state->low_u64()), seconds_of(*lock)};
}

std::string_view to_string(EscrowEvent::Kind kind) {
  switch (kind) {
    case EscrowEvent::Kind::kDeposited: return "deposited";
    case EscrowEvent::Kind::kToppedUp: return "topped_up";
    case EscrowEvent::Kind::kSettled: return "settled";
    case EscrowEvent::Kind::kPointsUsed: return "points_used";
    case EscrowEvent::Kind::kReclaimed: return "reclaimed";
  }
  return "unknown";
}

Result<std::optional<EscrowEvent>> decode_escrow_event(const eth::Log& log) {
  if (log.topics.empty()) return std::optional<EscrowEvent>{};
  struct Shape {
    std::string_view signature;
    EscrowEvent::Kind kind;
    std::vector<bool> indexed;
  };
  static const Shape kShapes[] = {
      {kDeposited, EscrowEvent::Kind::kDeposited, {true, true, false, false}},
      {kToppedUp, EscrowEvent::Kind::kToppedUp, {true, true, false, false, false}},
      {kReclaimed, EscrowEvent::Kind::kReclaimed, {true, true, false}},
      {kSettled, EscrowEvent::Kind::kSettled, {true, true, true, false, false, false}},
      {kPointsUsed, EscrowEvent::Kind::kPointsUsed, {true, true, false}},
  };
  for (const Shape& shape : kShapes) {
    if (log.topics[0] != eth::event_topic0(shape.signature)) continue;
    std::size_t indexed_count = 0;
    for (bool b : shape.indexed) indexed_count += b ? 1 : 0;
    if (log.topics.size() != indexed_count + 1) {
      return fail(ErrorCode::kInvalidArgument, "escrow event " + std::string(shape.signature) + " has " +
                                                   std::to_string(log.topics.size()) + " topics");
    }
    auto data = eth::decode_event_data(shape.signature, shape.indexed, log.data);
    if (!data) return fail(ErrorCode::kInvalidArgument, "escrow event data: " + data.error().message);
    EscrowEvent e;
    e.kind = shape.kind;
    e.lease_id = log.topics[1];
    e.block_number = log.block_number.value_or(0);
    e.tx_hash = log.transaction_hash.value_or(Hash32{});
    e.log_index = log.log_index.value_or(0);
    if (shape.kind == EscrowEvent::Kind::kSettled) {
      auto provider = topic_address(log.topics[2]);
      auto renter = topic_address(log.topics[3]);
      if (!provider || !renter) return fail(ErrorCode::kInvalidArgument, "escrow event: bad address topic");
      e.provider = *provider;
      e.renter = *renter;
      auto paid = as_uint(data->at(0));
      auto refund = as_uint(data->at(1));
      auto points = as_uint(data->at(2));
      if (!paid || !refund || !points) return fail(ErrorCode::kInvalidArgument, "escrow event: bad amounts");
      e.amount = *paid;
      e.refund = *refund;
      e.credit_points = *points;
    } else {
      auto renter = topic_address(log.topics[2]);
      if (!renter) return std::unexpected(renter.error());
      e.renter = *renter;
      auto amount = as_uint(data->at(0));
      if (!amount) return std::unexpected(amount.error());
      e.amount = *amount;
      if (shape.kind == EscrowEvent::Kind::kDeposited || shape.kind == EscrowEvent::Kind::kToppedUp) {
        auto lock = as_uint(data->back());
        if (!lock) return std::unexpected(lock.error());
        e.locked_until = seconds_of(*lock);
      }
    }
    return std::optional<EscrowEvent>{e};
  }
  return std::optional<EscrowEvent>{};
}

Result<void> EscrowLedger::apply(const eth::Log& log) {
  if (log.address != escrow_) return {};
  auto event = decode_escrow_event(log);
  if (!event) return {};  // a log we cannot read is not ours to act on; it stays in chain_logs
  if (!*event) return {};
  const EscrowEvent& e = **event;
  auto r = db_.execute(
      "INSERT OR IGNORE INTO escrow_events (block_number, log_index, lease_id, kind, renter, provider, amount, "
      "refund, credit_points, tx_hash, locked_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {static_cast<std::int64_t>(e.block_number), static_cast<std::int64_t>(e.log_index), to_hex(e.lease_id),
       std::string(to_string(e.kind)), e.renter.to_checksum(), e.provider.to_checksum(), decimal(e.amount),
       decimal(e.refund), decimal(e.credit_points), to_hex(e.tx_hash),
       static_cast<std::int64_t>(e.locked_until.time_since_epoch().count())});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> EscrowLedger::rewind(std::uint64_t first_block) {
  auto r = db_.execute("DELETE FROM escrow_events WHERE block_number >= ?", {static_cast<std::int64_t>(first_block)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::optional<LeaseFunds>> EscrowLedger::funds(const Hash32& lease_id, const Address& depositor) {
  auto rows = db_.query(
      "SELECT block_number, log_index, kind, renter, provider, amount, refund, credit_points, tx_hash, locked_until "
      "FROM escrow_events WHERE lease_id = ? AND renter = ? ORDER BY block_number, log_index",
      {to_hex(lease_id), depositor.to_checksum()});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<LeaseFunds>{};
  LeaseFunds f;
  f.renter = depositor;
  for (const auto& row : *rows) {
    EscrowEvent e;
    e.lease_id = lease_id;
    e.block_number = static_cast<std::uint64_t>(row.integer(0));
    e.log_index = static_cast<std::uint64_t>(row.integer(1));
    const std::string kind = row.text(2);
    if (kind == "deposited") e.kind = EscrowEvent::Kind::kDeposited;
    else if (kind == "topped_up") e.kind = EscrowEvent::Kind::kToppedUp;
    else if (kind == "settled") e.kind = EscrowEvent::Kind::kSettled;
    else if (kind == "reclaimed") e.kind = EscrowEvent::Kind::kReclaimed;
    else e.kind = EscrowEvent::Kind::kPointsUsed;
    e.renter = depositor;
    e.provider = Address::parse(row.text(4)).value_or(Address{});
    e.amount = Uint256::from_decimal(row.text(5)).value_or(Uint256{});
    e.refund = Uint256::from_decimal(row.text(6)).value_or(Uint256{});
    e.credit_points = Uint256::from_decimal(row.text(7)).value_or(Uint256{});
    e.tx_hash = eth::parse_hash(row.text(8)).value_or(Hash32{});
    e.locked_until = std::chrono::sys_seconds{std::chrono::seconds{row.integer(9)}};
    switch (e.kind) {
      case EscrowEvent::Kind::kDeposited:
      case EscrowEvent::Kind::kToppedUp:
        f.deposited = f.deposited + e.amount;
        f.locked_until = std::max(f.locked_until, e.locked_until);
        break;
      case EscrowEvent::Kind::kSettled:
        f.settled = true;
        f.paid_to_provider = e.amount;
        f.refunded = e.refund;
        break;
      case EscrowEvent::Kind::kReclaimed: f.reclaimed = true; break;
      case EscrowEvent::Kind::kPointsUsed: break;
    }
    f.events.push_back(e);
  }
  return std::optional<LeaseFunds>{std::move(f)};
}

Result<std::vector<Address>> EscrowLedger::depositors(const Hash32& lease_id) {
  auto rows = db_.query(
      "SELECT renter FROM escrow_events WHERE lease_id = ? AND kind = 'deposited' ORDER BY block_number, log_index",
      {to_hex(lease_id)});
  if (!rows) return std::unexpected(rows.error());
  std::vector<Address> out;
  for (const auto& row : *rows) {
    if (auto a = Address::parse(row.text(0))) out.push_back(*a);
  }
  return out;
}

}  // namespace kaisar::chain
