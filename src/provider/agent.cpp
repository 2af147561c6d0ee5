#include "provider/agent.hpp"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>

#include "core/json_fields.hpp"
#include "core/protocol.hpp"
#include "crypto/random.hpp"
#include "gateway/client.hpp"
#include "net/client.hpp"
#include "provider/deployer.hpp"
#include "provider/firewall.hpp"
#include "net/redial.hpp"
#include "provider/popw_worker.hpp"

namespace kaisar::provider {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace boost::asio::experimental::awaitable_operators;

// The hello's image list stays well under OneNode's 16 KiB pre-authentication limit.
constexpr std::size_t kHelloImageBytes = 8 << 10;

struct Agent::Impl {
  Impl(AgentOptions o, ProviderIdentity i, Hardware h)
      : options(std::move(o)), identity(std::move(i)), hardware(std::move(h)) {}
  AgentOptions options;
  ProviderIdentity identity;
  Hardware hardware;
  asio::io_context io;
  asio::steady_timer wake{io};
  std::shared_ptr<net::WebSocketClient> client;
  bool stopping = false;
  // The gateway tunnel: where it goes (from the welcome, or the options), and the live one.
  gateway::TunnelTarget tunnel_target;
  bool tunnel_started = false;
  asio::steady_timer tunnel_wake{io};
  std::shared_ptr<gateway::TunnelConnection> tunnel;
  std::unique_ptr<PopwWorker> popw;  // answers checkers' challenges
  std::unique_ptr<Deployer> deployer;  // last member: its thread stops before the rest goes
};

Agent::Agent(AgentOptions options, ProviderIdentity identity, Hardware hardware)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(identity), std::move(hardware))) {
  Impl& s = *impl_;
  if (!s.options.engine_socket.empty()) {
    LeasePolicy policy;
    policy.local_images = s.options.local_images;
    policy.require_firewall = s.options.require_firewall;
    policy.log = [this](const std::string& line) {
      if (log) log(line);
    };
    s.deployer = std::make_unique<Deployer>(s.options.engine_socket, s.options.demo_image_tar,
                                            [&s](const json::object& message) {
                                              // Back on the agent's thread, onto the channel if it is up.
                                              asio::post(s.io, [&s, text = json::serialize(message)] {
                                                if (s.client && s.client->is_open()) s.client->send(text);
                                              });
                                            },
                                            s.hardware.gpus, std::move(policy));
  }
  s.popw = std::make_unique<PopwWorker>([&s](const json::object& message) {
    asio::post(s.io, [&s, text = json::serialize(message)] {
      if (s.client && s.client->is_open()) s.client->send(text);
    });
  });
}

Agent::~Agent() { stop(); }


