#include "onenode/onenode.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/protocol.hpp"
#include "gateway/gateway.hpp"
#include "gateway/link.hpp"
#include "gateway/ports.hpp"
#include "net/server.hpp"
#include "onenode/api.hpp"
#include "onenode/auth.hpp"
#include "onenode/control.hpp"
#include "onenode/events.hpp"
#include "onenode/gateway_link.hpp"
#include "onenode/geoip.hpp"
#include "onenode/metrics.hpp"
#include "onenode/leases.hpp"
#include "onenode/lease_probe.hpp"
#include "onenode/scheduler.hpp"
#include "onenode/registry.hpp"
#include "onenode/schema.hpp"
#include "onenode/checks.hpp"
#include "onenode/epochs.hpp"
#include "onenode/settlement.hpp"
#include "onenode/siwe.hpp"

namespace kaisar::onenode {

namespace json = boost::json;
using net::Request;
using net::Response;

struct OneNode::Impl {
  OneNodeConfig config;
  SystemClock clock;
  std::unique_ptr<store::Database> db;
  Metrics metrics;
  EventHub events;
  std::unique_ptr<GeoIpLocator> geoip;
  std::unique_ptr<ProviderRegistry> registry;
  std::unique_ptr<AuthService> auth;
  std::unique_ptr<ControlChannel> control;
  std::unique_ptr<LeaseBook> leases;
  Scheduler scheduler;
  std::vector<std::string> refresh_list;  // round-robin refresh of online providers' offers
  std::size_t refresh_cursor = 0;
  std::unique_ptr<Settlement> settlement;
  std::unique_ptr<CheckService> checks;
  std::unique_ptr<EpochBook> epochs;
  std::unique_ptr<net::HttpServer> server;
  std::unique_ptr<gateway::Gateway> gateway;  // in this process, or
  std::unique_ptr<RemoteGateway> remote;      // a `kaisar gateway` linked to us
  // Providers online (lower-case ids) for the gateway's tunnel check: its own leaf lock,
  // because the gateway's thread must not wait for locks held around database work.
  std::mutex tunnel_mutex;
  std::set<std::string> tunnel_allowed;
  std::atomic<bool> ready{false};
  std::thread monitor;
  std::thread prober;  // LeaseProbe: blocking probes, off the monitor thread
  LeaseProbe probes;
  std::mutex monitor_mutex;
  std::condition_variable monitor_cv;
  bool stopping = false;
  std::string base_url;

  // The signed-in wallet's lease `id`; someone else's lease is as unknown as a missing one.
  Result<json::object> renters_lease(const Session& session, const std::string& id) {
    auto lease = id.size() <= 64 ? leases->get(id) : Result<json::object>(fail(ErrorCode::kNotFound, ""));
    if (!lease || lease->at("renter").as_string() != session.address.to_checksum()) {
      return fail(ErrorCode::kNotFound, "no lease " + id.substr(0, 64));
    }
    return lease;
  }

  Result<Session> session_of(const Request& req) {
    auto token = req.bearer_token();
    if (!token) return fail(ErrorCode::kUnauthenticated, "missing Authorization: Bearer <token>; sign in first");
    return auth->authenticate(*token);
  }

  // Wraps a handler: gates it on readiness, counts the response, turns exceptions into 500.
  net::HttpHandler counted(std::string method, std::string route, std::function<Response(Request&)> fn) {
    return [this, method = std::move(method), route = std::move(route), fn = std::move(fn)](Request& req) {
      Response res;
      try {
        // The API answers only between start-up (auth knows its domain) and shutdown.
        if (route.rfind("/api/", 0) == 0 && !ready.load()) {
          res = Response::error(ErrorCode::kUnavailable, "OneNode is starting or stopping; retry shortly");
        } else {
          res = fn(req);
        }
      } catch (const std::exception& e) {
        spdlog::error("{} {}: {}", method, route, e.what());
        res = Response::error(ErrorCode::kInternal, "internal error");
      }
      metrics.count_request(method, route, res.status);
      return res;
    };
  }

