#include "onenode/epochs.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/json_fields.hpp"
#include "crypto/merkle.hpp"
#include "onenode/verified.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {

void put_u64(Bytes& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t overlap(std::int64_t a0, std::int64_t a1, std::int64_t b0, std::int64_t b1) {
  const std::int64_t from = std::max(a0, b0), to = std::min(a1, b1);
  return to > from ? static_cast<std::uint64_t>(to - from) : 0;
}

json::array hex_list(const std::vector<Hash32>& hashes) {
  json::array out;
  for (const auto& h : hashes) out.push_back(json::value(to_hex(h)));
  return out;
}

}  // namespace

Bytes attestation_leaf(const Hash32& digest, ByteView signature) {
  Bytes out{0x01};
  out.insert(out.end(), digest.begin(), digest.end());
  out.insert(out.end(), signature.begin(), signature.end());
  return out;
}

Bytes uptime_leaf(const crypto::Address& provider, std::uint64_t epoch, std::uint64_t uptime_s, std::uint64_t job_s) {
  Bytes out{0x02};
  out.insert(out.end(), provider.bytes().begin(), provider.bytes().end());
  put_u64(out, epoch);
  put_u64(out, uptime_s);
  put_u64(out, job_s);
  return out;
}

Bytes reward_leaf(const crypto::Address& account, const eth::Uint256& amount) {
  Bytes out(account.bytes().begin(), account.bytes().end());
  const auto be = amount.to_be32();
  out.insert(out.end(), be.begin(), be.end());
  return out;
}

double hardware_score(const ProviderWork& w) {
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  // Relative to a reference machine: 100 int8 TOPS, 1 Gbit/s, 16 cores, 64 GiB, 1 TiB.
  // Each term is capped at 8 reference machines: CPU, memory and disk are what the agent
  // reports, and a provider inflating them must not take the pool.
  auto capped = [](double v) { return std::clamp(v, 0.0, 8.0); };
  const double gpu = capped(w.tops / 100.0);
  const double bandwidth = capped(w.bandwidth_mbps / 1000.0);
  const double cpu = capped(static_cast<double>(w.cpu_cores) / 16.0);
  const double memory = capped(static_cast<double>(w.ram_bytes) / (64 * kGiB));
  const double disk = capped(static_cast<double>(w.disk_bytes) / (1024 * kGiB));
  return 3 * gpu + 2 * bandwidth + cpu + memory + disk;
}

double provider_weight(const ProviderWork& w) {
  if (w.failed_check) return 0;
  return (static_cast<double>(w.uptime_s) + 3.0 * static_cast<double>(w.job_s)) * hardware_score(w);
}

double checker_weight(std::uint64_t checks, double error_rate) {
  return static_cast<double>(checks) * std::clamp(1.0 - error_rate, 0.0, 1.0);
}

std::vector<eth::Uint256> share(const eth::Uint256& pool, const std::vector<double>& weights) {
  double sum = 0;
  for (double w : weights) sum += std::max(0.0, w);
  std::vector<eth::Uint256> out(weights.size());
  if (sum <= 0 || pool.is_zero()) return out;
  // Parts per billion of the pool, rounded down, so the shares never add up past it.
  constexpr std::uint64_t kParts = 1000000000;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const auto parts = static_cast<std::uint64_t>(std::floor(std::max(0.0, weights[i]) / sum * static_cast<double>(kParts)));
    // pool × parts / kParts, rounded down; divided first only if the product would not fit.
    auto product = eth::Uint256::checked_mul(pool, parts);
    eth::Uint256 amount = product ? *product : pool;
    amount.divmod_small(kParts);
    out[i] = product ? amount : amount * parts;
  }
  return out;
}

