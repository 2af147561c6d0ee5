#include "onenode/control.hpp"

#include "eth/uint256.hpp"

#include <boost/json.hpp>

#include "core/protocol.hpp"
#include "crypto/eip191.hpp"
#include "crypto/random.hpp"

namespace kaisar::onenode {

namespace json = boost::json;

namespace {

// Per-session state; touched only from the session's callbacks (one at a time).
struct AgentSession {
  std::atomic<bool> authenticated{false};
  std::string nonce;
  std::shared_ptr<Liveness> live;
  std::string remote_ip;
  std::string provider_id;  // lower-case, once authenticated
};

std::string error_message(std::string_view code, std::string_view message) {
  return json::serialize(json::object{{"type", "error"}, {"code", code}, {"message", message}});
}

const json::string* get_string(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? &it->value().get_string() : nullptr;
}

std::uint64_t get_uint(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_uint64()) return it->value().get_uint64();
  if (it->value().is_int64() && it->value().get_int64() >= 0) return static_cast<std::uint64_t>(it->value().get_int64());
  return 0;
}

}  // namespace

Result<NodeHello> verify_node_hello(const json::object& o, std::string_view nonce, BindingText binding_text,
                                    std::string_view binding_name) {
  auto bad = [](std::string m) { return fail(ErrorCode::kInvalidArgument, std::move(m)); };
  auto v = o.find("v");
  if (v == o.end() || !v->value().is_int64() || v->value().get_int64() != protocol::kVersion) {
    return bad("hello.v must be " + std::to_string(protocol::kVersion));
  }
  const auto* node_s = get_string(o, "node");
  const auto* sig_s = get_string(o, "signature");
  if (node_s == nullptr || sig_s == nullptr) return bad("hello needs node and signature strings");
  auto node = crypto::Address::parse(*node_s);
  if (!node) return bad("hello.node: " + node.error().message);
  auto sig = crypto::Signature::parse(*sig_s);
  if (!sig) return bad("hello.signature: " + sig.error().message);
  auto signer = crypto::recover_personal_signer(protocol::auth_message(nonce), *sig);
  if (!signer || *signer != *node) return fail(ErrorCode::kUnauthenticated, "hello.signature is not the node key's");

  auto b = o.find("binding");
  if (b == o.end() || !b->value().is_object()) return bad("hello.binding must be an object");
  const auto& binding = b->value().get_object();
  const auto* owner_s = get_string(binding, "owner");
  const auto* issued_s = get_string(binding, "issued_at");
  const auto* bsig_s = get_string(binding, "signature");
  if (owner_s == nullptr || issued_s == nullptr || bsig_s == nullptr) {
    return bad("hello.binding needs owner, issued_at and signature");
  }
  auto owner = crypto::Address::parse(*owner_s);
  if (!owner) return bad("hello.binding.owner: " + owner.error().message);
  if (!parse_rfc3339(*issued_s)) return bad("hello.binding.issued_at must be RFC 3339");
  auto bsig = crypto::Signature::parse(*bsig_s);
  if (!bsig) return bad("hello.binding.signature: " + bsig.error().message);
  auto bsigner = crypto::recover_personal_signer(binding_text(node->to_checksum(), owner->to_checksum(), *issued_s), *bsig);
  if (!bsigner || *bsigner != *owner) {
    return fail(ErrorCode::kUnauthenticated,
                "hello.binding.signature is not the owner wallet's " + std::string(binding_name));
  }
  return NodeHello{*node, *owner, std::string(*issued_s), std::string(*bsig_s)};
}

