#include "onenode/leases.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/image_reference.hpp"
#include "core/words.hpp"
#include "crypto/random.hpp"
#include "eth/uint256.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {

constexpr std::string_view kColumns =
    "id, renter, provider, spec, state, reason, price_hour, amount, escrow_lease_id, chain_id, escrow, token, "
    "created_at, pay_by, paid_at, gpus, cpu_cores, memory_gb, endpoints, started_at, ended_at, settlement, usage, "
    "extension";


Result<std::uint32_t> small_uint(const json::object& o, std::string_view key, std::uint32_t fallback, std::uint32_t min,
                                 std::uint32_t max) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return fallback;
  std::int64_t n = -1;
  if (v->is_int64()) n = v->get_int64();
  else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(max)) n = static_cast<std::int64_t>(v->get_uint64());
  if (n < static_cast<std::int64_t>(min) || n > static_cast<std::int64_t>(max)) {
    return fail(ErrorCode::kInvalidArgument, std::string(key) + " must be a whole number from " + std::to_string(min) +
                                                 " to " + std::to_string(max));
  }
  return static_cast<std::uint32_t>(n);
}

bool env_name_ok(std::string_view name) {
  if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '_')) return false;
  }
  return true;
}

std::uint64_t u64(const json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

// The hours of a stored spec or extension (at least 1).
std::uint64_t spec_hours(const json::value& spec) {
  const json::object* o = spec.if_object();
  return std::max<std::uint64_t>(1, o == nullptr ? 0 : u64(o->if_contains("hours")));
}

}  // namespace

std::chrono::sys_seconds payment_lock(SystemTime pay_by, std::uint64_t hours) {
  return std::chrono::floor<std::chrono::seconds>(pay_by) + std::chrono::hours{static_cast<std::int64_t>(std::min<std::uint64_t>(hours, 24 * 366 * 10))} +
         kSettleMargin;
}

bool record_pays(const chain::EscrowRecord& record, const eth::Uint256& due, std::chrono::sys_seconds lock) {
  return record.state == chain::EscrowRecord::State::kOpen && record.amount >= due && record.locked_until >= lock;
}

Result<LeaseSpec> LeaseSpec::from_json(const json::object& o) {
  static const std::set<std::string_view> kKnown = {"offer",   "query",   "image",   "gpus",    "gpu_model",
                                                    "cpus",    "memory_gb", "disk_gb", "env",   "ports",
                                                    "command", "ssh_key", "hours", "tcp_ports", "public_ports"};
  for (const auto& [k, v] : o) {
    if (!kKnown.contains(k)) return fail(ErrorCode::kInvalidArgument, "unknown field '" + std::string(k) + "'");
  }
  LeaseSpec s;
  auto text = [&](std::string_view key, std::string& out, std::size_t max, bool required) -> Result<void> {
    const json::value* v = o.if_contains(key);
    if (v == nullptr) {
      if (required) return fail(ErrorCode::kInvalidArgument, std::string(key) + " is required");
      return {};
    }
    if (!v->is_string() || v->get_string().size() > max) {
      return fail(ErrorCode::kInvalidArgument, std::string(key) + " must be a string of at most " + std::to_string(max) + " bytes");
    }
    out = std::string(v->get_string());
    return {};
  };
  if (auto r = text("offer", s.offer, 64, false); !r) return std::unexpected(r.error());
  if (auto r = text("query", s.query, 2048, false); !r) return std::unexpected(r.error());
  if (s.offer.empty() == !o.contains("query")) {
    return fail(ErrorCode::kInvalidArgument, "give either offer (an offer id) or query (what to look for), not both");
  }
  if (auto r = text("image", s.image, 255, true); !r) return std::unexpected(r.error());
  // A reference that names this provider's machine or network as its registry is refused
  // here already; the agent checks again (with what the name resolves to) before it pulls.
  auto image = parse_image_reference(s.image);
  if (!image) return std::unexpected(image.error());
  if (auto checked = check_registry(*image); !checked) return std::unexpected(checked.error());
  if (auto r = text("gpu_model", s.gpu_model, 64, false); !r) return std::unexpected(r.error());
  for (char ch : s.gpu_model) {
    const auto c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || ch == ' ' || ch == '_' || ch == '-' || ch == '.')) {
      return fail(ErrorCode::kInvalidArgument, "gpu_model may hold letters, digits, spaces and _ - . only");
    }
  }
  {
    // Kept in one spelling ("RTX_4090", "rtx 4090" → "rtx 4090") so that leases of a model
    // can be counted.
    std::string model;
    for (const auto& word : lower_words(s.gpu_model)) model += (model.empty() ? "" : " ") + word;
    s.gpu_model = std::move(model);
  }
  if (auto r = text("ssh_key", s.ssh_key, 8192, false); !r) return std::unexpected(r.error());
  if (!s.ssh_key.empty() && s.ssh_key.rfind("ssh-", 0) != 0 && s.ssh_key.rfind("ecdsa-", 0) != 0) {
    return fail(ErrorCode::kInvalidArgument, "ssh_key must be an OpenSSH public key line (ssh-ed25519 …)");
  }
  for (char ch : s.ssh_key) {
    if (ch == '\n' || ch == '\r' || ch == '\0') return fail(ErrorCode::kInvalidArgument, "ssh_key must be one line");
  }
  auto gpus = small_uint(o, "gpus", 0, 0, 64);
  auto cpus = small_uint(o, "cpus", 1, 1, 1024);
  auto mem = small_uint(o, "memory_gb", 1, 1, 4096);  // every container gets a memory limit
  auto disk = small_uint(o, "disk_gb", 0, 0, 65536);
  auto hours = small_uint(o, "hours", 1, 1, 24 * 366);
  for (auto* r : {&gpus, &cpus, &mem, &disk, &hours}) {
    if (!*r) return std::unexpected(r->error());
  }
  s.gpus = *gpus;
  s.cpus = *cpus;
  s.memory_gb = *mem;
  s.disk_gb = *disk;
  s.hours = *hours;
  if (!s.gpu_model.empty() && s.gpus == 0) return fail(ErrorCode::kInvalidArgument, "gpu_model needs gpus of at least 1");
  if (const json::value* env = o.if_contains("env")) {
    if (!env->is_object() || env->get_object().size() > 128) {
      return fail(ErrorCode::kInvalidArgument, "env must be an object of at most 128 NAME: value strings");
    }
    for (const auto& [k, v] : env->get_object()) {
      if (!env_name_ok(k)) return fail(ErrorCode::kInvalidArgument, "env name '" + std::string(k).substr(0, 64) + "' is not [A-Za-z_][A-Za-z0-9_]*");
      if (!v.is_string() || v.get_string().size() > 32768) {
        return fail(ErrorCode::kInvalidArgument, "env value of " + std::string(k) + " must be a string of at most 32 KiB");
      }
      s.env.emplace_back(std::string(k), std::string(v.get_string()));
    }
  }
  if (const json::value* ports = o.if_contains("ports")) {
    if (!ports->is_array() || ports->get_array().size() > 32) {
      return fail(ErrorCode::kInvalidArgument, "ports must be an array of at most 32 port numbers");
    }
    std::set<std::uint16_t> seen;
    for (const auto& p : ports->get_array()) {
      if (!p.is_int64() || p.get_int64() < 1 || p.get_int64() > 65535 ||
          !seen.insert(static_cast<std::uint16_t>(p.get_int64())).second) {
        return fail(ErrorCode::kInvalidArgument, "ports must be distinct numbers from 1 to 65535");
      }
      s.ports.push_back(static_cast<std::uint16_t>(p.get_int64()));
    }
  }
  // Subsets of ports: how the gateway serves each.
  auto port_subset = [&](std::string_view key, std::vector<std::uint16_t>& out) -> Result<bool> {
    const json::value* list = o.if_contains(key);
    if (list == nullptr) return false;
    if (!list->is_array() || list->get_array().size() > 32) {
      return fail(ErrorCode::kInvalidArgument, std::string(key) + " must be an array of ports from ports");
    }
    for (const auto& p : list->get_array()) {
      if (!p.is_int64() || std::find(s.ports.begin(), s.ports.end(), p.get_int64()) == s.ports.end() ||
          std::find(out.begin(), out.end(), p.get_int64()) != out.end()) {
        return fail(ErrorCode::kInvalidArgument, std::string(key) + " must list distinct ports that are also in ports");
      }
      out.push_back(static_cast<std::uint16_t>(p.get_int64()));
    }
    return true;
  };
  auto tcp_given = port_subset("tcp_ports", s.tcp_ports);
  if (!tcp_given) return std::unexpected(tcp_given.error());
  if (!*tcp_given && std::find(s.ports.begin(), s.ports.end(), 22) != s.ports.end()) s.tcp_ports = {22};
  auto public_given = port_subset("public_ports", s.public_ports);
  if (!public_given) return std::unexpected(public_given.error());
  for (auto p : s.public_ports) {
    if (std::find(s.tcp_ports.begin(), s.tcp_ports.end(), p) != s.tcp_ports.end()) {
      return fail(ErrorCode::kInvalidArgument, "port " + std::to_string(p) + " cannot be both a TCP port and a public HTTP port");
    }
  }
  if (const json::value* command = o.if_contains("command")) {
    if (!command->is_array() || command->get_array().size() > 256) {
      return fail(ErrorCode::kInvalidArgument, "command must be an array of at most 256 strings");
    }
    for (const auto& a : command->get_array()) {
      if (!a.is_string() || a.get_string().size() > 4096) {
        return fail(ErrorCode::kInvalidArgument, "command must be an array of strings of at most 4096 bytes");
      }
      s.command.emplace_back(a.get_string());
    }
  }
  return s;
}

