#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "core/error.hpp"
#include "core/time.hpp"
#include "net/server.hpp"
#include "onenode/config.hpp"
#include "onenode/control.hpp"
#include "onenode/events.hpp"
#include "onenode/metrics.hpp"
#include "onenode/registry.hpp"
#include "popw/attestation.hpp"
#include "popw/evidence.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

// Checkers' published rule: wrong verdicts (attestations OneNode's own judgement of the
// evidence contradicts) ban a checker: ≥ 2 in a week for a
// month, ≥ 5 in a month for six months, more than 10 ever for good. Returns the ban's end
// (unix seconds; -1: for good; 0: none) given the times of its wrong verdicts.
std::int64_t checker_ban_until(const std::vector<std::int64_t>& wrong_at, std::int64_t now_s);

// Proof of Physical Work on OneNode's side (docs/checkers.md): checkers connect on their
// own channel; at random times each online provider is assigned to a checker, whose
// challenge and the agent's answers are relayed (and recorded as evidence) through here;
// signed attestations are verified and stored and mark providers verified with their
// measured performance. OneNode judges every attestation's evidence itself before it
// counts; contradicted verdicts are refused and wrong checkers banned by the rule above.
// A share of checks get a second checker's opinion, judged the same way.
class CheckService {
 public:
  CheckService(store::Database& db, const Clock& clock, EventHub& events, ProviderRegistry& registry,
               ControlChannel& control, const OneNodeConfig& config, Metrics& metrics);

  // At start: checks left open by a previous run are expired (their providers are checked
  // again soon).
  Result<void> recover();
  // What attestations are signed under (the chain's id and EpochLog's address).
  void set_domain(const popw::AttestationDomain& domain);
  // The epoch that new attestations belong to.
  std::function<std::uint64_t()> current_epoch;
  // Called (lower-case provider id) when a provider's verification changed.
  std::function<void(const std::string&)> on_verification;

  // GET /api/v1/checkers/connect (WebSocket).
  std::optional<net::Response> accept(net::Request& request, std::shared_ptr<net::WebSocketSession> session);
  // A "popw" envelope from a provider's agent.
  void from_provider(const std::string& provider_id, const boost::json::object& message);
  // Once a second: handshake timeouts, due checks, expired checks.
  void tick();

  Result<boost::json::array> attestations(const std::string& provider, std::size_t limit);
  Result<boost::json::array> checkers();
  std::size_t connected() const;

 private:
  struct Session;
  struct OpenCheck {
    std::string id;        // 0x + 64 hex
    std::string provider;  // lower-case
    std::string checker;   // lower-case
    std::string kind;      // "challenge" | "second_opinion"
    std::string of_check;  // the check a second opinion is about
    std::string provider_owner;  // lower-case; a second opinion comes from neither owner
    std::string checker_owner;
    std::uint64_t epoch = 0;
    popw::Evidence evidence;
    std::int64_t deadline_ms = 0;
  };
  void on_checker_message(const std::shared_ptr<Session>& state, const std::shared_ptr<net::WebSocketSession>& socket,
                          std::string_view text);
  Result<void> relay_to_provider(const Session& state, const boost::json::object& o);
  Result<void> attest(const Session& state, const boost::json::object& o);
  void assign_due(std::int64_t now_ms);
  Result<void> assign(const std::string& provider, std::int64_t now_ms);
  void second_opinion(const OpenCheck& first, std::int64_t now_ms);
  Result<void> contradicted(const OpenCheck& done, const popw::Attestation& a, const popw::Verdict& own,
                            std::int64_t now_ms);
  void mark_wrong(const std::string& checker, std::int64_t now_s);
  void set_verification(const std::string& provider, const popw::Attestation& a, const popw::CheckParams& params,
                        double measured_ops, bool settled_by_onenode = false);
  // A provider that fell silent in the middle of a check fails it.
  void set_failed(const std::string& provider, const std::string& check_id, const std::string& why);
  void schedule_next(const std::string& provider, std::int64_t now_ms);
  std::shared_ptr<net::WebSocketSession> socket_of(const std::string& checker);
  std::int64_t now_ms() const;

  store::Database& db_;
  const Clock& clock_;
  EventHub& events_;
  ProviderRegistry& registry_;
  ControlChannel& control_;
  OneNodeConfig config_;
  std::atomic<std::uint64_t>& attested_;
  std::atomic<std::uint64_t>& refused_;

  mutable std::mutex mutex_;
  std::optional<popw::AttestationDomain> domain_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // authenticated, by checker id
  std::vector<std::pair<std::weak_ptr<net::WebSocketSession>, std::int64_t>> pending_;  // unauthenticated
  std::map<std::string, OpenCheck> open_;                    // by check id
  std::map<std::string, std::int64_t> next_check_ms_;         // by provider
  std::int64_t next_prune_ms_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace kaisar::onenode