  net::Router routes() {
    net::Router r;
    r.add("GET", "/healthz", counted("GET", "/healthz", [](Request&) {
            return Response::json(200, json::object{{"status", "ok"}});
          }));
    r.add("GET", "/readyz", counted("GET", "/readyz", [this](Request&) {
            if (!ready.load()) return Response::error(ErrorCode::kUnavailable, "not ready");
            if (!db->query("SELECT 1", {})) return Response::error(ErrorCode::kUnavailable, "database unavailable");
            return Response::json(200, json::object{{"status", "ready"}});
          }));
    r.add("GET", "/metrics", [this](Request&) {
      return Response::text(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    r.add("GET", "/api/v1/openapi.json", counted("GET", "/api/v1/openapi.json", [](Request&) {
            return Response::text(200, std::string(openapi_document()), "application/json");
          }));
    r.add("GET", "/api/v1/status", counted("GET", "/api/v1/status", [this](Request&) {
            auto all = db->query("SELECT COUNT(*) FROM providers", {});
            return Response::json(200, json::object{{"version", KAISAR_VERSION},
                                                    {"chain_id", config.chain_id},
                                                    {"domain", auth->settings().domain},
                                                    {"providers_total", all ? all->front().integer(0) : 0},
                                                    {"providers_online", registry->online_count()},
                                                    {"agents_connected", control->connected()},
                                                    {"time", format_rfc3339(clock.now())}});
          }));
    r.add("POST", "/api/v1/auth/nonce", counted("POST", "/api/v1/auth/nonce", [this](Request& req) {
            auto body = parse_json_object(req.body);
            if (!body) return Response::error(body.error());
            auto address_text = require_string(*body, "address", 64);
            if (!address_text) return Response::error(address_text.error());
            auto address = crypto::Address::parse(*address_text);
            if (!address) return Response::error(ErrorCode::kInvalidArgument, "address: " + address.error().message);
            auto nonce = auth->issue_nonce(*address);
            if (!nonce) return Response::error(nonce.error());
            return Response::json(200, json::object{{"message", nonce->message},
                                                    {"nonce", nonce->nonce},
                                                    {"expires_at", format_rfc3339(nonce->expires_at)}});
          }));
    r.add("POST", "/api/v1/auth/login", counted("POST", "/api/v1/auth/login", [this](Request& req) {
            auto body = parse_json_object(req.body);
            if (!body) return Response::error(body.error());
            auto message = require_string(*body, "message", kMaxSiweMessageBytes);
            if (!message) return Response::error(message.error());
            auto signature = require_string(*body, "signature", 200);
            if (!signature) return Response::error(signature.error());
            auto session = auth->login(*message, *signature);
            if (!session) {
              // A message that does not parse is as unauthenticated as a bad signature.
              auto e = session.error();
              if (e.code == ErrorCode::kInvalidArgument && e.message.rfind("SIWE", 0) == 0) {
                e.code = ErrorCode::kUnauthenticated;
              }
              return Response::error(e);
            }
            logins.fetch_add(1);
            return Response::json(200, json::object{{"token", session->token},
                                                    {"address", session->address.to_checksum()},
                                                    {"expires_at", format_rfc3339(session->expires_at)}});
          }));
    r.add("POST", "/api/v1/auth/logout", counted("POST", "/api/v1/auth/logout", [this](Request& req) {
            auto token = req.bearer_token();
            if (!token) return Response::error(ErrorCode::kUnauthenticated, "missing Authorization: Bearer <token>");
            auto r2 = auth->logout(*token);
            if (!r2) return Response::error(r2.error());
            return Response::json(200, json::object{{"status", "signed out"}});
          }));
    r.add("GET", "/api/v1/me", counted("GET", "/api/v1/me", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            json::array providers;
            for (auto& id : registry->owned_by(session->address)) providers.push_back(json::value(id));
            return Response::json(200, json::object{{"address", session->address.to_checksum()},
                                                    {"expires_at", format_rfc3339(session->expires_at)},
                                                    {"providers", std::move(providers)}});
          }));
    r.add("GET", "/api/v1/providers", counted("GET", "/api/v1/providers", [this](Request& req) {
            auto list = registry->list();
            if (!list) return Response::error(list.error());
            if (auto status = req.query("status")) {
              if (*status != "online" && *status != "offline") {
                return Response::error(ErrorCode::kInvalidArgument, "status must be online or offline");
              }
              json::array filtered;
              for (auto& p : *list) {
                if (p.as_object().at("status").as_string() == *status) filtered.push_back(p);
              }
              *list = std::move(filtered);
            }
            return Response::json(200, json::object{{"providers", std::move(*list)}});
          }));
    r.add("GET", "/api/v1/providers/{id}", counted("GET", "/api/v1/providers/{id}", [this](Request& req) {
            auto id = crypto::Address::parse(req.path_params["id"]);
            if (!id) return Response::error(ErrorCode::kInvalidArgument, "provider id must be a node address: " + id.error().message);
            auto p = registry->get(id->to_lower_hex());
            if (!p) return Response::error(p.error());
            return Response::json(200, *p);
          }));
    r.add("GET", "/api/v1/checkers", counted("GET", "/api/v1/checkers", [this](Request&) {
            auto list = checks->checkers();
            if (!list) return Response::error(list.error());
            return Response::json(200, json::object{{"checkers", std::move(*list)}});
          }));
    r.add("GET", "/api/v1/attestations", counted("GET", "/api/v1/attestations", [this](Request& req) {
            std::string provider;
            if (auto p = req.query("provider")) {
              auto id = crypto::Address::parse(*p);
              if (!id) return Response::error(ErrorCode::kInvalidArgument, "provider must be a node address: " + id.error().message);
              provider = id->to_lower_hex();
            }
            auto limit = limit_of(req, 100);
            if (!limit) return Response::error(limit.error());
            auto list = checks->attestations(provider, *limit);
            if (!list) return Response::error(list.error());
            return Response::json(200, json::object{{"attestations", std::move(*list)}});
          }));
    r.add("GET", "/api/v1/epochs", counted("GET", "/api/v1/epochs", [this](Request& req) {
            auto limit = limit_of(req, 100);
            if (!limit) return Response::error(limit.error());
            auto list = epochs->list(*limit);
            if (!list) return Response::error(list.error());
            return Response::json(200, json::object{{"current", epochs->current()}, {"epochs", std::move(*list)}});
          }));
    r.add("GET", "/api/v1/epochs/{n}", counted("GET", "/api/v1/epochs/{n}", [this](Request& req) {
            auto n = epoch_of(req);
            if (!n) return Response::error(n.error());
            auto e = epochs->get(*n);
            if (!e) return Response::error(e.error());
            return Response::json(200, *e);
          }));
    r.add("GET", "/api/v1/epochs/{n}/proof/{id}", counted("GET", "/api/v1/epochs/{n}/proof/{id}", [this](Request& req) {
            auto n = epoch_of(req);
            if (!n) return Response::error(n.error());
            const std::string& id = req.path_params["id"];
            if (id.size() > 80) return Response::error(ErrorCode::kInvalidArgument, "id must be a check id or a provider address");
            auto proof = epochs->proof(*n, id);
            if (!proof) return Response::error(proof.error());
            return Response::json(200, *proof);
          }));
    r.add("GET", "/api/v1/rewards", counted("GET", "/api/v1/rewards", [this](Request& req) {
            auto account = crypto::Address::parse(req.query("account").value_or(""));
            if (!account) return Response::error(ErrorCode::kInvalidArgument, "account must be a wallet address: " + account.error().message);
            auto list = epochs->rewards(*account);
            if (!list) return Response::error(list.error());
            json::object out{{"account", account->to_checksum()}, {"rewards", std::move(*list)}};
            if (settlement) out["distributor"] = settlement->deployment().distributor.to_checksum();
            return Response::json(200, out);
          }));
    r.add("GET", "/api/v1/offers", counted("GET", "/api/v1/offers", [this](Request& req) {
            const std::string q = req.query("q").value_or("");
            const std::string sort = req.query("sort").value_or("");
            std::size_t limit = 100;
            if (auto l = req.query("limit")) {
              std::size_t n = 0;
              auto [end, ec] = std::from_chars(l->data(), l->data() + l->size(), n);
              if (ec != std::errc{} || end != l->data() + l->size() || n < 1 || n > 1000) {
                return Response::error(Error{ErrorCode::kInvalidArgument, "limit must be a number from 1 to 1000"});
              }
              limit = n;
            }
            auto page = scheduler.search(q, sort, limit);
            if (!page) return Response::error(page.error());
            return Response::json(200, json::object{{"query", q},
                                                    {"sort", sort.empty() ? "price_hour,-reliability" : sort},
                                                    {"total", page->total},
                                                    {"offers", std::move(page->offers)}});
          }));
    r.add("POST", "/api/v1/leases", counted("POST", "/api/v1/leases", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            auto body = parse_json_object(req.body);
            if (!body) return Response::error(body.error());
            auto spec = LeaseSpec::from_json(*body);
            if (!spec) return Response::error(spec.error());
            if (!settlement) return Response::error(ErrorCode::kUnavailable, "this OneNode has no chain to be paid on");
            // Idempotency-Key: a retried request returns the lease the first one made (200).
            const std::string key(req.header("idempotency-key").value_or(""));
            if (key.size() > 64 || std::any_of(key.begin(), key.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
              return Response::error(ErrorCode::kInvalidArgument, "Idempotency-Key must be at most 64 printable characters");
            }
            auto earlier = leases->replayed(session->address, key, *spec);
            if (!earlier) return Response::error(earlier.error());
            if (*earlier) return Response::json(200, **earlier);
            Result<json::object> lease;
            if (body->contains("query")) {
              // A GPU model narrows the query to offers of that model.
              auto query = parse_query(spec->query);
              if (query && !spec->gpu_model.empty()) query = parse_query(spec->query + " gpu_name=\"" + spec->gpu_model + "\"");
              if (!query) return Response::error(query.error());
              lease = place_lease(scheduler, *leases, session->address, *spec, *query, settlement->deployment(), key);
            } else {
              lease = leases->create(session->address, *spec, settlement->deployment(), key);
            }
            if (!lease) return Response::error(lease.error());
            return Response::json(201, *lease);
          }));
    r.add("GET", "/api/v1/leases", counted("GET", "/api/v1/leases", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            auto list = leases->list_for(session->address);
            if (!list) return Response::error(list.error());
            return Response::json(200, json::object{{"leases", std::move(*list)}});
          }));
    r.add("GET", "/api/v1/leases/{id}", counted("GET", "/api/v1/leases/{id}", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            const std::string& id = req.path_params["id"];
            if (id.size() > 64) return Response::error(ErrorCode::kInvalidArgument, "lease id is too long");
            auto lease = renters_lease(*session, id);
            if (!lease) return Response::error(lease.error());
            return Response::json(200, *lease);
          }));
    r.add("POST", "/api/v1/leases/{id}/stop", counted("POST", "/api/v1/leases/{id}/stop", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            const std::string& id = req.path_params["id"];
            if (id.size() > 64) return Response::error(ErrorCode::kInvalidArgument, "lease id is too long");
            auto stopped = leases->stop(session->address, id);
            if (!stopped) return Response::error(stopped.error());
            send_stop(stopped->second, id);
            return Response::json(200, stopped->first);
          }));
    r.add("POST", "/api/v1/leases/{id}/extend", counted("POST", "/api/v1/leases/{id}/extend", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            auto body = parse_json_object(req.body);
            if (!body) return Response::error(body.error());
            const json::value* hours = body->if_contains("hours");
            if (hours == nullptr || !hours->is_int64() || hours->get_int64() < 1 || hours->get_int64() > 24 * 366) {
              return Response::error(ErrorCode::kInvalidArgument, "hours must be a whole number from 1 to 8784");
            }
            const std::string& id = req.path_params["id"];
            if (id.size() > 64) return Response::error(ErrorCode::kInvalidArgument, "lease id is too long");
            auto lease = leases->extend(session->address, id, static_cast<std::uint32_t>(hours->get_int64()));
            if (!lease) return Response::error(lease.error());
            return Response::json(200, *lease);
          }));
    r.add("GET", "/api/v1/chain", counted("GET", "/api/v1/chain", [this](Request&) {
            if (!settlement) {
              return Response::json(200, json::object{{"enabled", false}, {"chain_id", config.chain_id}});
            }
            return Response::json(200, settlement->info());
          }));
    r.add("POST", "/api/v1/faucet", counted("POST", "/api/v1/faucet", [this](Request& req) {
            auto session = session_of(req);
            if (!session) return Response::error(session.error());
            if (!req.body.empty()) {
              auto body = parse_json_object(req.body);
              if (!body) return Response::error(body.error());
            }
            if (!settlement) return Response::error(ErrorCode::kNotFound, "this OneNode has no chain configured");
            auto out = settlement->faucet(session->address);
            if (!out) return Response::error(out.error());
            return Response::json(200, *out);
          }));
    r.add("GET", "/api/v1/payments/{lease_id}", counted("GET", "/api/v1/payments/{lease_id}", [this](Request& req) {
            auto lease_id = eth::parse_hash(req.path_params["lease_id"]);
            if (!lease_id) {
              return Response::error(ErrorCode::kInvalidArgument, "lease_id must be the escrow's 32-byte lease id as 0x-hex");
            }
            if (!settlement) return Response::error(ErrorCode::kNotFound, "this OneNode has no chain configured");
            // One depositor's record: `?depositor=`, else the renter of the lease with this
            // escrow id, else the first wallet that deposited under it.
            std::optional<crypto::Address> depositor;
            if (auto q = req.query("depositor")) {
              auto a = crypto::Address::parse(*q);
              if (!a) return Response::error(ErrorCode::kInvalidArgument, "depositor must be an address");
              depositor = *a;
            } else if (auto renter = db->query("SELECT renter FROM leases WHERE escrow_lease_id = ?", {to_hex(*lease_id)});
                       renter && !renter->empty()) {
              depositor = crypto::Address::parse(renter->front().text(0)).value_or(crypto::Address{});
            } else if (auto who = settlement->ledger().depositors(*lease_id); who && !who->empty()) {
              depositor = who->front();
            }
            if (!depositor) return Response::error(ErrorCode::kNotFound, "no payment for this lease has been seen on chain");
            auto funds = settlement->lease_funds(*lease_id, *depositor);
            if (!funds) return Response::error(funds.error());
            if (!*funds) return Response::error(ErrorCode::kNotFound, "no payment for this lease has been seen on chain");
            const chain::LeaseFunds& f = **funds;
            json::array history;
            for (const auto& e : f.events) {
              history.push_back(json::object{{"kind", chain::to_string(e.kind)},
                                            {"amount", e.amount.to_decimal()},
                                            {"block", e.block_number},
                                            {"tx_hash", to_hex(e.tx_hash)}});
            }
            return Response::json(200, json::object{{"lease_id", to_hex(*lease_id)},
                                                    {"escrow", settlement->deployment().escrow.to_checksum()},
                                                    {"renter", f.renter.to_checksum()},
                                                    {"deposited", f.deposited.to_decimal()},
                                                    {"locked_until", f.locked_until.time_since_epoch().count()},
                                                    {"settled", f.settled},
                                                    {"reclaimed", f.reclaimed},
                                                    {"paid_to_provider", f.paid_to_provider.to_decimal()},
                                                    {"refunded", f.refunded.to_decimal()},
                                                    {"events", std::move(history)}});
          }));
    r.add_sse("/api/v1/leases/{id}/events",
              [this](Request& req, std::shared_ptr<net::SseStream> stream) -> std::optional<Response> {
                auto session = session_of(req);
                if (!session) return Response::error(session.error());
                const std::string& id = req.path_params["id"];
                auto lease = renters_lease(*session, id);
                if (!lease) return Response::error(lease.error());
                metrics.count_request("GET", "/api/v1/leases/{id}/events", 200);
                // The current state first, then every change as it happens.
                stream->send("lease.state", json::serialize(json::object{{"lease_id", id},
                                                                         {"state", lease->at("state")},
                                                                         {"reason", lease->at("reason")}}));
                events.subscribe(std::move(stream), id);
                return std::nullopt;
              });
    r.add_sse("/api/v1/leases/{id}/logs",
              [this](Request& req, std::shared_ptr<net::SseStream> stream) -> std::optional<Response> {
                auto session = session_of(req);
                if (!session) return Response::error(session.error());
                const std::string& id = req.path_params["id"];
                auto lease = renters_lease(*session, id);
                if (!lease) return Response::error(lease.error());
                const std::string state(lease->at("state").as_string());
                if (state != "running" && state != "deploying") {
                  return Response::error(ErrorCode::kConflict, "lease " + id + " is " + state + ": no container to read");
                }
                auto provider = crypto::Address::parse(lease->at("provider").as_string());
                const bool follow = req.query("follow").value_or("0") == "1";
                if (!provider) return Response::error(ErrorCode::kInternal, "lease " + id + " has a bad provider");
                auto refused = control->stream_logs(provider->to_lower_hex(), session->address.to_lower_hex(), id,
                                                    follow, stream);
                if (refused) return refused;
                metrics.count_request("GET", "/api/v1/leases/{id}/logs", 200);
                return std::nullopt;
              });
    r.add_sse("/api/v1/events", [this](Request&, std::shared_ptr<net::SseStream> stream) -> std::optional<Response> {
      metrics.count_request("GET", "/api/v1/events", 200);
      events.subscribe(std::move(stream));
      return std::nullopt;
    });
    r.add_websocket(std::string(gateway::kLinkPath), [this](Request& req, std::shared_ptr<net::WebSocketSession> s) {
      if (!remote) return std::optional<Response>(Response::error(ErrorCode::kNotFound, "this OneNode takes no gateway link"));
      return remote->accept(req, s);
    });
    r.add_websocket(std::string(protocol::kCheckerConnectPath),
                    [this](Request& req, std::shared_ptr<net::WebSocketSession> s) { return checks->accept(req, s); });
    r.add_websocket(std::string(protocol::kConnectPath),
                    [this](Request& req, std::shared_ptr<net::WebSocketSession> s) { return control->accept(req, s); });
    return r;
  }

  static Result<std::size_t> limit_of(const Request& req, std::size_t fallback) {
    auto l = req.query("limit");
    if (!l) return fallback;
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(l->data(), l->data() + l->size(), n);
    if (ec != std::errc{} || end != l->data() + l->size() || n < 1 || n > 1000) {
      return fail(ErrorCode::kInvalidArgument, "limit must be a number from 1 to 1000");
    }
    return n;
  }

  static Result<std::uint64_t> epoch_of(Request& req) {
    const std::string& text = req.path_params["n"];
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || text.size() > 19 || ec != std::errc{} || end != text.data() + text.size()) {
      return fail(ErrorCode::kInvalidArgument, "epoch must be a whole number");
    }
    return n;
  }

  // Sends the provider's paid (or, after a reconnect, all live) leases to its agent.
  void deploy_to(const std::string& provider_id, bool resend) {
    if (!control || !control->has_session(provider_id)) return;
    for (const auto& message : leases->take_deploys(provider_id, resend)) {
      if (!control->send_to(provider_id, message)) break;
    }
  }

  void send_stop(const std::string& provider_id, const std::string& lease_id) {
    if (control && !provider_id.empty()) {
      control->send_to(provider_id, json::serialize(json::object{{"type", "stop"}, {"lease_id", lease_id}}));
    }
  }

  // A provider's offer from its registry view (hardware, prices, reliability) and what its
  // leases hold.
  // The registry's view says whether it is online now (callbacks from connecting and going
  // offline can cross); what is held is read under the write lock, in order with holds.
  void refresh_offer(const std::string& provider) {
    auto view = registry->get(provider);
    if (!view) return;
    scheduler.upsert(*view);
    leases->with_held(provider, [&](const Reserved& held) { scheduler.set_held(provider, held); });
  }

  std::atomic<std::uint64_t>& logins = metrics.counter("kaisar_auth_logins_total", "Successful wallet sign-ins.");

  // The gateway in this process: agents get its address in their welcome; a lease's ports
  // are exposed when it runs and withdrawn when it ends (in the transaction's thread, so the
  // endpoints are there as soon as the lease reads as running).
  Result<void> start_gateway(const std::string& listen_host) {
    gateway::GatewayOptions g;
    g.listen_host = s_or(config.gateway_listen, listen_host);
    g.tunnel_port = config.gateway_tunnel_port;
    g.public_host = config.gateway_public_host;
    if (g.public_host.empty() && !config.public_url.empty()) {
      auto rest = config.public_url.substr(config.public_url.find("://") == std::string::npos ? 0 : config.public_url.find("://") + 3);
      rest = rest.substr(0, rest.find('/'));
      if (!rest.empty() && rest.front() == '[') rest = rest.substr(1, rest.find(']') - 1);
      else rest = rest.substr(0, rest.find(':'));
      g.public_host = rest;
    }
    if (g.public_host.empty()) g.public_host = g.listen_host == "0.0.0.0" || g.listen_host == "::" ? "127.0.0.1" : g.listen_host;
    if (!config.gateway_ports.empty()) {
      auto range = gateway::parse_port_range(config.gateway_ports);
      if (!range) return fail(ErrorCode::kInvalidArgument, "gateway_ports: " + range.error().message);
      g.first_port = range->first;
      g.last_port = range->second;
    }
    g.cool_down = config.gateway_cool_down;
    const std::filesystem::path dir(config.data_dir);
    g.certificate = dir / "gateway.crt";
    g.private_key = dir / "gateway.key";
    g.secret = dir / "gateway.secret";
    g.log = [](const std::string& line) { spdlog::info("gateway: {}", line); };
    auto started = gateway::Gateway::start(
        std::move(g),
        [this](const crypto::Address& provider) {
          std::lock_guard lock(tunnel_mutex);
          return tunnel_allowed.contains(provider.to_lower_hex());
        },
        db.get());
    if (!started) return std::unexpected(started.error());
    gateway = std::move(*started);
    json::value tunnel = json::object{{"url", gateway->tunnel_url()}, {"certificate_sha256", gateway->certificate_sha256()}};
    control->gateway = [tunnel] { return tunnel; };
    follow_leases();
    spdlog::info("gateway: tunnels at {} (certificate sha256 {})", gateway->tunnel_url(), gateway->certificate_sha256());
    return {};
  }

  // A `kaisar gateway` process links in with the token in `token_file`; agents hear of it
  // (in their welcome, and at once when it links).
  Result<void> start_remote_gateway(const std::string& token_file) {
    std::ifstream in(token_file);
    std::string token;
    if (!in || !std::getline(in, token)) return fail(ErrorCode::kInvalidArgument, "cannot read the gateway link token from " + token_file);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.size() < 16) return fail(ErrorCode::kInvalidArgument, "the gateway link token in " + token_file + " is shorter than 16 characters");
    remote = std::make_unique<RemoteGateway>(token, [this] { return registry->online_ids(); });
    remote->on_tunnel = [this](const json::value& tunnel) {
      json::object message{{"type", "gateway"}};
      if (tunnel.is_object()) {
        for (const auto& [k, v] : tunnel.get_object()) message[k] = v;
      }
      control->broadcast(json::serialize(message));
      spdlog::info("gateway: a gateway linked; tunnels at {}", json::serialize(tunnel));
    };
    control->gateway = [this] { return remote->tunnel(); };
    follow_leases();
    return {};
  }

  // Running leases are exposed, ended ones withdrawn, in the thread that changes their state.
  void follow_leases() {
    leases->on_state_change = [this](const std::string& id, std::string_view state) {
      if (state == "running") expose(id);
      else if (state == "ended" || state == "failed") withdraw_ports(id);
    };
    leases->decorate = [this](json::object& lease) { decorate(lease); };
    for (const auto& id : leases->running_ids()) expose(id);  // after a restart: the same ports
  }

  void withdraw_ports(const std::string& id) {
    if (gateway) gateway->withdraw(id);
    if (remote) remote->withdraw(id);
  }

  std::optional<Exposure> exposure_of(const std::string& id) const {
    if (remote) return remote->exposure(id);
    if (!gateway) return std::nullopt;
    auto endpoints = gateway->endpoints(id);
    if (endpoints.empty()) return std::nullopt;
    return Exposure{std::move(endpoints), gateway->public_host(), gateway->access_token(id)};
  }

  static std::string s_or(const std::string& a, const std::string& b) { return a.empty() ? b : a; }

  // Exposes what the lease's container published, as the spec says (TCP, public HTTP or HTTP
  // behind the lease's token).
  void expose(const std::string& id) {
    auto rows = db->query("SELECT provider, spec, endpoints FROM leases WHERE id = ?", {id});
    if (!rows || rows->empty() || rows->front().is_null(2)) return;
    const auto& row = rows->front();
    auto provider = crypto::Address::parse(row.text(0));
    boost::system::error_code ec;
    json::value spec = json::parse(row.text(1), ec);
    json::value published = json::parse(row.text(2), ec);
    if (!provider || !spec.is_object() || !published.is_array()) return;
    auto listed = [&](std::string_view key, std::int64_t port) {
      const json::value* list = spec.as_object().if_contains(key);
      if (list == nullptr || !list->is_array()) return false;
      for (const auto& p : list->get_array()) {
        if (p.is_int64() && p.get_int64() == port) return true;
      }
      return false;
    };
    std::vector<gateway::Gateway::Port> ports;
    for (const auto& e : published.get_array()) {
      const json::value* port = e.is_object() ? e.get_object().if_contains("port") : nullptr;
      if (port == nullptr || !port->is_int64()) continue;
      const auto p = port->get_int64();
      // Leases from before the gateway knew tcp_ports: SSH is TCP.
      const bool tcp = spec.as_object().contains("tcp_ports") ? listed("tcp_ports", p) : p == 22;
      ports.push_back(gateway::Gateway::Port{static_cast<std::uint16_t>(p), tcp, listed("public_ports", p)});
    }
    if (ports.empty()) return;
    if (remote) {
      remote->expose(id, *provider, ports);
      return;
    }
    if (auto r = gateway->expose(id, *provider, ports); !r) spdlog::warn("gateway: lease {}: {}", id, r.error().message);
  }

  // The lease's public endpoints: each container port with the gateway's port, and how to
  // use it; the access token when an HTTP port needs it.
  void decorate(json::object& lease) {
    const std::string id(lease.at("id").as_string());
    if (remote && remote->exposing(id)) lease["gateway"] = "exposing";  // the answer is on its way
    const auto exposure = exposure_of(id);
    if (!exposure) return;
    const auto& exposed = exposure->endpoints;
    json::value* endpoints = lease.if_contains("endpoints");
    if (endpoints == nullptr || !endpoints->is_array()) return;
    const std::string& host = exposure->public_host;
    const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    bool needs_token = false;
    for (auto& e : endpoints->as_array()) {
      if (!e.is_object() || !e.as_object().contains("port") || !e.at("port").is_int64()) continue;
      const auto port = e.at("port").as_int64();
      for (const auto& x : exposed) {
        if (x.port.container_port != port) continue;
        auto& o = e.as_object();
        o["public_host"] = host;
        o["public_port"] = x.public_port;
        o["protocol"] = x.port.tcp ? "tcp" : "http";
        const std::string address = shown_host + ":" + std::to_string(x.public_port);
        if (x.port.tcp) {
          if (port == 22) o["ssh"] = "ssh -p " + std::to_string(x.public_port) + " root@" + host;
          o["address"] = address;
        } else {
          o["url"] = "http://" + address + "/";
          o["open"] = x.port.open_to_all;
          needs_token = needs_token || !x.port.open_to_all;
        }
      }
    }
    if (needs_token) lease["access_token"] = exposure->access_token;
    const json::value* state = lease.if_contains("state");
    if (config.lease_probe_interval.count() > 0 && state != nullptr && state->is_string() && state->get_string() == "running") {
      lease["answering"] = probes.answering(id);  // its container answered OneNode's probes
    }
  }

  void probe_loop() {
    std::unique_lock lock(monitor_mutex);
    while (!stopping) {
      monitor_cv.wait_for(lock, config.lease_probe_interval);
      if (stopping) break;
      lock.unlock();
      probes.probe_all(leases->running_ids(), [this](const std::string& id) { return exposure_of(id); },
                       std::chrono::seconds{3});
      lock.lock();
    }
  }

  void monitor_loop() {
    auto next_purge = std::chrono::steady_clock::now();
    std::unique_lock lock(monitor_mutex);
    while (!stopping) {
      monitor_cv.wait_for(lock, std::chrono::seconds{1});
      if (stopping) break;
      lock.unlock();
      registry->sweep();
      control->sweep();
      checks->tick();
      if (auto e = epochs->tick(); !e) spdlog::warn("epochs: {}", e.error().message);
      leases->expire_unpaid([this](const Hash32& id, const crypto::Address& renter) -> Result<chain::EscrowRecord> {
        if (!settlement) return chain::EscrowRecord{};  // no chain: nothing can have been paid
        return settlement->escrow_record(id, renter);
      });
      for (const auto& provider : leases->providers_with_paid_leases()) deploy_to(provider, false);
      for (const auto& [provider, lease_id] : leases->expire_running()) send_stop(provider, lease_id);
      // Reliability moves slowly: a few hundred online providers' offers are refreshed a
      // second, so each is at most minutes old even with 100,000 online.
      for (int n = 0; n < 200; ++n) {
        if (refresh_cursor >= refresh_list.size()) {  // a new round
          refresh_list = registry->online_ids();
          refresh_cursor = 0;
          if (refresh_list.empty()) break;
        }
        refresh_offer(refresh_list[refresh_cursor++]);
      }
      if (std::chrono::steady_clock::now() >= next_purge) {
        auth->purge_expired();
        next_purge = std::chrono::steady_clock::now() + std::chrono::minutes{1};
      }
      lock.lock();
    }
  }
};

