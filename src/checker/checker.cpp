#include "checker/checker.hpp"

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <map>

#include "core/json_fields.hpp"
#include "core/protocol.hpp"
#include "net/client.hpp"
#include "net/redial.hpp"
#include "popw/attestation.hpp"
#include "popw/session.hpp"

namespace kaisar::checker {

namespace asio = boost::asio;
namespace json = boost::json;

struct Checker::Impl {
  Impl(CheckerOptions o, provider::ProviderIdentity i) : options(std::move(o)), identity(std::move(i)) {}
  CheckerOptions options;
  provider::ProviderIdentity identity;
  asio::io_context io;
  asio::steady_timer wake{io};
  std::shared_ptr<net::WebSocketClient> client;
  bool stopping = false;
};

Checker::Checker(CheckerOptions options, provider::ProviderIdentity identity)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(identity))) {}

Checker::~Checker() { stop(); }

namespace {

// One assigned check in flight.
struct Running {
  popw::CheckerSession session;
  crypto::Address provider;
  std::uint64_t epoch = 0;
};

}  // namespace

void Checker::run() {
  Impl& s = *impl_;
  auto say = [this](const std::string& line) {
    if (log) log(line);
  };

  auto session = [this, &s, say]() -> asio::awaitable<Result<void>> {
    if (auto secure = net::require_secure_channel(s.options.onenode_url, s.options.insecure_dev); !secure) {
      co_return std::unexpected(secure.error());
    }
    auto connected = co_await net::WebSocketClient::connect(
        s.io.get_executor(), net::websocket_url(s.options.onenode_url, protocol::kCheckerConnectPath));
    if (!connected) co_return std::unexpected(connected.error());
    auto client = *connected;
    s.client = client;
    if (s.stopping) {
      client->close();
      co_return Result<void>{};
    }
    auto challenge_text = co_await client->read();
    if (!challenge_text) co_return std::unexpected(challenge_text.error());
    auto challenge = parse_json_message(*challenge_text, "OneNode");
    if (!challenge) co_return std::unexpected(challenge.error());
    const std::string nonce = string_field(*challenge, "nonce");
    if (string_field(*challenge, "type") != "challenge" || nonce.empty()) {
      co_return fail(ErrorCode::kInvalidArgument, "OneNode did not send a challenge");
    }
    const crypto::Address me = s.identity.node_key.address();
    client->send(json::serialize(provider::signed_hello(s.identity, nonce)));
    auto welcome_text = co_await client->read();
    if (!welcome_text) co_return std::unexpected(welcome_text.error());
    auto welcome = parse_json_message(*welcome_text, "OneNode");
    if (!welcome) co_return std::unexpected(welcome.error());
    if (string_field(*welcome, "type") != "welcome") {
      co_return fail(ErrorCode::kUnauthenticated, "OneNode refused the checker: " + string_field(*welcome, "message"));
    }
    auto contract = crypto::Address::parse(string_field(*welcome, "verifying_contract"));
    if (!contract) co_return fail(ErrorCode::kUnavailable, "OneNode has no chain: attestations cannot be signed");
    const popw::AttestationDomain domain{uint_field(*welcome, "chain_id"), *contract};
    online_.store(true);
    sessions_.fetch_add(1);
    say("online as checker " + me.to_checksum() + " (wallet " + s.identity.owner.to_checksum() + ")");

    std::map<std::string, Running> running;
    auto attest = [&](const std::string& check_id, const crypto::Address& provider, std::uint64_t epoch,
                      const popw::Evidence& evidence, const popw::Verdict& verdict) {
      popw::Attestation a;
      a.provider = provider;
      a.checker = me;
      a.epoch = epoch;
      a.check_id = from_hex_fixed<32>(check_id).value_or(Hash32{});
      a.seed = from_hex_fixed<32>(evidence.seed_hex()).value_or(Hash32{});
      a.root = from_hex_fixed<32>(evidence.root_hex()).value_or(Hash32{});
      a.ops_per_second = verdict.ops_per_second;
      a.memory_bytes = evidence.params().memory_bytes;
      a.memory_passed = verdict.memory_ok;
      a.passed = s.options.dishonest ? !verdict.passed : verdict.passed;
      auto sig = popw::sign_attestation(s.identity.node_key, a, domain);
      if (!sig) return;
      say("check " + check_id.substr(0, 10) + "… of " + provider.to_checksum() + ": " +
          (a.passed ? "passed" : "failed") + " (" + verdict.reason + ")");
      client->send(json::serialize(json::object{{"type", "attestation"},
                                                {"check_id", check_id},
                                                {"attestation", popw::to_json(a)},
                                                {"signature", sig->to_hex()}}));
    };

    for (;;) {
      auto text = co_await client->read();
      if (!text) {
        online_.store(false);
        co_return std::unexpected(text.error());
      }
      auto msg = parse_json_message(*text, "OneNode");
      if (!msg) continue;
      const std::string type = string_field(*msg, "type");
      const std::string check_id = string_field(*msg, "check_id");
      if (type == "error") {
        online_.store(false);
        co_return fail(ErrorCode::kUnavailable, "OneNode closed the channel: " + string_field(*msg, "message"));
      }
      if (type == "assignment") {
        auto params = popw::check_params_from_json(msg->contains("params") ? msg->at("params") : json::value());
        auto provider = crypto::Address::parse(string_field(*msg, "provider"));
        if (!params || !provider || check_id.size() != 66) continue;
        Running r{popw::CheckerSession(*params), *provider, uint_field(*msg, "epoch")};
        json::object first = r.session.start();
        running.emplace(check_id, std::move(r));
        client->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", std::move(first)}}));
      } else if (type == "popw") {
        auto it = running.find(check_id);
        const json::value* message = msg->if_contains("message");
        if (it == running.end() || message == nullptr || !message->is_object()) continue;
        auto next = it->second.session.on_answer(message->get_object());
        if (next && *next) {
          client->send(json::serialize(json::object{{"type", "popw"}, {"check_id", check_id}, {"message", std::move(**next)}}));
          continue;
        }
        // Over: finished, or the provider broke the protocol (a failed check either way).
        auto verdict = it->second.session.verdict();
        popw::Verdict v = verdict ? *verdict : popw::Verdict{};
        if (!next) v.reason = next.error().message;
        else if (!verdict) v.reason = verdict.error().message;
        attest(check_id, it->second.provider, it->second.epoch, it->second.session.evidence(), v);
        running.erase(it);
      } else if (type == "verify") {
        // A second opinion on evidence another checker gathered.
        auto evidence = popw::Evidence::from_json(msg->contains("evidence") ? msg->at("evidence") : json::value());
        auto provider = crypto::Address::parse(string_field(*msg, "provider"));
        if (!evidence || !provider) continue;
        auto verdict = popw::judge(*evidence);
        popw::Verdict v = verdict ? *verdict : popw::Verdict{};
        if (!verdict) v.reason = verdict.error().message;
        attest(check_id, *provider, uint_field(*msg, "epoch"), *evidence, v);
      } else if (type == "expired") {
        running.erase(check_id);
      } else if (type == "attested") {
        attested_.fetch_add(1);
      } else if (type == "refused") {
        refused_.fetch_add(1);
        running.erase(check_id);
        say("OneNode refused the attestation of " + check_id.substr(0, 10) + "…: " + string_field(*msg, "message"));
      }
    }
  };

  auto redial = [this, &s, session, say]() -> asio::awaitable<void> {
    // Named first: GCC 12 mishandles temporaries in co_await expressions.
    const net::RedialOptions options{s.options.initial_backoff, s.options.max_backoff};
    auto stopping = [&s] { return s.stopping; };
    auto ups = [this] { return sessions_.load(); };
    auto down = [this, say](const Result<void>& r, std::chrono::milliseconds delay) {
      online_.store(false);
      say("checker channel down (" + (r ? std::string("closed") : r.error().message) + "); reconnecting in " +
          std::to_string(delay.count()) + " ms");
    };
    co_await net::redial(s.wake, options, stopping, ups, session, down);
  };
  asio::co_spawn(s.io, redial(), asio::detached);
  s.io.run();
}

void Checker::stop() {
  Impl& s = *impl_;
  asio::post(s.io, [&s] {
    s.stopping = true;
    s.wake.cancel();
    if (s.client) s.client->close();
  });
}

}  // namespace kaisar::checker