json::object LeaseSpec::to_json() const {
  json::object env_o;
  for (const auto& [k, v] : env) env_o[k] = v;
  json::array ports_a;
  for (auto p : ports) ports_a.push_back(p);
  json::array command_a;
  for (const auto& c : command) command_a.push_back(json::value(c));
  json::object out{{"offer", offer},       {"image", image},     {"gpus", gpus},
                      {"cpus", cpus},         {"memory_gb", memory_gb}, {"disk_gb", disk_gb},
                      {"env", std::move(env_o)}, {"ports", std::move(ports_a)}, {"command", std::move(command_a)},
                      {"ssh_key", ssh_key},   {"hours", hours}};
  if (!gpu_model.empty()) out["gpu_model"] = gpu_model;
  if (!query.empty()) out["query"] = query;
  json::array tcp_a(tcp_ports.begin(), tcp_ports.end());
  json::array public_a(public_ports.begin(), public_ports.end());
  out["tcp_ports"] = std::move(tcp_a);
  out["public_ports"] = std::move(public_a);
  return out;
}

LeaseBook::LeaseBook(store::Database& db, const Clock& clock, EventHub& events, ProviderRegistry& registry,
                     std::chrono::seconds payment_timeout)
    : db_(db), clock_(clock), events_(events), registry_(registry), payment_timeout_(payment_timeout) {}

Result<std::optional<json::object>> LeaseBook::replayed(const crypto::Address& renter, const std::string& key,
                                                        const LeaseSpec& spec) const {
  if (key.empty()) return std::optional<json::object>{};
  auto rows = db_.query("SELECT " + std::string(kColumns) + " FROM leases WHERE renter = ? AND idempotency_key = ?",
                        {renter.to_lower_hex(), key});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return std::optional<json::object>{};
  // The same request again: everything but the offer, which a query placement chose.
  boost::system::error_code ec;
  json::value stored = json::parse(rows->front().text(3), ec);
  json::object asked = spec.to_json();
  if (!ec && stored.is_object() && !spec.query.empty()) {
    // A placement: the offer is whatever the first request was given.
    stored.as_object().erase("offer");
    asked.erase("offer");
  }
  if (ec || stored != json::value(asked)) {
    return fail(ErrorCode::kConflict, "this Idempotency-Key was used for a different lease request");
  }
  return std::optional<json::object>{view(rows->front())};
}