RewardPools split_rewards(const eth::Uint256& pool, double provider_weights, double checker_weights,
                          const eth::Uint256& cap_per_check) {
  RewardPools out;
  if (checker_weights > 0) {
    eth::Uint256 fifth = pool;
    fifth.divmod_small(5);
    // cap × weighted checks, in millionths of a check (rounded down: never above the cap).
    constexpr std::uint64_t kMicro = 1000000;
    const auto micro_checks = static_cast<std::uint64_t>(std::floor(std::min(checker_weights, 1e12) * static_cast<double>(kMicro)));
    auto capped = eth::Uint256::checked_mul(cap_per_check, micro_checks);
    eth::Uint256 limit = capped ? *capped : fifth;
    if (capped) limit.divmod_small(kMicro);
    out.checkers = limit < fifth ? limit : fifth;
  }
  if (provider_weights > 0) out.providers = pool - out.checkers;
  return out;
}

EpochBook::EpochBook(store::Database& db, const Clock& clock, EventHub& events, const OneNodeConfig& config)
    : db_(db), clock_(clock), events_(events), config_(config) {}

std::int64_t EpochBook::now_s() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
}

Result<void> EpochBook::recover() {
  auto open = db_.query("SELECT number FROM epochs WHERE ended_at IS NULL ORDER BY number DESC LIMIT 1", {});
  if (!open) return std::unexpected(open.error());
  if (!open->empty()) {
    current_.store(static_cast<std::uint64_t>(open->front().integer(0)));
    return {};
  }
  auto last = db_.query("SELECT MAX(number) FROM epochs", {});
  if (!last) return std::unexpected(last.error());
  const std::int64_t next = last->empty() || last->front().is_null(0) ? 0 : last->front().integer(0) + 1;
  auto ins = db_.execute("INSERT INTO epochs(number, started_at) VALUES(?, ?)", {next, now_s()});
  if (!ins) return std::unexpected(ins.error());
  current_.store(static_cast<std::uint64_t>(next));
  return {};
}

Result<void> EpochBook::tick(bool force) {
  std::lock_guard lock(mutex_);
  auto open = db_.query("SELECT started_at FROM epochs WHERE number = ?", {static_cast<std::int64_t>(current_.load())});
  if (!open) return std::unexpected(open.error());
  if (open->empty()) return fail(ErrorCode::kInternal, "the open epoch is missing");
  const std::int64_t start = open->front().integer(0);
  const std::int64_t now = now_s();
  if (!force && now < start + config_.epoch_length.count()) return {};
  return close(start, std::max(now, start + 1));
}