namespace {

Result<Registration> parse_hello(const json::object& o, const std::string& nonce, const std::string& remote_ip) {
  auto bad = [](std::string m) { return fail(ErrorCode::kInvalidArgument, std::move(m)); };
  auto bound = verify_node_hello(o, nonce, protocol::binding_message, "binding");
  if (!bound) return std::unexpected(bound.error());

  auto hw = o.find("hardware");
  if (hw == o.end()) return bad("hello.hardware is required");
  auto hardware = Hardware::from_json(hw->value());
  if (!hardware) return std::unexpected(hardware.error());

  Registration reg;
  reg.node = bound->node;
  reg.owner = bound->owner;
  reg.binding_signature = std::move(bound->binding_signature);
  reg.binding_issued_at = std::move(bound->issued_at);
  reg.hardware = std::move(*hardware);
  if (const auto* region = get_string(o, "region"); region != nullptr && !region->empty()) {
    if (region->size() > 64) return bad("hello.region is too long");
    reg.region = std::string(*region);
  }
  if (const auto* version = get_string(o, "agent_version"); version != nullptr) {
    reg.agent_version = std::string(version->subview().substr(0, 64));
  }
  if (auto images = o.find("images"); images != o.end()) {
    if (!images->value().is_array() || images->value().get_array().size() > 1024) {
      return bad("hello.images must be an array of at most 1024 image names");
    }
    std::vector<std::string> list;
    for (const auto& i : images->value().get_array()) {
      if (!i.is_string() || i.get_string().empty() || i.get_string().size() > 255) {
        return bad("hello.images must hold image names of at most 255 bytes");
      }
      list.emplace_back(i.get_string());
    }
    reg.images = std::move(list);
  }
  if (auto p = o.find("prices"); p != o.end()) {
    if (!p->value().is_object()) return bad("hello.prices must be an object");
    json::object prices;
    for (const char* key : {"gpu_hour", "cpu_core_hour", "ram_gb_hour"}) {
      const auto* price_text = get_string(p->value().get_object(), key);
      if (price_text == nullptr || price_text->size() > 40) {
        return bad(std::string("hello.prices.") + key + " must be a decimal string of token base units");
      }
      auto amount = eth::Uint256::from_decimal(*price_text);
      if (!amount) return bad(std::string("hello.prices.") + key + ": " + amount.error().message);
      prices[key] = amount->to_decimal();
    }
    reg.prices = std::move(prices);
  }
  reg.remote_ip = remote_ip;
  return reg;
}
}  // namespace

ControlChannel::ControlChannel(ProviderRegistry& registry, Metrics& metrics, std::chrono::seconds heartbeat_interval,
                               std::chrono::seconds handshake_timeout)
    : registry_(registry),
      heartbeat_interval_(heartbeat_interval),
      handshake_timeout_(handshake_timeout),
      rejected_(metrics.counter("kaisar_agent_sessions_rejected_total",
                                "Agent control sessions closed for a protocol or authentication error.")) {}