Result<json::object> LeaseBook::create(const crypto::Address& renter, const LeaseSpec& spec,
                                       const chain::Deployment& chain, const std::string& idempotency_key) {
  if (auto earlier = replayed(renter, idempotency_key, spec); !earlier || *earlier) {
    if (!earlier) return std::unexpected(earlier.error());
    return **earlier;
  }
  auto provider_addr = crypto::Address::parse(spec.offer);
  if (!provider_addr) return fail(ErrorCode::kInvalidArgument, "offer must be an offer id (a provider address)");
  const std::string provider_id = provider_addr->to_lower_hex();
  auto terms = registry_.terms(provider_id);
  if (!terms) return std::unexpected(terms.error());
  const ProviderTerms* provider = terms->get();
  if (!provider->priced) return fail(ErrorCode::kConflict, "provider " + spec.offer + " offers nothing for rent");
  // Images under localhost/ exist only where they were built or imported: the provider must
  // have it (other images are pulled from their registry, and a failed pull fails the lease
  // with the reason and a full refund).
  if (spec.image.starts_with("localhost/") && provider->images) {
    // "localhost/x" means "localhost/x:latest"; a digest reference is left to the engine.
    const auto last = spec.image.substr(spec.image.rfind('/') + 1);
    const bool digest = spec.image.find('@') != std::string::npos;
    const std::string tagged = last.find(':') == std::string::npos ? spec.image + ":latest" : spec.image;
    if (!digest && !provider->images->contains(tagged)) {
      return fail(ErrorCode::kNotFound, "unknown image " + spec.image +
                                            ": the provider does not have it and it cannot be pulled from a registry");
    }
  }
  const eth::Uint256 price_hour = provider->gpu_hour * spec.gpus + provider->cpu_core_hour * spec.cpus +
                                  provider->ram_gb_hour * spec.memory_gb;
  const eth::Uint256 amount = price_hour * spec.hours;
  if (amount.is_zero()) return fail(ErrorCode::kInvalidArgument, "this lease would cost nothing; ask for resources");
  if (amount.bit_length() > 88) {  // LeaseEscrow keeps deposits in 88 bits
    return fail(ErrorCode::kInvalidArgument, "this lease costs more than the escrow can hold; ask for fewer hours");
  }
  const std::uint64_t total_gpus = provider->gpus;
  // A model: only its GPUs count, less what live leases of the same model hold (on a
  // machine of mixed models the agent gives each lease GPUs of its model).
  const auto model_gpus = static_cast<std::uint64_t>(
      std::count_if(provider->gpu_names.begin(), provider->gpu_names.end(),
                    [&](const std::string& n) { return !spec.gpu_model.empty() && gpu_model_matches(n, spec.gpu_model); }));
  if (!spec.gpu_model.empty() && model_gpus < spec.gpus) {
    return fail(ErrorCode::kConflict, "this offer has " + std::to_string(model_gpus) + " GPUs of model '" +
                                          spec.gpu_model + "'");
  }
  const std::uint64_t total_cores = provider->cpu_cores;
  const std::uint64_t total_mem = provider->ram_gb;

  const std::string id = crypto::random_uuid();
  const auto now = to_unix_seconds(clock_.now());
  const auto pay_by = now + payment_timeout_.count();
  const Hash32 escrow_id = chain::escrow_lease_id(id);
  const std::string amount_decimal = amount.to_decimal();
  const std::string created_reason =
      "created; pay " + amount_decimal + " base units by " + format_rfc3339(from_unix_seconds(pay_by));
  // The new lease's row (in kColumns' order): stored, then shown without reading it back.
  const std::vector<store::Value> columns = {
      id, renter.to_lower_hex(), provider_id, json::serialize(spec.to_json()), std::string("pending_payment"),
      std::string("waiting for the deposit"), price_hour.to_decimal(), amount_decimal, to_hex(escrow_id),
      static_cast<std::int64_t>(chain.chain_id), chain.escrow.to_checksum(), chain.token.to_checksum(), now, pay_by,
      store::Value{}, static_cast<std::int64_t>(spec.gpus), static_cast<std::int64_t>(spec.cpus),
      static_cast<std::int64_t>(spec.memory_gb), store::Value{}, store::Value{}, store::Value{}, store::Value{},
      store::Value{}, store::Value{}};
  Reserved held_now;
  bool key_taken = false;  // a concurrent request with the same key won
  auto tx = db_.transaction([&]() -> Result<void> {
    // Inside the write lock: what is held now, then the new hold.
    auto held = reserved_on(provider_id);
    if (!held) return std::unexpected(held.error());
    if (held->gpus + spec.gpus > total_gpus) {
      return fail(ErrorCode::kConflict, "not enough free GPUs on this offer (" +
                                            std::to_string(total_gpus - std::min<std::uint64_t>(total_gpus, held->gpus)) +
                                            " free)");
    }
    if (spec.disk_gb > 0) {
      // Disk is reserved against what the provider had free (containers are not held to it:
      // that needs storage quotas the engines offer only on some filesystems).
      auto disk = db_.query(
          "SELECT COALESCE(SUM(json_extract(spec, '$.disk_gb')), 0) FROM leases WHERE provider = ? AND "
          "state IN ('pending_payment', 'paid', 'deploying', 'running')",
          {provider_id});
      if (!disk) return std::unexpected(disk.error());
      if (static_cast<std::uint64_t>(disk->front().integer(0)) + spec.disk_gb > provider->disk_gb) {
        return fail(ErrorCode::kConflict, "not enough free disk on this offer");
      }
    }
    if (!spec.gpu_model.empty()) {
      auto same = db_.query(
          "SELECT COALESCE(SUM(gpus), 0) FROM leases WHERE provider = ? AND "
          "state IN ('pending_payment', 'paid', 'deploying', 'running') AND json_extract(spec, '$.gpu_model') = ?",
          {provider_id, spec.gpu_model});
      if (!same) return std::unexpected(same.error());
      if (static_cast<std::uint64_t>(same->front().integer(0)) + spec.gpus > model_gpus) {
        return fail(ErrorCode::kConflict, "not enough free GPUs of model '" + spec.gpu_model + "' on this offer");
      }
    }
    if (std::uint64_t{held->cpu_cores} + spec.cpus > total_cores) {
      return fail(ErrorCode::kConflict, "not enough free CPU cores on this offer");
    }
    if (held->memory_gb + spec.memory_gb > total_mem) {
      return fail(ErrorCode::kConflict, "not enough free memory on this offer");
    }
    held_now = Reserved{held->gpus + spec.gpus, held->cpu_cores + spec.cpus, held->memory_gb + spec.memory_gb};
    static const std::string kInsert = "INSERT INTO leases (" + std::string(kColumns) +
                                       ", updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                       "?, ?, ?, ?, ?)";
    auto inserted = db_.execute(kInsert,
                                [&] {
                                  auto values = columns;
                                  values.emplace_back(now);  // updated_at
                                  return values;
                                }());
    if (!inserted) return std::unexpected(inserted.error());
    if (!idempotency_key.empty()) {
      auto keyed = db_.execute("UPDATE leases SET idempotency_key = ? WHERE id = ?", {idempotency_key, id});
      if (!keyed) {
        key_taken = keyed.error().code == ErrorCode::kConflict;
        return std::unexpected(keyed.error());
      }
    }
    auto logged = db_.execute("INSERT INTO lease_events (lease_id, at, state, reason) VALUES (?, ?, 'pending_payment', ?)",
                              {id, now, created_reason});
    if (!logged) return std::unexpected(logged.error());
    // Inside the write lock, so that the scheduler hears holds in the order they happen.
    if (on_capacity_change) on_capacity_change(provider_id, held_now);
    return {};
  });
  if (!tx && key_taken) {
    auto earlier = replayed(renter, idempotency_key, spec);
    if (earlier && *earlier) return **earlier;
  }
  if (!tx) return std::unexpected(tx.error());
  events_.publish("lease.state", json::serialize(json::object{{"lease_id", id}, {"state", "pending_payment"}}), id);
  const json::array history{json::object{
      {"at", format_rfc3339(from_unix_seconds(now))}, {"state", "pending_payment"}, {"reason", created_reason}}};
  return view(store::Row(columns), &history);
}