Result<void> EpochBook::close(std::int64_t start, std::int64_t end) {
  const std::uint64_t number = current_.load();
  const auto n = static_cast<std::int64_t>(number);
  Hash32 root{};
  std::size_t leaf_count = 0;
  Hash32 rewards_root{};
  eth::Uint256 rewards_total;
  auto r = db_.transaction([&]() -> Result<void> {
    struct Leaf {
      std::string kind, ref;
      Bytes bytes;
    };
    std::vector<Leaf> leaves;
    auto attested = db_.query("SELECT check_id, digest, signature FROM attestations WHERE epoch = ?", {n});
    if (!attested) return std::unexpected(attested.error());
    for (const auto& row : *attested) {
      auto digest = from_hex_fixed<32>(row.text(1));
      auto signature = from_hex(row.text(2));
      if (!digest || !signature) continue;
      leaves.push_back({"attestation", row.text(0), attestation_leaf(*digest, *signature)});
    }

    // What each provider did in the window: time online, time running leases.
    std::map<std::string, ProviderWork> work;
    // An open interval (the provider is online now) reaches the epoch's end: its stored end
    // is only the last flushed heartbeat, up to 5 s behind.
    auto intervals = db_.query(
        "SELECT provider_id, started_at, CASE WHEN open = 1 THEN ? ELSE ended_at END FROM uptime_intervals "
        "WHERE (open = 1 OR ended_at > ?) AND started_at < ?",
        {end, start, end});
    if (!intervals) return std::unexpected(intervals.error());
    for (const auto& row : *intervals) work[row.text(0)].uptime_s += overlap(row.integer(1), row.integer(2), start, end);
    // A lease rented by the provider's own owner wallet earns no job time: renting one's
    // own machine would otherwise buy reward weight at the price of paying oneself.
    auto jobs = db_.query(
        "SELECT l.provider, l.started_at, l.ended_at, l.id FROM leases l LEFT JOIN providers p ON p.id = l.provider "
        "WHERE l.started_at IS NOT NULL AND l.started_at < ? AND (l.ended_at IS NULL OR l.ended_at > ?) "
        "AND (p.owner IS NULL OR p.owner != l.renter)",
        {end, start});
    if (!jobs) return std::unexpected(jobs.error());
    for (const auto& row : *jobs) {
      auto provider = crypto::Address::parse(row.text(0));
      if (!provider) continue;
      // A lease still running counts only while its container is seen answering.
      if (row.is_null(2) && job_answering && !job_answering(row.text(3))) continue;
      const std::int64_t to = row.is_null(2) ? end : row.integer(2);
      work[provider->to_lower_hex()].job_s += overlap(row.integer(1), to, start, end);
    }
    std::map<std::string, std::string> owner_of;  // provider → owner (lower-case)
    auto providers = db_.query("SELECT id, owner, hardware, verification FROM providers", {});
    if (!providers) return std::unexpected(providers.error());
    for (const auto& row : *providers) {
      auto it = work.find(row.text(0));
      if (it == work.end()) continue;
      owner_of[row.text(0)] = row.text(1);
      boost::system::error_code ec;
      json::value hw = json::parse(row.text(2), ec);
      std::uint64_t claimed_ram = 0;
      if (!ec && hw.is_object()) {
        it->second.cpu_cores = uint_field(hw.get_object(), "cpu_cores");
        claimed_ram = uint_field(hw.get_object(), "ram_bytes");
      }
      // Only what checks measured counts: memory up to what the last passed memory phase
      // filled; disk not at all (no check measures it).
      json::value verification = nullptr;
      ec.clear();
      if (!row.is_null(3)) verification = json::parse(row.text(3), ec);
      const VerifiedResources verified = verified_resources(ec ? json::value(nullptr) : verification);
      it->second.failed_check = verified.failed;
      it->second.tops = verified.tops;
      it->second.ram_bytes = std::min(claimed_ram, verified.memory_bytes);
      it->second.disk_bytes = verified.disk_bytes;
    }
    for (const auto& [id, w] : work) {
      auto provider = crypto::Address::parse(id);
      if (!provider || (w.uptime_s == 0 && w.job_s == 0)) continue;
      leaves.push_back({"uptime", id, uptime_leaf(*provider, number, w.uptime_s, w.job_s)});
    }
    std::sort(leaves.begin(), leaves.end(), [](const Leaf& a, const Leaf& b) { return std::tie(a.kind, a.ref) < std::tie(b.kind, b.ref); });
    std::vector<Hash32> hashes;
    for (std::size_t i = 0; i < leaves.size(); ++i) {
      hashes.push_back(crypto::merkle_leaf_hash(leaves[i].bytes));
      auto ins = db_.execute("INSERT INTO epoch_leaves(epoch, idx, kind, ref, leaf) VALUES(?, ?, ?, ?, ?)",
                             {n, static_cast<std::int64_t>(i), leaves[i].kind, leaves[i].ref, leaves[i].bytes});
      if (!ins) return std::unexpected(ins.error());
    }
    crypto::MerkleTree tree(hashes);
    root = tree.root();
    leaf_count = leaves.size();

    // Rewards: providers' share by work × hardware, checkers' by checks × (1 − error rate).
    auto pool = eth::Uint256::from_decimal(config_.epoch_reward);
    if (!pool) return fail(ErrorCode::kInvalidArgument, "epoch_reward: " + pool.error().message);
    std::vector<std::string> provider_accounts;
    std::vector<double> provider_weights;
    for (const auto& [id, w] : work) {
      auto owner = owner_of.find(id);
      if (owner == owner_of.end()) continue;
      provider_accounts.push_back(owner->second);
      provider_weights.push_back(provider_weight(w));
    }
    std::vector<std::string> checker_accounts;
    std::vector<double> checker_weights;
    auto checkers = db_.query(
        "SELECT a.checker, c.owner, COUNT(*), c.banned_until, "
        "(SELECT COUNT(*) FROM checks k WHERE k.checker = a.checker AND k.state IN ('attested', 'contradicted')), "
        "(SELECT COUNT(*) FROM checks k WHERE k.checker = a.checker AND k.checker_wrong = 1) "
        "FROM attestations a JOIN checkers c ON c.id = a.checker WHERE a.epoch = ? GROUP BY a.checker, c.owner, c.banned_until",
        {n});
    if (!checkers) return std::unexpected(checkers.error());
    for (const auto& row : *checkers) {
      const bool banned = row.integer(3) == -1 || row.integer(3) > end;
      const double checks_all = static_cast<double>(std::max<std::int64_t>(1, row.integer(4)));
      const double error_rate = static_cast<double>(row.integer(5)) / checks_all;
      checker_accounts.push_back(row.text(1));
      checker_weights.push_back(banned ? 0.0 : checker_weight(static_cast<std::uint64_t>(row.integer(2)), error_rate));
    }
    double checker_sum = 0, provider_sum = 0;
    for (double w : checker_weights) checker_sum += w;
    for (double w : provider_weights) provider_sum += w;
    auto cap = eth::Uint256::from_decimal(config_.check_reward_cap);
    if (!cap) return fail(ErrorCode::kInvalidArgument, "check_reward_cap: " + cap.error().message);
    const RewardPools pools = split_rewards(*pool, provider_sum, checker_sum, *cap);
    const eth::Uint256& provider_pool = pools.providers;
    const eth::Uint256& checker_pool = pools.checkers;
    std::map<std::string, eth::Uint256> per_account;
    std::map<std::string, json::object> detail;
    auto provider_shares = share(provider_pool, provider_weights);
    for (std::size_t i = 0; i < provider_shares.size(); ++i) {
      if (provider_shares[i].is_zero()) continue;
      per_account[provider_accounts[i]] = per_account[provider_accounts[i]] + provider_shares[i];
      detail[provider_accounts[i]]["provider"] = provider_shares[i].to_decimal();
    }
    auto checker_shares = share(checker_pool, checker_weights);
    for (std::size_t i = 0; i < checker_shares.size(); ++i) {
      if (checker_shares[i].is_zero()) continue;
      per_account[checker_accounts[i]] = per_account[checker_accounts[i]] + checker_shares[i];
      detail[checker_accounts[i]]["checker"] = checker_shares[i].to_decimal();
    }
    std::vector<Hash32> reward_hashes;
    std::int64_t index = 0;
    for (const auto& [account, amount] : per_account) {
      auto address = crypto::Address::parse(account);
      if (!address) continue;
      reward_hashes.push_back(crypto::merkle_leaf_hash(reward_leaf(*address, amount)));
      rewards_total = rewards_total + amount;
      auto ins = db_.execute("INSERT INTO rewards(epoch, account, amount, idx, detail) VALUES(?, ?, ?, ?, ?)",
                             {n, account, amount.to_decimal(), index++, json::serialize(detail[account])});
      if (!ins) return std::unexpected(ins.error());
    }
    crypto::MerkleTree reward_tree(reward_hashes);
    rewards_root = reward_tree.root();

    auto upd = db_.execute(
        "UPDATE epochs SET ended_at = ?, root = ?, leaf_count = ?, rewards_root = ?, rewards_total = ? WHERE number = ?",
        {end, to_hex(root), static_cast<std::int64_t>(leaf_count), rewards_total.is_zero() ? store::Value{} : store::Value{to_hex(rewards_root)},
         rewards_total.to_decimal(), n});
    if (!upd) return std::unexpected(upd.error());
    auto next = db_.execute("INSERT INTO epochs(number, started_at) VALUES(?, ?)", {n + 1, end});
    if (!next) return std::unexpected(next.error());
    // The chain writes are queued in the same transaction: an epoch is closed and posted,
    // or neither.
    if (post_root) {
      if (auto p = post_root(number, root, leaf_count); !p) return p;
    }
    if (post_rewards && !rewards_total.is_zero()) {
      if (auto p = post_rewards(number, rewards_root, rewards_total); !p) return p;
    }
    return {};
  });
  if (!r) return r;
  current_.store(number + 1);
  spdlog::info("epochs: epoch {} closed: {} leaves, root {}; rewards {} base units", number, leaf_count, to_hex(root),
               rewards_total.to_decimal());
  events_.publish("epoch", json::serialize(json::object{{"number", number},
                                                        {"root", to_hex(root)},
                                                        {"leaf_count", leaf_count},
                                                        {"rewards_total", rewards_total.to_decimal()}}));
  return {};
}