OneNode::OneNode(OneNodeConfig config) : impl_(std::make_unique<Impl>()) { impl_->config = std::move(config); }

OneNode::~OneNode() { stop(); }

ProviderRegistry& OneNode::registry() { return *impl_->registry; }
LeaseBook& OneNode::leases() { return *impl_->leases; }
const Scheduler& OneNode::scheduler() const { return impl_->scheduler; }

Result<std::string> OneNode::start() {
  auto& s = *impl_;
  auto listen = OneNodeConfig::split_listen(s.config.listen);
  if (!listen) return std::unexpected(listen.error());
  std::error_code fs_ec;
  std::filesystem::create_directories(s.config.data_dir, fs_ec);
  if (fs_ec) {
    return fail(ErrorCode::kUnavailable, "cannot create data dir " + s.config.data_dir + ": " + fs_ec.message());
  }
  auto db = store::open_sqlite((std::filesystem::path(s.config.data_dir) / "onenode.db").string(), migrations());
  if (!db) return std::unexpected(db.error());
  s.db = std::move(*db);
  s.geoip = std::make_unique<GeoIpLocator>(s.config.geoip_database);
  s.registry = std::make_unique<ProviderRegistry>(*s.db, s.clock, s.events, s.config.offline_after,
                                                  [&s](const std::string& ip) { return s.geoip->country(ip); });
  if (auto r = s.registry->recover(); !r) return std::unexpected(r.error());
  s.control = std::make_unique<ControlChannel>(*s.registry, s.metrics, s.config.heartbeat_interval);
  s.leases = std::make_unique<LeaseBook>(*s.db, s.clock, s.events, *s.registry, s.config.payment_timeout);
  s.control->on_agent_online = [&s](const std::string& provider) { s.deploy_to(provider, true); };
  // The scheduler's in-memory offers follow the registry (online, offline) and the leases
  // (capacity taken and given back).
  s.registry->on_status_change = [&s](const std::string& provider, bool online) {
    {
      std::lock_guard lock(s.tunnel_mutex);
      if (online) s.tunnel_allowed.insert(provider);
      else s.tunnel_allowed.erase(provider);
    }
    if (s.remote) s.remote->provider_status(provider, online);
    s.refresh_offer(provider);
  };
  s.leases->on_capacity_change = [&s](const std::string& provider, const Reserved& held) {
    s.scheduler.set_held(provider, held);
  };
  s.control->live_leases = [&s](const std::string& provider) { return s.leases->live_on(provider); };
  s.control->on_lease_usage = [&s](const std::string& provider, const json::object& message) {
    if (auto r = s.leases->on_usage(provider, message); !r) spdlog::debug("lease_usage from {}: {}", provider, r.error().message);
  };
  s.control->on_agent_offline = [&s](const std::string& provider) {
    if (!s.ready.load()) return;  // OneNode itself is stopping: the leases stay as they are
    s.leases->fail_deploying(provider, "the provider disconnected while deploying; refunded in full");
  };
  s.control->on_lease_status = [&s](const std::string& provider, const json::object& message) {
    if (auto r = s.leases->on_status(provider, message); !r) spdlog::warn("lease_status from {}: {}", provider, r.error().message);
  };
  if (!s.config.rpc_url.empty()) {
    auto settlement = Settlement::open(s.config, *s.db, s.clock, s.leases.get());
    if (!settlement) return std::unexpected(settlement.error());
    s.settlement = std::move(*settlement);
    s.leases->settle = [&s](const Hash32& id, const crypto::Address& renter, const crypto::Address& wallet,
                            const eth::Uint256& to_provider, const eth::Uint256& to_renter) {
      return s.settlement->settle_lease(id, renter, wallet, to_provider, to_renter);
    };
    s.metrics.gauge("kaisar_chain_indexed_block", "Last block the chain indexer has read.", [&s] {
      auto next = s.settlement->indexer().next_block();
      return next ? static_cast<double>(*next) - 1 : -1.0;
    });
    auto outbox_count = [&s](std::initializer_list<std::string_view> states) {
      auto counts = s.settlement->outbox().counts();
      double n = 0;
      if (counts) {
        for (auto st : states) {
          if (auto it = counts->find(std::string(st)); it != counts->end()) n += static_cast<double>(it->second);
        }
      }
      return n;
    };
    s.metrics.gauge("kaisar_chain_outbox_open", "Chain writes not yet final (queued, sent or mined).",
                    [outbox_count] { return outbox_count({"queued", "sent", "mined"}); });
    s.metrics.gauge("kaisar_chain_outbox_failed", "Chain writes that failed for good.",
                    [outbox_count] { return outbox_count({"failed"}); });
  }

  // Proof of Physical Work and epochs.
  s.epochs = std::make_unique<EpochBook>(*s.db, s.clock, s.events, s.config);
  if (auto r = s.epochs->recover(); !r) return std::unexpected(r.error());
  s.checks = std::make_unique<CheckService>(*s.db, s.clock, s.events, *s.registry, *s.control, s.config, s.metrics);
  if (auto r = s.checks->recover(); !r) return std::unexpected(r.error());
  s.checks->current_epoch = [&s] { return s.epochs->current(); };
  s.checks->on_verification = [&s](const std::string& provider) { s.refresh_offer(provider); };
  s.control->on_popw = [&s](const std::string& provider, const json::object& message) {
    s.checks->from_provider(provider, message);
  };
  if (s.settlement) {
    s.checks->set_domain(popw::AttestationDomain{s.config.chain_id, s.settlement->deployment().epoch_log});
    s.epochs->post_root = [&s](std::uint64_t epoch, const Hash32& root, std::uint64_t leaves) {
      return s.settlement->post_epoch_root(epoch, root, leaves);
    };
    s.epochs->post_rewards = [&s](std::uint64_t epoch, const Hash32& root, const eth::Uint256& total) {
      return s.settlement->post_rewards(epoch, root, total, s.config.fund_rewards);
    };
    s.epochs->transaction_of = [&s](const std::string& key) { return s.settlement->transaction_of(key); };
  }
  s.metrics.gauge("kaisar_checkers_connected", "Checkers on the checkers' channel.",
                  [&s] { return static_cast<double>(s.checks->connected()); });

  if (!s.config.gateway_link_token_file.empty()) {
    if (auto g = s.start_remote_gateway(s.config.gateway_link_token_file); !g) return std::unexpected(g.error());
  } else if (s.config.gateway) {
    if (auto g = s.start_gateway(listen->first); !g) return std::unexpected(g.error());
  }

  // The sign-in nonces' key: kept in the data dir, so nonces issued before a restart verify.
  auto nonce_key = NonceKey::load_or_create((std::filesystem::path(s.config.data_dir) / "signin.key").string());
  if (!nonce_key) return std::unexpected(nonce_key.error());

  net::ServerOptions options;
  options.host = listen->first;
  options.port = listen->second;
  options.body_limit = s.config.body_limit;
  // A check's openings (s rows of n int32, base64) reach 11 MB at n = 16384, s = 128; the
  // channels allow that only once the peer's hello is verified.
  options.websocket_message_limit = 16 << 20;
  options.websocket_hello_limit = s.config.websocket_hello_limit;
  const OneNodeConfig& c = s.config;
  options.admission = {{c.max_connections, c.max_connections_per_address},
                       {c.max_event_streams, c.max_event_streams_per_address},
                       {c.max_websockets, c.max_websockets_per_address},
                       c.admission_reserve};
  // The caps' reserve: health probes and signed-in users pass while strangers hold the rest.
  options.privileged = [&s](const Request& req) {
    if (req.path == "/healthz" || req.path == "/readyz") return true;
    auto token = req.bearer_token();
    return token && s.ready.load() && s.auth && s.auth->authenticate(*token).has_value();
  };
  s.control->log_limits = {s.config.log_streams_per_renter, s.config.log_streams_per_lease, 1000};
  options.threads = std::max<std::size_t>(1, s.config.threads);
  // The SIWE domain must be known before serving; with port 0 it is fixed after binding,
  // so AuthService is created once the port is known and routes reach it through `s`.
  s.server = std::make_unique<net::HttpServer>(options, s.routes());
  auto port = s.server->start();
  if (!port) return std::unexpected(port.error());
  std::string host = listen->first.find(':') != std::string::npos ? "[" + listen->first + "]" : listen->first;
  if (host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  s.base_url = "http://" + host + ":" + std::to_string(*port);
  std::string public_url = s.config.public_url.empty() ? s.base_url : s.config.public_url;
  while (!public_url.empty() && public_url.back() == '/') public_url.pop_back();
  auto scheme_end = public_url.find("://");
  std::string domain = scheme_end == std::string::npos ? public_url : public_url.substr(scheme_end + 3);
  domain = domain.substr(0, domain.find('/'));
  s.auth = std::make_unique<AuthService>(
      *s.db, s.clock, AuthSettings{domain, public_url, s.config.chain_id, s.config.nonce_ttl, s.config.session_ttl},
      *nonce_key);
  s.metrics.gauge("kaisar_providers_online", "Providers whose agent is online.",
                  [&s] { return static_cast<double>(s.registry->online_count()); });
  s.metrics.gauge("kaisar_agents_connected", "Open agent control channels.",
                  [&s] { return static_cast<double>(s.control->connected()); });
  s.metrics.gauge("kaisar_heartbeats_total", "Heartbeats received since start.",
                  [&s] { return static_cast<double>(s.registry->heartbeats()); });
  s.metrics.gauge("kaisar_event_subscribers", "Open /api/v1/events streams.",
                  [&s] { return static_cast<double>(s.events.subscribers()); });
  s.monitor = std::thread([&s] { s.monitor_loop(); });
  if (s.config.lease_probe_interval.count() > 0) {
    s.epochs->job_answering = [&s](const std::string& lease_id) { return s.probes.answering(lease_id); };
    s.prober = std::thread([&s] { s.probe_loop(); });
  }
  s.ready.store(true);
  return s.base_url;
}

Result<boost::json::object> OneNode::faucet(const crypto::Address& address) {
  if (!impl_->settlement) return fail(ErrorCode::kNotFound, "this OneNode has no chain configured");
  return impl_->settlement->faucet(address);
}

void OneNode::stop() {
  auto& s = *impl_;
  if (!s.server) return;
  s.ready.store(false);
  {
    std::lock_guard lock(s.monitor_mutex);
    s.stopping = true;
  }
  s.monitor_cv.notify_all();
  if (s.monitor.joinable()) s.monitor.join();
  if (s.prober.joinable()) s.prober.join();
  s.events.close_all();
  s.server->stop();
  s.registry->sweep(/*force_flush=*/true);  // last-seen times survive the restart
  if (s.settlement) s.settlement->stop();
  if (s.gateway) s.gateway->stop();  // after everything that ends leases (withdraw is a no-op now)
  s.server.reset();
}

}  // namespace kaisar::onenode