void Agent::run() {
  Impl& s = *impl_;
  auto say = [this](const std::string& line) {
    if (log) log(line);
  };
  if (s.deployer) {
    // Said once at start; each deploy installs the firewall again and fails closed without it.
    if (auto fenced = install_firewall(); !fenced) {
      say(std::string(s.options.require_firewall ? "leases will be REFUSED: " : "leases run UNFENCED (development): ") +
          "the host firewall (nftables table inet kaisar) cannot be installed: " + fenced.error().message +
          "; run the agent as root or with CAP_NET_ADMIN");
    } else {
      say("host firewall installed (nftables table inet kaisar): leases reach only the public internet");
    }
  }

  std::function<asio::awaitable<void>()> keep_tunnel;  // below: started by the first welcome
  // Where the tunnel goes, as OneNode says (in the welcome, or when a gateway links later).
  auto use_gateway = [&s, &keep_tunnel](const json::object& where) {
    gateway::TunnelTarget target{string_field(where, "url"), string_field(where, "certificate_sha256")};
    if (!s.options.gateway_url.empty()) target = {s.options.gateway_url, s.options.gateway_sha256};
    if (target.url.empty()) return;
    if (target != s.tunnel_target) {
      const bool moved = !s.tunnel_target.url.empty();
      s.tunnel_target = target;
      s.tunnel_wake.cancel();  // a waiting redial goes at once, to the new address
      if (moved && s.tunnel) s.tunnel->close();  // and a live tunnel to the old one ends
    }
    if (!s.tunnel_started) {
      s.tunnel_started = true;
      asio::co_spawn(s.io, keep_tunnel(), asio::detached);
    }
  };
  auto session = [this, &s, say, &use_gateway]() -> asio::awaitable<Result<void>> {
    state_.store(AgentState::kConnecting);
    if (auto secure = net::require_secure_channel(s.options.onenode_url, s.options.insecure_dev); !secure) {
      co_return std::unexpected(secure.error());
    }
    auto connected = co_await net::WebSocketClient::connect(s.io.get_executor(), net::websocket_url(s.options.onenode_url, protocol::kConnectPath));
    if (!connected) co_return std::unexpected(connected.error());
    s.client = *connected;
    if (s.stopping) {
      s.client->close();
      co_return Result<void>{};
    }
    auto challenge_text = co_await s.client->read();
    if (!challenge_text) co_return std::unexpected(challenge_text.error());
    auto challenge = parse_json_message(*challenge_text, "OneNode");
    if (!challenge) co_return std::unexpected(challenge.error());
    const std::string nonce = string_field(*challenge, "nonce");
    if (string_field(*challenge, "type") != "challenge" || nonce.empty()) {
      co_return fail(ErrorCode::kInvalidArgument, "OneNode did not send a challenge");
    }
    json::object hello = provider::signed_hello(s.identity, nonce);
    hello["hardware"] = s.hardware.to_json();
    hello["agent_version"] = s.options.agent_version;
    if (s.options.region) hello["region"] = *s.options.region;
    if (s.deployer) {
      // What can run without a registry (OneNode refuses leases of other localhost/ images).
      if (auto images = s.deployer->local_images()) {
        // Only localhost/ images matter (others come from registries), and the hello must fit
        // OneNode's limit on messages before authentication.
        json::array list;
        std::size_t bytes = 0;
        for (auto& image : *images) {
          if (!image.starts_with("localhost/") || image.size() > 255 || bytes + image.size() > kHelloImageBytes) continue;
          bytes += image.size() + 3;
          list.push_back(json::value(std::move(image)));
        }
        hello["images"] = std::move(list);
      }
    }
    if (s.options.prices) {
      hello["prices"] = json::object{{"gpu_hour", s.options.prices->gpu_hour},
                                     {"cpu_core_hour", s.options.prices->cpu_core_hour},
                                     {"ram_gb_hour", s.options.prices->ram_gb_hour}};
    }
    s.client->send(json::serialize(hello));
    auto welcome_text = co_await s.client->read();
    if (!welcome_text) co_return std::unexpected(welcome_text.error());
    auto welcome = parse_json_message(*welcome_text, "OneNode");
    if (!welcome) co_return std::unexpected(welcome.error());
    if (string_field(*welcome, "type") == "error") {
      co_return fail(ErrorCode::kUnauthenticated, "OneNode refused the agent: " + string_field(*welcome, "message"));
    }
    if (string_field(*welcome, "type") != "welcome") co_return fail(ErrorCode::kInvalidArgument, "OneNode did not welcome the agent");
    std::chrono::seconds interval = protocol::kDefaultHeartbeatInterval;
    if (auto it = welcome->find("heartbeat_interval_s"); it != welcome->end() && it->value().is_int64() &&
                                                         it->value().get_int64() > 0 && it->value().get_int64() <= 3600) {
      interval = std::chrono::seconds{it->value().get_int64()};
    }
    state_.store(AgentState::kOnline);
    sessions_.fetch_add(1);
    if (s.deployer) {
      // Containers of leases OneNode no longer counts as live are removed; the live ones
      // are sent again right after this and adopted.
      std::vector<std::string> live;
      if (auto it = welcome->find("leases"); it != welcome->end() && it->value().is_array()) {
        for (const auto& id : it->value().get_array()) {
          if (id.is_string() && id.get_string().size() <= 64) live.emplace_back(id.get_string());
        }
        s.deployer->reconcile(std::move(live));
      }
    }
    say("online as provider " + string_field(*welcome, "provider_id") + " (heartbeat every " +
        std::to_string(interval.count()) + " s)");
    if (auto it = welcome->find("gateway"); it != welcome->end() && it->value().is_object()) {
      use_gateway(it->value().get_object());
    }

    auto last_ack = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    auto client = s.client;
    // Heartbeats go out on a timer; a channel that acknowledges none for 3 intervals is dead.
    auto beat = [this, &s, client, interval, last_ack]() -> asio::awaitable<Result<void>> {
      asio::steady_timer timer(s.io);
      // A heartbeat each interval; what the lease containers use, each second.
      auto next_beat = std::chrono::steady_clock::now();
      std::uint64_t seq = 1;
      while (client->is_open()) {
        const auto now = std::chrono::steady_clock::now();
        if (now - *last_ack > 3 * interval) {
          client->close();
          co_return fail(ErrorCode::kTimeout, "no acknowledgement from OneNode for 3 heartbeats");
        }
        if (now >= next_beat) {
          json::object hb{{"type", "heartbeat"},
                          {"seq", seq++},
                          {"available", json::object{{"gpus", s.hardware.gpus.size()},
                                                     {"cpu_cores", s.hardware.cpu_cores},
                                                     {"ram_bytes", s.hardware.ram_bytes}}}};
          client->send(json::serialize(hb));
          next_beat = now + interval;
        }
        if (s.deployer) s.deployer->report_usage();
        timer.expires_after(std::min<std::chrono::steady_clock::duration>(std::chrono::seconds{1}, next_beat - now));
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      co_return Result<void>{};
    };
    auto listen = [this, client, last_ack, &use_gateway]() -> asio::awaitable<Result<void>> {
      for (;;) {
        auto text = co_await client->read();
        if (!text) co_return std::unexpected(text.error());
        auto msg = parse_json_message(*text, "OneNode");
        if (!msg) continue;
        const std::string type = string_field(*msg, "type");
        if (type == "ack") {
          *last_ack = std::chrono::steady_clock::now();
          acked_.fetch_add(1);
        } else if (type == "error") {
          co_return fail(ErrorCode::kUnavailable, "OneNode closed the channel: " + string_field(*msg, "message"));
        } else if (type == "logs") {
          if (impl_->deployer) {
            auto follow = msg->find("follow");
            impl_->deployer->logs(string_field(*msg, "request_id"), string_field(*msg, "lease_id"),
                                  follow != msg->end() && follow->value().is_bool() && follow->value().get_bool());
          } else {
            client->send(json::serialize(json::object{{"type", "log_end"}, {"request_id", string_field(*msg, "request_id")}}));
          }
        } else if (type == "gateway") {
          use_gateway(*msg);
        } else if (type == "popw") {
          impl_->popw->submit(*msg);
        } else if (type == "logs_stop") {
          if (impl_->deployer) impl_->deployer->logs_stop(string_field(*msg, "request_id"));
        } else if (type == "stop") {
          const std::string lease_id = string_field(*msg, "lease_id");
          if (impl_->deployer && !lease_id.empty() && lease_id.size() <= 64) impl_->deployer->stop(lease_id);
        } else if (type == "deploy") {
          auto lease = msg->find("lease");
          if (lease == msg->end() || !lease->value().is_object()) continue;
          json::object job = lease->value().get_object();
          if (impl_->deployer) {
            impl_->deployer->deploy(std::move(job));
          } else {
            client->send(json::serialize(json::object{{"type", "lease_status"},
                                                      {"lease_id", job.contains("id") ? job.at("id") : json::value("")},
                                                      {"state", "failed"},
                                                      {"reason", "this provider runs no container engine"}}));
          }
        }
      }
    };
    auto result = co_await (beat() || listen());
    client->close();
    if (result.index() == 0) co_return std::get<0>(result);
    co_return std::get<1>(result);
  };

  // The tunnel to the gateway: the gateway opens streams to leases' ports, which reach only
  // ports that a lease container of this machine publishes. Redials with backoff.
  keep_tunnel = [this, &s, say]() -> asio::awaitable<void> {
    std::chrono::milliseconds backoff = s.options.initial_backoff;
    while (!s.stopping) {
      const gateway::TunnelTarget target = s.tunnel_target;
      auto* deployer = s.deployer.get();
      gateway::TunnelConnection::Resolver resolver = [deployer](const std::string& lease, std::uint16_t port) -> std::optional<std::uint16_t> {
        if (deployer == nullptr) return std::nullopt;
        return deployer->published(lease, port);
      };
      auto dialed = co_await gateway::dial_tunnel(s.io.get_executor(), target, s.identity.node_key, resolver);
      std::string why;
      if (dialed && !s.stopping) {
        s.tunnel = *dialed;
        tunnels_.fetch_add(1);
        tunnel_up_.store(true);
        backoff = s.options.initial_backoff;
        say("tunnel up to the gateway at " + target.url);
        auto ended = co_await s.tunnel->run();
        tunnel_up_.store(false);
        s.tunnel.reset();
        why = ended ? "closed" : ended.error().message;
      } else {
        why = dialed ? "stopping" : dialed.error().message;
      }
      if (s.stopping) break;
      const auto delay = crypto::jittered(backoff);
      say("tunnel down (" + why + "); redialing in " + std::to_string(delay.count()) + " ms");
      s.tunnel_wake.expires_after(delay);
      boost::system::error_code ec;
      co_await s.tunnel_wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, s.options.max_backoff);
    }
  };

  auto redial = [this, &s, session, say]() -> asio::awaitable<void> {
    // Named first: GCC 12 mishandles temporaries in co_await expressions.
    const net::RedialOptions options{s.options.initial_backoff, s.options.max_backoff};
    auto stopping = [&s] { return s.stopping; };
    auto ups = [this] { return sessions_.load(); };
    auto down = [this, say](const Result<void>& r, std::chrono::milliseconds delay) {
      state_.store(AgentState::kBackingOff);
      say("control channel down (" + (r ? std::string("channel closed") : r.error().message) + "); reconnecting in " +
          std::to_string(delay.count()) + " ms");
    };
    co_await net::redial(s.wake, options, stopping, ups, session, down);
    state_.store(AgentState::kStopped);
  };

  asio::co_spawn(s.io, redial(), asio::detached);
  s.io.run();
  state_.store(AgentState::kStopped);
}

void Agent::stop() {
  Impl& s = *impl_;
  asio::post(s.io, [&s] {
    s.stopping = true;
    s.wake.cancel();
    s.tunnel_wake.cancel();
    if (s.tunnel) s.tunnel->close();
    if (s.client) s.client->close();
  });
}

}  // namespace kaisar::provider