Result<json::array> EpochBook::list(std::size_t limit) {
  auto rows = db_.query("SELECT number FROM epochs ORDER BY number DESC LIMIT ?", {static_cast<std::int64_t>(limit)});
  if (!rows) return std::unexpected(rows.error());
  json::array out;
  for (const auto& row : *rows) {
    auto e = get(static_cast<std::uint64_t>(row.integer(0)));
    if (e) out.push_back(std::move(*e));
  }
  return out;
}

Result<json::object> EpochBook::get(std::uint64_t number) {
  auto rows = db_.query(
      "SELECT number, started_at, ended_at, root, leaf_count, rewards_root, rewards_total, "
      "(SELECT COUNT(*) FROM attestations a WHERE a.epoch = epochs.number) FROM epochs WHERE number = ?",
      {static_cast<std::int64_t>(number)});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "no epoch " + std::to_string(number));
  const auto& row = rows->front();
  const bool closed = !row.is_null(2);
  auto tx = [&](const std::string& key) -> json::value {
    if (!closed || !transaction_of) return nullptr;
    auto hash = transaction_of(key);
    return hash ? json::value(*hash) : json::value(nullptr);
  };
  return json::object{
      {"number", row.integer(0)},
      {"state", closed ? "closed" : "open"},
      {"started_at", format_rfc3339(from_unix_seconds(row.integer(1)))},
      {"ended_at", closed ? json::value(format_rfc3339(from_unix_seconds(row.integer(2)))) : json::value(nullptr)},
      {"root", closed ? json::value(row.text(3)) : json::value(nullptr)},
      {"leaf_count", closed ? json::value(row.integer(4)) : json::value(nullptr)},
      {"attestations", row.integer(7)},
      {"transaction", tx("epoch:" + std::to_string(number))},
      {"rewards_root", row.is_null(5) ? json::value(nullptr) : json::value(row.text(5))},
      {"rewards_total", closed ? json::value(row.text(6)) : json::value(nullptr)},
      {"rewards_transaction", row.is_null(5) ? json::value(nullptr) : tx("rewards:" + std::to_string(number))}};
}