json::object LeaseBook::view(const store::Row& row, const json::array* known_history) const {
  const std::string id = row.text(0);
  boost::system::error_code ec;
  json::value spec = json::parse(row.text(3), ec);
  if (ec) spec = json::object{};
  json::array history;
  if (known_history != nullptr) {
    history = *known_history;
  } else if (auto events = db_.query("SELECT at, state, reason FROM lease_events WHERE lease_id = ? ORDER BY id", {id})) {
    for (const auto& e : *events) {
      history.push_back(json::object{{"at", format_rfc3339(from_unix_seconds(e.integer(0)))},
                                     {"state", e.text(1)},
                                     {"reason", e.text(2)}});
    }
  }
  // A JSON column: its value when it holds the expected kind, else `fallback`.
  auto stored = [&](std::size_t column, json::kind kind, json::value fallback) {
    if (row.is_null(column)) return fallback;
    json::value parsed = json::parse(row.text(column), ec);
    return !ec && parsed.kind() == kind ? parsed : fallback;
  };
  json::value endpoints = stored(18, json::kind::array, json::array{});
  json::value settlement = stored(21, json::kind::object, nullptr);
  json::value usage = stored(22, json::kind::object, nullptr);
  json::value extension = stored(23, json::kind::object, nullptr);
  auto renter = crypto::Address::parse(row.text(1));
  auto provider = crypto::Address::parse(row.text(2));
  chain::LeasePayment payment;
  payment.chain_id = static_cast<std::uint64_t>(row.integer(9));
  payment.escrow = crypto::Address::parse(row.text(10)).value_or(crypto::Address{});
  payment.token = crypto::Address::parse(row.text(11)).value_or(crypto::Address{});
  payment.lease_id = eth::parse_hash(row.text(8)).value_or(Hash32{});
  payment.amount = eth::Uint256::from_decimal(row.text(7)).value_or(eth::Uint256{});
  std::uint64_t hours = spec_hours(spec);
  if (extension.is_object()) {
    // While an extension waits for its top-up, the payment is the new total.
    payment.amount = payment.amount + eth::Uint256::from_decimal(extension.at("amount").as_string()).value_or(eth::Uint256{});
    hours += spec_hours(extension);
  }
  payment.locked_until = payment_lock(from_unix_seconds(row.integer(13)), hours);
  json::object lease{
      {"id", id},
      {"renter", renter ? renter->to_checksum() : row.text(1)},
      {"provider", provider ? provider->to_checksum() : row.text(2)},
      {"state", row.text(4)},
      {"reason", row.text(5)},
      {"spec", std::move(spec)},
      {"price_hour", row.text(6)},
      {"amount", row.text(7)},
      {"payment", chain::to_json(payment)},
      {"created_at", format_rfc3339(from_unix_seconds(row.integer(12)))},
      {"pay_by", format_rfc3339(from_unix_seconds(row.integer(13)))},
      {"paid_at", row.is_null(14) ? json::value(nullptr) : json::value(format_rfc3339(from_unix_seconds(row.integer(14))))},
      {"endpoints", endpoints},
      {"started_at", row.is_null(19) ? json::value(nullptr) : json::value(format_rfc3339(from_unix_seconds(row.integer(19))))},
      {"ended_at", row.is_null(20) ? json::value(nullptr) : json::value(format_rfc3339(from_unix_seconds(row.integer(20))))},
      {"settlement", settlement},
      {"usage", usage},
      {"extension", extension},
      {"history", std::move(history)},
  };
  if (decorate) decorate(lease);
  return lease;
}

std::vector<std::string> LeaseBook::running_ids() const {
  std::vector<std::string> out;
  if (auto rows = db_.query("SELECT id FROM leases WHERE state = 'running'")) {
    for (const auto& r : *rows) out.push_back(r.text(0));
  }
  return out;
}