std::optional<net::Response> ControlChannel::accept(net::Request& request,
                                                    std::shared_ptr<net::WebSocketSession> session) {
  auto state = std::make_shared<AgentSession>();
  state->nonce = crypto::random_token(16);
  state->remote_ip = request.remote_ip;
  std::weak_ptr<net::WebSocketSession> weak = session;
  connected_.fetch_add(1, std::memory_order_relaxed);

  session->on_message([this, state, weak](std::string_view text) {
    auto s = weak.lock();
    if (!s) return;
    auto reject = [&](std::string_view code, std::string_view message) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      s->send(error_message(code, message));
      s->close(message.substr(0, 100));
    };
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return reject("invalid_argument", "message is not a JSON object");
    const auto& o = v.get_object();
    const auto* type = get_string(o, "type");
    if (type == nullptr) return reject("invalid_argument", "message has no type");

    if (state->live) {
      if (*type == "heartbeat") {
        Availability a;
        if (auto av = o.find("available"); av != o.end() && av->value().is_object()) {
          const auto& ao = av->value().get_object();
          a.gpus = static_cast<std::uint32_t>(std::min<std::uint64_t>(get_uint(ao, "gpus"), 1u << 16));
          a.cpu_cores = static_cast<std::uint32_t>(std::min<std::uint64_t>(get_uint(ao, "cpu_cores"), 1u << 20));
          a.ram_bytes = get_uint(ao, "ram_bytes");
        }
        registry_.heartbeat(*state->live, a);
        s->send(json::serialize(json::object{{"type", "ack"}, {"seq", get_uint(o, "seq")}}));
        return;
      }
      if (*type == "lease_status") {
        if (on_lease_status) on_lease_status(state->provider_id, o);
        return;
      }
      if (*type == "lease_usage") {
        if (on_lease_usage) on_lease_usage(state->provider_id, o);
        return;
      }
      if (*type == "popw") {
        if (on_popw) on_popw(state->provider_id, o);
        return;
      }
      if (*type == "log" || *type == "log_end") {
        relay_log(state->provider_id, o, *type == "log_end");
        return;
      }
      return reject("invalid_argument", "unknown message type");
    }
    if (*type != "hello") return reject("unauthenticated", "the first message must be hello");
    auto reg = parse_hello(o, state->nonce, state->remote_ip);
    if (!reg) return reject(error_code_name(reg.error().code), reg.error().message);
    auto live = registry_.connect(*reg);
    if (!live) return reject(error_code_name(live.error().code), live.error().message);
    state->live = *live;
    state->nonce.clear();  // single use
    state->provider_id = reg->node.to_lower_hex();
    state->authenticated.store(true);
    s->lift_message_limit();  // PoPW answers are megabytes; before the hello, nothing is
    json::array leases;
    if (live_leases) {
      for (auto& id : live_leases(state->provider_id)) leases.push_back(json::value(id));
    }
    json::object welcome{{"type", "welcome"},
                         {"v", protocol::kVersion},
                         {"provider_id", reg->node.to_checksum()},
                         {"heartbeat_interval_s", heartbeat_interval_.count()},
                         {"leases", std::move(leases)}};
    if (gateway) {
      if (auto g = gateway(); !g.is_null()) welcome["gateway"] = std::move(g);
    }
    s->send(json::serialize(welcome));
    {
      std::lock_guard lock(sessions_mutex_);
      sessions_[state->provider_id] = s;
    }
    if (on_agent_online) on_agent_online(state->provider_id);
  });
  session->on_close([this, state, weak] {
    connected_.fetch_sub(1, std::memory_order_relaxed);
    if (state->provider_id.empty()) return;
    bool current = false;
    {
      std::lock_guard lock(sessions_mutex_);
      auto it = sessions_.find(state->provider_id);
      // The session that closed is the provider's current one (or already gone).
      if (it != sessions_.end() && !it->second.owner_before(weak) && !weak.owner_before(it->second)) {
        sessions_.erase(it);
        current = true;
      }
    }
    if (current && on_agent_offline) on_agent_offline(state->provider_id);
  });

  session->send(json::serialize(json::object{{"type", "challenge"}, {"v", protocol::kVersion}, {"nonce", state->nonce}}));
  {
    std::lock_guard lock(pending_mutex_);
    pending_.push_back({session, state, std::chrono::steady_clock::now() + handshake_timeout_});
  }
  return std::nullopt;
}

void ControlChannel::broadcast(const std::string& text) {
  std::vector<std::shared_ptr<net::WebSocketSession>> all;
  {
    std::lock_guard lock(sessions_mutex_);
    for (const auto& [id, weak] : sessions_) {
      if (auto s = weak.lock()) all.push_back(std::move(s));
    }
  }
  for (auto& s : all) s->send(text);
}

bool ControlChannel::send_to(const std::string& provider_id, const std::string& text) {
  std::shared_ptr<net::WebSocketSession> s;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(provider_id);
    if (it == sessions_.end()) return false;
    s = it->second.lock();
    if (!s) {
      sessions_.erase(it);
      return false;
    }
  }
  s->send(text);
  return true;
}