// A closed epoch's trees never change: built once from the stored leaves, then kept (a few).
Result<std::shared_ptr<const crypto::MerkleTree>> EpochBook::tree(char kind, std::uint64_t number) {
  const auto key = std::make_pair(kind, number);
  {
    std::lock_guard lock(cache_mutex_);
    if (auto it = trees_.find(key); it != trees_.end()) return it->second;
  }
  std::vector<Hash32> hashes;
  if (kind == 'e') {
    auto rows = db_.query("SELECT leaf FROM epoch_leaves WHERE epoch = ? ORDER BY idx", {static_cast<std::int64_t>(number)});
    if (!rows) return std::unexpected(rows.error());
    for (const auto& row : *rows) hashes.push_back(crypto::merkle_leaf_hash(std::get<Bytes>(row.at(0))));
  } else {
    auto rows = db_.query("SELECT account, amount FROM rewards WHERE epoch = ? ORDER BY idx", {static_cast<std::int64_t>(number)});
    if (!rows) return std::unexpected(rows.error());
    for (const auto& r : *rows) {
      auto a = crypto::Address::parse(r.text(0));
      auto amount = eth::Uint256::from_decimal(r.text(1));
      if (!a || !amount) return fail(ErrorCode::kInternal, "a stored reward is malformed");
      hashes.push_back(crypto::merkle_leaf_hash(reward_leaf(*a, *amount)));
    }
  }
  auto built = std::make_shared<const crypto::MerkleTree>(std::move(hashes));
  std::lock_guard lock(cache_mutex_);
  if (trees_.size() >= 32) trees_.erase(trees_.begin());  // the oldest epoch's
  trees_[key] = built;
  return built;
}