Result<json::object> LeaseBook::get(const std::string& id) const {
  auto rows = db_.query("SELECT " + std::string(kColumns) + " FROM leases WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(ErrorCode::kNotFound, "no lease " + id);
  return view(rows->front());
}

Result<json::array> LeaseBook::list_for(const crypto::Address& renter) const {
  auto rows = db_.query("SELECT " + std::string(kColumns) + " FROM leases WHERE renter = ? ORDER BY created_at DESC LIMIT 500",
                        {renter.to_lower_hex()});
  if (!rows) return std::unexpected(rows.error());
  json::array out;
  for (const auto& r : *rows) out.push_back(view(r));
  return out;
}

Result<void> LeaseBook::transition(const std::string& id, std::string_view from, std::string_view to,
                                   const std::string& reason) {
  const auto now = to_unix_seconds(clock_.now());
  auto changed = db_.execute(
      "UPDATE leases SET state = ?, reason = ?, updated_at = ?, paid_at = CASE WHEN ? = 'paid' THEN ? ELSE paid_at END, "
      "started_at = CASE WHEN ? = 'running' THEN ? ELSE started_at END, "
      "ended_at = CASE WHEN ? IN ('ended', 'failed') THEN ? ELSE ended_at END WHERE id = ? AND state = ?",
      {std::string(to), reason, now, std::string(to), now, std::string(to), now, std::string(to), now, id,
       std::string(from)});
  if (!changed) return std::unexpected(changed.error());
  if (*changed == 0) return fail(ErrorCode::kConflict, "lease " + id + " is not " + std::string(from));
  auto logged = db_.execute("INSERT INTO lease_events (lease_id, at, state, reason) VALUES (?, ?, ?, ?)",
                            {id, now, std::string(to), reason});
  if (!logged) return std::unexpected(logged.error());
  const std::string data = json::serialize(json::object{{"lease_id", id}, {"state", to}, {"reason", reason}});
  events_.publish("lease.state", data, id);  // the lease's own stream
  if (on_state_change) on_state_change(id, to);
  return {};
}

std::vector<std::string> LeaseBook::live_on(const std::string& provider_id) const {
  std::vector<std::string> out;
  if (auto rows = db_.query("SELECT id FROM leases WHERE provider = ? AND state IN ('paid', 'deploying', 'running')",
                            {provider_id})) {
    for (const auto& r : *rows) out.push_back(r.text(0));
  }
  return out;
}

std::vector<std::string> LeaseBook::providers_with_paid_leases() const {
  std::vector<std::string> out;
  if (auto rows = db_.query("SELECT DISTINCT provider FROM leases WHERE state = 'paid'")) {
    for (const auto& r : *rows) out.push_back(r.text(0));
  }
  return out;
}

std::vector<std::string> LeaseBook::take_deploys(const std::string& provider_id, bool resend) {
  std::vector<std::string> messages;
  const std::string states = resend ? "('paid', 'deploying', 'running')" : "('paid')";
  auto rows = db_.query("SELECT id, spec, state FROM leases WHERE provider = ? AND state IN " + states, {provider_id});
  if (!rows) return messages;
  for (const auto& r : *rows) {
    boost::system::error_code ec;
    json::value spec = json::parse(r.text(1), ec);
    if (ec || !spec.is_object()) continue;
    json::object lease = spec.as_object();
    lease.erase("offer");
    lease.erase("hours");
    lease["id"] = r.text(0);
    if (r.text(2) == "paid") {
      auto moved = db_.transaction([&]() -> Result<void> {
        return transition(r.text(0), "paid", "deploying", "sent to the provider's agent");
      });
      if (!moved) continue;
    }
    messages.push_back(json::serialize(json::object{{"type", "deploy"}, {"lease", std::move(lease)}}));
  }
  return messages;
}

Result<void> LeaseBook::on_status(const std::string& provider_id, const json::object& message) {
  const json::value* id_v = message.if_contains("lease_id");
  const json::value* state_v = message.if_contains("state");
  if (id_v == nullptr || !id_v->is_string() || state_v == nullptr || !state_v->is_string() ||
      id_v->get_string().size() > 64) {
    return fail(ErrorCode::kInvalidArgument, "lease_status needs lease_id and state");
  }
  const std::string id(id_v->get_string());
  const std::string state(state_v->get_string());
  std::string reason;
  if (const json::value* r = message.if_contains("reason"); r != nullptr && r->is_string()) {
    reason = std::string(r->get_string().subview().substr(0, 500));
  }
  auto rows = db_.query("SELECT provider, state FROM leases WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  // A provider speaks only for its own leases.
  if (rows->empty() || rows->front().text(0) != provider_id) {
    return fail(ErrorCode::kNotFound, "no lease " + id + " on this provider");
  }
  const std::string current = rows->front().text(1);
  if (state == "running") {
    json::array endpoints;
    if (const json::value* e = message.if_contains("endpoints"); e != nullptr && e->is_array()) {
      for (const auto& ep : e->get_array()) {
        if (!ep.is_object() || endpoints.size() >= 32) continue;
        const json::value* port = ep.get_object().if_contains("port");
        const json::value* host_port = ep.get_object().if_contains("host_port");
        if (port == nullptr || host_port == nullptr || !port->is_int64() || !host_port->is_int64() ||
            port->get_int64() < 1 || port->get_int64() > 65535 || host_port->get_int64() < 1 ||
            host_port->get_int64() > 65535) {
          continue;
        }
        endpoints.push_back(json::object{{"port", port->get_int64()}, {"host_port", host_port->get_int64()}});
      }
    }
    return db_.transaction([&]() -> Result<void> {
      auto stored = db_.execute("UPDATE leases SET endpoints = ? WHERE id = ?", {json::serialize(endpoints), id});
      if (!stored) return std::unexpected(stored.error());
      if (current == "running") return {};
      return transition(id, "deploying", "running", reason.empty() ? "the container is running" : reason);
    });
  }
  if (state == "deploying") {
    // Progress while deploying (pulling, creating, starting): the reason says where it is.
    // Each step (the text before a colon) also enters the lease's history once, so whoever
    // polls sees every step even when two come within one poll; pull progress in MiB only
    // updates the reason.
    if (current != "deploying" || reason.empty()) return {};
    auto stored = db_.transaction([&]() -> Result<void> {
      auto updated = db_.execute("UPDATE leases SET reason = ? WHERE id = ? AND state = 'deploying'", {reason, id});
      if (!updated) return std::unexpected(updated.error());
      auto last = db_.query("SELECT reason FROM lease_events WHERE lease_id = ? ORDER BY id DESC LIMIT 1", {id});
      if (!last) return std::unexpected(last.error());
      auto step = [](std::string_view r) { return r.substr(0, r.find(':')); };
      if (!last->empty() && step(last->front().text(0)) == step(reason)) return {};
      auto logged = db_.execute("INSERT INTO lease_events (lease_id, at, state, reason) VALUES (?, ?, 'deploying', ?)",
                                {id, to_unix_seconds(clock_.now()), reason});
      if (!logged) return std::unexpected(logged.error());
      return {};
    });
    if (!stored) return std::unexpected(stored.error());
    events_.publish("lease.state", json::serialize(json::object{{"lease_id", id}, {"state", "deploying"}, {"reason", reason}}),
                    id);
    return {};
  }
  if (state == "failed") {
    if (current != "deploying" && current != "running") return {};
    return finish(id, current, "failed", reason.empty() ? "the provider could not run the container" : reason);
  }
  if (state == "stopped") return {};  // the agent removed the container of an ended lease
  return fail(ErrorCode::kInvalidArgument, "lease_status.state must be running or failed");
}

Result<void> LeaseBook::finish(const std::string& id, std::string_view from, std::string_view to,
                               const std::string& reason) {
  return db_.transaction([&]() -> Result<void> {
    auto rows = db_.query(
        "SELECT l.price_hour, l.amount, l.started_at, l.escrow_lease_id, p.owner, l.spec, l.renter FROM leases l "
        "JOIN providers p ON p.id = l.provider WHERE l.id = ?",
        {id});
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty()) return fail(ErrorCode::kNotFound, "no lease " + id);
    if (auto r = transition(id, from, to, reason); !r) return r;
    const auto& l = rows->front();
    const eth::Uint256 price_hour = eth::Uint256::from_decimal(l.text(0)).value_or(eth::Uint256{});
    const eth::Uint256 amount = eth::Uint256::from_decimal(l.text(1)).value_or(eth::Uint256{});
    // Delivered: the seconds the container ran, never more than was paid for.
    std::uint64_t seconds = 0;
    if (from == "running" && !l.is_null(2)) {
      const auto now = to_unix_seconds(clock_.now());
      seconds = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - l.integer(2)));
      boost::system::error_code ec;
      seconds = std::min(seconds, spec_hours(json::parse(l.text(5), ec)) * 3600);
    }
    eth::Uint256 to_provider = price_hour * seconds;
    (void)to_provider.divmod_small(3600);
    if (to_provider > amount) to_provider = amount;
    const eth::Uint256 to_renter = amount - to_provider;
    const auto owner = crypto::Address::parse(l.text(4)).value_or(crypto::Address{});
    const auto escrow_id = eth::parse_hash(l.text(3)).value_or(Hash32{});
    json::object settlement{{"seconds", seconds},
                            {"to_provider", to_provider.to_decimal()},
                            {"to_renter", to_renter.to_decimal()},
                            {"provider_wallet", owner.to_checksum()},
                            {"outbox_key", "settle:" + to_hex(escrow_id)}};
    auto stored = db_.execute("UPDATE leases SET settlement = ? WHERE id = ?", {json::serialize(settlement), id});
    if (!stored) return std::unexpected(stored.error());
    if (settle) {
      const auto renter = crypto::Address::parse(l.text(6)).value_or(crypto::Address{});
      if (auto r = settle(escrow_id, renter, owner, to_provider, to_renter); !r) return r;
    }
    capacity_changed_of(id);
    return {};
  });
}