std::optional<net::Response> ControlChannel::stream_logs(const std::string& provider_id, const std::string& renter,
                                         const std::string& lease_id, bool follow, std::shared_ptr<net::SseStream> stream) {
  const std::string request_id = crypto::random_token(12);
  {
    std::lock_guard lock(logs_mutex_);
    if (log_requests_.size() >= log_limits.total) {
      return net::Response::error(ErrorCode::kUnavailable, "OneNode relays its maximum of " +
                                                               std::to_string(log_limits.total) + " log streams: retry later");
    }
    std::size_t of_renter = 0;
    std::size_t of_lease = 0;
    for (const auto& [id, r] : log_requests_) {
      if (r.renter == renter) ++of_renter;
      if (r.lease_id == lease_id) ++of_lease;
    }
    if (of_lease >= log_limits.per_lease) {
      return net::too_many_requests("lease " + lease_id + " has " + std::to_string(of_lease) +
                                    " log streams open (at most " + std::to_string(log_limits.per_lease) + "): close one first");
    }
    if (of_renter >= log_limits.per_renter) {
      return net::too_many_requests("you have " + std::to_string(of_renter) + " log streams open (at most " +
                                    std::to_string(log_limits.per_renter) + "): close one first");
    }
    log_requests_[request_id] = LogRequest{provider_id, stream, renter, lease_id};
  }
  stream->on_close([this, provider_id, request_id] {
    bool was_open = false;
    {
      std::lock_guard lock(logs_mutex_);
      was_open = log_requests_.erase(request_id) > 0;
    }
    // The renter went away: the agent stops reading.
    if (was_open) send_to(provider_id, json::serialize(json::object{{"type", "logs_stop"}, {"request_id", request_id}}));
  });
  const bool sent = send_to(provider_id, json::serialize(json::object{{"type", "logs"},
                                                                      {"lease_id", lease_id},
                                                                      {"request_id", request_id},
                                                                      {"follow", follow}}));
  if (!sent) {
    std::lock_guard lock(logs_mutex_);
    log_requests_.erase(request_id);
    return net::Response::error(ErrorCode::kUnavailable, "the provider's agent is not connected");
  }
  return std::nullopt;
}

void ControlChannel::relay_log(const std::string& provider_id, const json::object& message, bool end) {
  const auto* request_id = get_string(message, "request_id");
  if (request_id == nullptr) return;
  std::shared_ptr<net::SseStream> stream;
  {
    std::lock_guard lock(logs_mutex_);
    auto it = log_requests_.find(std::string(*request_id));
    // Only the provider that was asked may answer.
    if (it == log_requests_.end() || it->second.provider_id != provider_id) return;
    stream = it->second.stream.lock();
    if (end || !stream) log_requests_.erase(it);
  }
  if (!stream) return;
  if (end) {
    stream->send("end", "{}");
    stream->close();
    return;
  }
  const auto* data = get_string(message, "data");
  const auto* which = get_string(message, "stream");
  if (data == nullptr || data->size() > 65536) return;
  stream->send("log", json::serialize(json::object{{"stream", which != nullptr ? json::value(*which) : json::value("stdout")},
                                                   {"data", *data}}));
}

bool ControlChannel::has_session(const std::string& provider_id) {
  std::lock_guard lock(sessions_mutex_);
  auto it = sessions_.find(provider_id);
  return it != sessions_.end() && !it->second.expired();
}

void ControlChannel::sweep() {
  std::vector<std::shared_ptr<net::WebSocketSession>> expired;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(pending_mutex_);
    std::erase_if(pending_, [&](const Pending& p) {
      if (p.deadline > now) return false;
      auto state = std::static_pointer_cast<AgentSession>(p.state);
      if (auto s = p.session.lock(); s && !state->authenticated.load()) expired.push_back(std::move(s));
      return true;
    });
  }
  for (auto& s : expired) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    s->send(error_message("unauthenticated", "no hello within the handshake timeout"));
    s->close("handshake timeout");
  }
}

}  // namespace kaisar::onenode