Result<json::object> EpochBook::proof(std::uint64_t number, const std::string& id) {
  auto epoch = get(number);
  if (!epoch) return std::unexpected(epoch.error());
  if (epoch->at("state").as_string() != "closed") return fail(ErrorCode::kConflict, "epoch " + std::to_string(number) + " is still open");
  std::string ref = id;
  if (auto address = crypto::Address::parse(id)) ref = address->to_lower_hex();
  else std::transform(ref.begin(), ref.end(), ref.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto rows = db_.query("SELECT idx, kind, leaf FROM epoch_leaves WHERE epoch = ? AND ref = ?",
                        {static_cast<std::int64_t>(number), ref});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "no leaf " + id.substr(0, 80) + " in epoch " + std::to_string(number));
  const auto& row = rows->front();
  auto t = tree('e', number);
  if (!t) return std::unexpected(t.error());
  const auto index = static_cast<std::size_t>(row.integer(0));
  auto path = (*t)->proof(index);
  if (!path) return std::unexpected(path.error());
  const Bytes& leaf = std::get<Bytes>(row.at(2));
  return json::object{{"epoch", number},
                      {"id", id},
                      {"kind", row.text(1)},
                      {"index", index},
                      {"leaf", to_hex(leaf)},
                      {"leaf_hash", to_hex(crypto::merkle_leaf_hash(leaf))},
                      {"proof", hex_list(*path)},
                      {"root", to_hex((*t)->root())},
                      {"transaction", epoch->at("transaction")}};
}

Result<json::array> EpochBook::rewards(const crypto::Address& account) {
  auto mine = db_.query("SELECT epoch, amount, idx, detail FROM rewards WHERE account = ? ORDER BY epoch DESC LIMIT 100",
                        {account.to_lower_hex()});
  if (!mine) return std::unexpected(mine.error());
  json::array out;
  for (const auto& row : *mine) {
    auto t = tree('r', static_cast<std::uint64_t>(row.integer(0)));
    if (!t) return std::unexpected(t.error());
    auto path = (*t)->proof(static_cast<std::size_t>(row.integer(2)));
    if (!path) return std::unexpected(path.error());
    boost::system::error_code ec;
    json::value detail = json::parse(row.text(3), ec);
    const auto epoch = static_cast<std::uint64_t>(row.integer(0));
    json::value tx = nullptr;
    if (transaction_of) {
      if (auto hash = transaction_of("rewards:" + std::to_string(epoch))) tx = *hash;
    }
    out.push_back(json::object{{"epoch", epoch},
                               {"account", account.to_checksum()},
                               {"amount", row.text(1)},
                               {"for", ec ? json::value(nullptr) : std::move(detail)},
                               {"proof", hex_list(*path)},
                               {"root", to_hex((*t)->root())},
                               {"transaction", std::move(tx)}});
  }
  return out;
}

}  // namespace kaisar::onenode