void LeaseBook::capacity_changed_of(const std::string& lease_id) {
  // Called inside the transaction that changed the lease: what is held is read under the
  // same write lock, so reports reach the scheduler in order.
  if (!on_capacity_change) return;
  auto rows = db_.query("SELECT provider FROM leases WHERE id = ?", {lease_id});
  if (!rows || rows->empty()) return;
  const std::string provider = rows->front().text(0);
  auto held = reserved_on(provider);
  if (held) on_capacity_change(provider, *held);
}

void LeaseBook::with_held(const std::string& provider_id, const std::function<void(const Reserved&)>& use) {
  (void)db_.transaction([&]() -> Result<void> {
    auto held = reserved_on(provider_id);
    if (!held) return std::unexpected(held.error());
    use(*held);
    return {};
  });
}

Result<Reserved> LeaseBook::reserved_on(const std::string& provider_id) const {
  auto rows = db_.query(
      "SELECT COALESCE(SUM(gpus), 0), COALESCE(SUM(cpu_cores), 0), COALESCE(SUM(memory_gb), 0) FROM leases "
      "WHERE provider = ? AND state IN ('pending_payment', 'paid', 'deploying', 'running')",
      {provider_id});
  if (!rows) return std::unexpected(rows.error());
  const auto& h = rows->front();
  return Reserved{static_cast<std::uint32_t>(h.integer(0)), static_cast<std::uint32_t>(h.integer(1)),
                  static_cast<std::uint64_t>(h.integer(2))};
}

Result<std::pair<json::object, std::string>> LeaseBook::stop(const crypto::Address& renter, const std::string& id) {
  auto rows = db_.query("SELECT renter, state, provider FROM leases WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty() || rows->front().text(0) != renter.to_lower_hex()) {
    return fail(ErrorCode::kNotFound, "no lease " + id.substr(0, 64));
  }
  const std::string state = rows->front().text(1);
  if (state == "pending_payment") {
    // Cancelled before paying: the capacity is free again. Whatever the renter deposited
    // already stays in its own escrow record until the record's lock passes; then the renter
    // reclaims it (OneNode pays no gas for unpaid leases, docs/renters.md).
    auto cancelled = db_.transaction([&]() -> Result<void> {
      auto changed = transition(id, "pending_payment", "failed", "cancelled by the renter before paying");
      if (!changed) return changed;
      capacity_changed_of(id);
      return {};
    });
    if (!cancelled) return std::unexpected(cancelled.error());
    auto lease = get(id);
    if (!lease) return std::unexpected(lease.error());
    return std::pair{std::move(*lease), std::string{}};
  }
  if (state != "paid" && state != "deploying" && state != "running") {
    return fail(ErrorCode::kConflict, "lease " + id + " is " + state + "; only a live lease can be stopped");
  }
  if (auto r = finish(id, state, "ended", "stopped by the renter"); !r) return std::unexpected(r.error());
  auto lease = get(id);
  if (!lease) return std::unexpected(lease.error());
  return std::pair{std::move(*lease), state == "paid" ? std::string{} : rows->front().text(2)};
}

Result<json::object> LeaseBook::extend(const crypto::Address& renter, const std::string& id, std::uint32_t hours) {
  if (hours == 0 || hours > 24 * 366) return fail(ErrorCode::kInvalidArgument, "hours must be from 1 to 8784");
  auto tx = db_.transaction([&]() -> Result<void> {
    auto rows = db_.query("SELECT renter, state, price_hour, amount FROM leases WHERE id = ?", {id});
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty() || rows->front().text(0) != renter.to_lower_hex()) {
      return fail(ErrorCode::kNotFound, "no lease " + id.substr(0, 64));
    }
    const auto& l = rows->front();
    const std::string state = l.text(1);
    if (state != "paid" && state != "deploying" && state != "running") {
      return fail(ErrorCode::kConflict, "lease " + id + " is " + state + "; only a paid or running lease can be extended");
    }
    const eth::Uint256 price_hour = eth::Uint256::from_decimal(l.text(2)).value_or(eth::Uint256{});
    const eth::Uint256 more = price_hour * hours;
    const eth::Uint256 total = eth::Uint256::from_decimal(l.text(3)).value_or(eth::Uint256{}) + more;
    if (total.bit_length() > 88) return fail(ErrorCode::kInvalidArgument, "the lease would cost more than the escrow can hold");
    auto stored = db_.execute("UPDATE leases SET extension = ? WHERE id = ?",
                              {json::serialize(json::object{{"hours", hours}, {"amount", more.to_decimal()}}), id});
    if (!stored) return std::unexpected(stored.error());
    return {};
  });
  if (!tx) return std::unexpected(tx.error());
  return get(id);
}

Result<void> LeaseBook::on_usage(const std::string& provider_id, const json::object& message) {
  const json::value* id_v = message.if_contains("lease_id");
  if (id_v == nullptr || !id_v->is_string() || id_v->get_string().size() > 64) {
    return fail(ErrorCode::kInvalidArgument, "lease_usage needs lease_id");
  }
  const std::string id(id_v->get_string());
  auto rows = db_.query("SELECT provider, state, started_at, price_hour FROM leases WHERE id = ?", {id});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty() || rows->front().text(0) != provider_id) {
    return fail(ErrorCode::kNotFound, "no lease " + id + " on this provider");
  }
  const auto& l = rows->front();
  if (l.text(1) != "running" || l.is_null(2)) return {};
  auto number = [&](std::string_view key) -> std::uint64_t {
    const json::value* v = message.if_contains(key);
    if (v != nullptr && v->is_uint64()) return v->get_uint64();
    if (v != nullptr && v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
    return 0;
  };
  const auto now = to_unix_seconds(clock_.now());
  const auto seconds = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - l.integer(2)));
  eth::Uint256 cost = eth::Uint256::from_decimal(l.text(3)).value_or(eth::Uint256{}) * seconds;
  (void)cost.divmod_small(3600);
  json::object usage{{"at", format_rfc3339(clock_.now())},
                     {"seconds", seconds},
                     {"cpu_ns", number("cpu_ns")},
                     {"memory_bytes", number("memory_bytes")},
                     {"network_rx_bytes", number("network_rx_bytes")},
                     {"network_tx_bytes", number("network_tx_bytes")},
                     {"cost_so_far", cost.to_decimal()}};
  // GPUs (where the provider has NVML): each one's utilisation and memory, and their mean.
  if (const json::value* gpus = message.if_contains("gpus"); gpus != nullptr && gpus->is_array()) {
    json::array kept;
    std::uint64_t total = 0;
    for (const auto& g : gpus->get_array()) {
      if (kept.size() == 64 || !g.is_object()) break;
      const json::object& o = g.get_object();
      const json::value* uuid = o.if_contains("uuid");
      const json::value* percent = o.if_contains("utilization_percent");
      const json::value* memory = o.if_contains("memory_used_bytes");
      if (uuid == nullptr || !uuid->is_string() || uuid->get_string().size() > 96 || percent == nullptr ||
          !percent->is_int64() || percent->get_int64() < 0 || percent->get_int64() > 100) {
        continue;
      }
      total += static_cast<std::uint64_t>(percent->get_int64());
      kept.push_back(json::object{{"uuid", uuid->get_string()},
                                  {"utilization_percent", percent->get_int64()},
                                  {"memory_used_bytes", u64(memory)}});
    }
    if (!kept.empty()) {
      usage["gpu_utilization_percent"] = static_cast<double>(total) / static_cast<double>(kept.size());
      usage["gpus"] = std::move(kept);
    }
  }
  const std::string text = json::serialize(usage);
  auto stored = db_.execute("UPDATE leases SET usage = ? WHERE id = ?", {text, id});
  if (!stored) return std::unexpected(stored.error());
  events_.publish("lease.usage", text, id);
  return {};
}

void LeaseBook::fail_deploying(const std::string& provider_id, const std::string& reason) {
  auto rows = db_.query("SELECT id FROM leases WHERE provider = ? AND state = 'deploying'", {provider_id});
  if (!rows) return;
  for (const auto& r : *rows) (void)finish(r.text(0), "deploying", "failed", reason);
}

std::vector<std::pair<std::string, std::string>> LeaseBook::expire_running() {
  std::vector<std::pair<std::string, std::string>> out;
  const auto now = clock_.now();
  auto rows = db_.query(
      "SELECT id, provider, started_at, spec, pay_by FROM leases WHERE state = 'running' AND started_at IS NOT NULL");
  if (!rows) return out;
  for (const auto& r : *rows) {
    boost::system::error_code ec;
    const auto hours = spec_hours(json::parse(r.text(3), ec));
    const auto paid_end = from_unix_seconds(r.integer(2)) + std::chrono::hours{static_cast<std::int64_t>(hours)};
    // A lease that started late still ends well before the renter's record unlocks, so its
    // settlement lands while the escrow still holds the deposit.
    const auto lock = payment_lock(from_unix_seconds(r.integer(4)), hours);
    if (paid_end > now && lock - kSettleMargin / 2 > now) continue;
    if (finish(r.text(0), "running", "ended", "the paid time is over")) out.emplace_back(r.text(1), r.text(0));
  }
  return out;
}

std::size_t LeaseBook::expire_unpaid(
    const std::function<Result<chain::EscrowRecord>(const Hash32&, const crypto::Address&)>& renters_record) {
  const auto now = to_unix_seconds(clock_.now());
  auto rows = db_.query(
      "SELECT id, escrow_lease_id, renter, amount, pay_by, spec FROM leases WHERE state = 'pending_payment' AND pay_by < ?",
      {now});
  if (!rows) return 0;
  std::size_t n = 0;
  for (const auto& r : *rows) {
    const auto escrow_id = eth::parse_hash(r.text(1));
    const auto renter = crypto::Address::parse(r.text(2));
    if (!escrow_id || !renter) continue;
    const auto record = renters_record(*escrow_id, *renter);
    if (!record) continue;  // cannot tell now: asked again next round
    boost::system::error_code ec;
    const json::value spec = json::parse(r.text(5), ec);
    const auto due = eth::Uint256::from_decimal(r.text(3)).value_or(eth::Uint256{});
    if (record_pays(*record, due, payment_lock(from_unix_seconds(r.integer(4)), spec_hours(spec)))) {
      continue;  // paid in time and not indexed yet
    }
    auto done = db_.transaction([&]() -> Result<void> {
      auto changed = transition(r.text(0), "pending_payment", "failed",
                                "not paid in full in time; the capacity is free again and any deposit can be "
                                "reclaimed from the escrow after its lock");
      if (changed) capacity_changed_of(r.text(0));
      return changed;
    });
    if (done) ++n;
  }
  return n;
}

Result<void> LeaseBook::apply(const eth::Log& log) {
  if (ledger_ != nullptr) {
    if (auto r = ledger_->apply(log); !r) return r;
  }
  auto event = chain::decode_escrow_event(log);
  if (!event || !*event) return {};
  const chain::EscrowEvent& e = **event;
  if (e.kind != chain::EscrowEvent::Kind::kDeposited && e.kind != chain::EscrowEvent::Kind::kToppedUp) return {};
  auto rows = db_.query("SELECT id, renter, amount, state, escrow, pay_by, spec FROM leases WHERE escrow_lease_id = ?",
                        {to_hex(e.lease_id)});
  if (!rows) return std::unexpected(rows.error());
  // Money for no lease of ours, for a lease that already failed, or from anyone but the
  // renter: it is the depositor's own record, which the depositor reclaims after its lock.
  // Nothing here spends the operator's gas.
  if (rows->empty()) return {};
  const auto& lease = rows->front();
  if (crypto::Address::parse(lease.text(1)).value_or(crypto::Address{}) != e.renter) return {};
  if (crypto::Address::parse(lease.text(4)).value_or(crypto::Address{}) != log.address) return {};  // another escrow
  const std::string state = lease.text(3);
  if (state == "paid" || state == "deploying" || state == "running") return apply_extension(lease.text(0), e);
  if (state != "pending_payment" || ledger_ == nullptr) return {};
  auto funds = ledger_->funds(e.lease_id, e.renter);
  if (!funds || !*funds) return {};
  const chain::LeaseFunds& f = **funds;
  boost::system::error_code ec;
  const json::value spec = json::parse(lease.text(6), ec);
  const auto due = eth::Uint256::from_decimal(lease.text(2)).value_or(eth::Uint256{});
  const chain::EscrowRecord record{f.deposited, f.settled     ? chain::EscrowRecord::State::kSettled
                                                : f.reclaimed ? chain::EscrowRecord::State::kReclaimed
                                                              : chain::EscrowRecord::State::kOpen,
                                   f.locked_until};
  if (!record_pays(record, due, payment_lock(from_unix_seconds(lease.integer(5)), spec_hours(spec)))) return {};
  const std::string id = lease.text(0);
  if (auto r = transition(id, "pending_payment", "paid",
                          "deposits of " + f.deposited.to_decimal() + " by the renter, the last in " + to_hex(e.tx_hash));
      !r) {
    return r;
  }
  auto block = db_.execute("UPDATE leases SET paid_block = ? WHERE id = ?",
                           {static_cast<std::int64_t>(e.block_number), id});
  if (!block) return std::unexpected(block.error());
  return {};
}

Result<void> LeaseBook::apply_extension(const std::string& id, const chain::EscrowEvent& e) {
  auto rows = db_.query("SELECT amount, extension, spec, renter, pay_by FROM leases WHERE id = ?", {id});
  if (!rows || rows->empty() || rows->front().is_null(1) || ledger_ == nullptr) return {};
  const auto& l = rows->front();
  if (crypto::Address::parse(l.text(3)).value_or(crypto::Address{}) != e.renter) return {};
  boost::system::error_code ec;
  json::value ext = json::parse(l.text(1), ec);
  json::value spec = json::parse(l.text(2), ec);
  if (!ext.is_object() || !spec.is_object()) return {};
  const eth::Uint256 amount = eth::Uint256::from_decimal(l.text(0)).value_or(eth::Uint256{});
  const eth::Uint256 more = eth::Uint256::from_decimal(ext.at("amount").as_string()).value_or(eth::Uint256{});
  auto funds = ledger_->funds(e.lease_id, e.renter);
  if (!funds || !*funds) return {};
  const chain::EscrowRecord record{(*funds)->deposited, chain::EscrowRecord::State::kOpen, (*funds)->locked_until};
  if (!record_pays(record, amount + more, payment_lock(from_unix_seconds(l.integer(4)), spec_hours(spec) + spec_hours(ext)))) {
    return {};  // not all of it yet, or not locked for the longer lease
  }
  const auto hours = ext.at("hours").to_number<std::int64_t>();
  spec.as_object()["hours"] = spec.at("hours").to_number<std::int64_t>() + hours;
  const auto now = to_unix_seconds(clock_.now());
  auto updated = db_.execute("UPDATE leases SET amount = ?, spec = ?, extension = NULL, updated_at = ? WHERE id = ?",
                             {(amount + more).to_decimal(), json::serialize(spec), now, id});
  if (!updated) return std::unexpected(updated.error());
  const std::string reason = "extended by " + std::to_string(hours) + " h (top-up in " + to_hex(e.tx_hash) + ")";
  auto state = db_.query("SELECT state FROM leases WHERE id = ?", {id});
  const std::string current = state && !state->empty() ? state->front().text(0) : std::string("running");
  auto logged = db_.execute("INSERT INTO lease_events (lease_id, at, state, reason) VALUES (?, ?, ?, ?)",
                            {id, now, current, reason});
  if (!logged) return std::unexpected(logged.error());
  events_.publish("lease.state", json::serialize(json::object{{"lease_id", id}, {"state", current}, {"reason", reason}}), id);
  return {};
}

Result<void> LeaseBook::rewind(std::uint64_t first_block) {
  if (ledger_ != nullptr) {
    if (auto r = ledger_->rewind(first_block); !r) return r;
  }
  auto rows = db_.query("SELECT id FROM leases WHERE state = 'paid' AND paid_block >= ?",
                        {static_cast<std::int64_t>(first_block)});
  if (!rows) return std::unexpected(rows.error());
  for (const auto& r : *rows) {
    if (auto t = transition(r.text(0), "paid", "pending_payment", "the block with the deposit was reorganized away"); !t) {
      return t;
    }
  }
  return {};
}

}  // namespace kaisar::onenode
