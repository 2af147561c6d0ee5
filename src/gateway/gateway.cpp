#include "gateway/gateway.hpp"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/hmac.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/json.hpp>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/json_fields.hpp"
#include "crypto/eip191.hpp"
#include "crypto/random.hpp"
#include "gateway/address_counts.hpp"
#include "gateway/ports.hpp"
#include "gateway/tls.hpp"
#include "gateway/tunnel.hpp"

namespace kaisar::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxHello = 4096;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Result<Bytes> load_or_create_secret(const std::filesystem::path& path) {
  if (path.empty()) {
    Bytes secret(32);
    crypto::random_bytes(secret);
    return secret;
  }
  if (std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string hex;
    in >> hex;
    auto bytes = from_hex(hex);
    if (!bytes || bytes->size() != 32) return fail(ErrorCode::kInvalidArgument, path.string() + " is not 32 bytes of hex");
    return std::move(*bytes);
  }
  Bytes secret(32);
  crypto::random_bytes(secret);
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  {
    std::ofstream out(path, std::ios::trunc);
    if (!out) return fail(ErrorCode::kUnavailable, "cannot write " + path.string());
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    out << to_hex(secret, false) << "\n";
  }
  return secret;
}

}  // namespace

const char* Gateway::migration_sql() {
  return R"sql(
CREATE TABLE gateway_ports (
  public_port    INTEGER PRIMARY KEY,
  lease_id       TEXT NOT NULL,
  container_port INTEGER NOT NULL,
  released_at    INTEGER
);
CREATE INDEX gateway_ports_lease ON gateway_ports(lease_id);
)sql";
}

struct Gateway::Impl {
  // First member: destroyed last, after everything that uses it (its pending coroutines,
  // which hold sockets, are destroyed with it).
  asio::io_context io{1};
  GatewayOptions options;
  Authorizer authorize;
  store::Database* db = nullptr;
  TlsIdentity identity;
  Bytes secret;
  asio::ssl::context tls{asio::ssl::context::tls_server};
  tcp::acceptor tunnel_acceptor{io};
  std::uint16_t tunnel_port = 0;
  std::optional<PortPool> pool;  // with a configured range
  std::map<std::pair<std::string, std::uint16_t>, std::uint16_t> remembered;  // (lease, port) → public port
  std::map<std::uint16_t, PortPool::Clock::time_point> resting;  // without a range: freed ports and until when
  struct Listener {
    explicit Listener(asio::io_context& io) : acceptor(io) {}
    std::string lease_id;
    std::string provider;  // lower-case hex
    Port port;
    std::uint16_t public_port = 0;
    tcp::acceptor acceptor;
    bool closed = false;
    std::optional<AddressCounts> from;       // this port's connections per address
    std::shared_ptr<AddressCounts> of_lease;  // shared by the lease's ports
  };
  std::map<std::string, std::vector<std::shared_ptr<Listener>>> by_lease;
  std::map<std::string, std::shared_ptr<TunnelConnection>> tunnels;  // provider (lower-case hex) → tunnel
  std::optional<AddressCounts> handshakes;  // tunnel connections not yet authenticated
  std::shared_ptr<TunnelConnection::SharedBudget> budget = std::make_shared<TunnelConnection::SharedBudget>();
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  std::thread thread;
  std::atomic<bool> stopped{false};
  // What expose() published, for endpoints() from any thread. The gateway's thread takes no
  // lock but this one and never touches the database, so callers may hold theirs.
  mutable std::mutex published_mutex;
  std::map<std::string, std::vector<Endpoint>> published;

  void say(const std::string& line) const {
    if (options.log) options.log(line);
  }

  // Runs `f` on the gateway's thread and returns its result.
  template <class F>
  auto on_io(F f) -> decltype(f()) {
    using R = decltype(f());
    if (io.get_executor().running_in_this_thread()) return f();
    // Owned by the handler: if stop() drops it unrun, the future reports a broken promise
    // instead of waiting for ever.
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto result = task->get_future();
    asio::post(io, [task] { (*task)(); });
    try {
      return result.get();
    } catch (const std::future_error&) {  // stopped meanwhile
      if constexpr (!std::is_void_v<R>) return R{};
    }
  }

  std::string token(const std::string& lease_id) const {
    const std::string message = "kaisar lease access token\n" + lease_id;
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
         message.size(), mac, &n);
    return to_hex(ByteView(mac, 16), false);
  }

  void persist(std::uint16_t public_port, const std::string& lease_id, std::uint16_t container_port) {
    if (db == nullptr) return;
    (void)db->execute("INSERT OR REPLACE INTO gateway_ports (public_port, lease_id, container_port, released_at) VALUES (?, ?, ?, NULL)",
                      {static_cast<std::int64_t>(public_port), lease_id, static_cast<std::int64_t>(container_port)});
  }

  void restore() {
    if (db == nullptr) return;
    auto rows = db->query("SELECT public_port, lease_id, container_port, released_at FROM gateway_ports");
    if (!rows) return;
    const auto now = unix_now();
    const auto steady = PortPool::Clock::now();
    for (const auto& r : *rows) {
      const auto port = static_cast<std::uint16_t>(r.integer(0));
      // A lease that was live keeps its port when it is exposed again; until then (and if it
      // never is) the port rests, as do the ports of leases that ended lately.
      std::int64_t rest_until = now + options.cool_down.count();
      if (r.is_null(3)) {
        remembered[{r.text(1), static_cast<std::uint16_t>(r.integer(2))}] = port;
      } else {
        rest_until = r.integer(3) + options.cool_down.count();
      }
      if (rest_until <= now) {
        (void)db->execute("DELETE FROM gateway_ports WHERE public_port = ? AND released_at IS NOT NULL",
                          {static_cast<std::int64_t>(port)});
        continue;
      }
      if (pool) pool->hold(port, steady + std::chrono::seconds{rest_until - now});
      else resting[port] = steady + std::chrono::seconds{rest_until - now};
    }
  }

  Result<std::vector<Endpoint>> expose(const std::string& lease_id, const std::string& provider, const std::vector<Port>& ports) {
    std::vector<Endpoint> out;
    auto& listeners = by_lease[lease_id];
    std::set<std::uint16_t> was_there;  // listeners from before this call
    for (const auto& l : listeners) was_there.insert(l->public_port);
    for (const auto& p : ports) {
      auto existing = std::find_if(listeners.begin(), listeners.end(),
                                   [&](const auto& l) { return l->port.container_port == p.container_port; });
      if (existing != listeners.end()) {
        out.push_back(Endpoint{(*existing)->port, (*existing)->public_port});
        continue;
      }
      std::uint16_t wanted = 0;
      const auto key = std::pair{lease_id, p.container_port};
      if (auto it = remembered.find(key); it != remembered.end()) wanted = it->second;
      if (pool) {
        if (wanted != 0 && !pool->restore(wanted, lease_id, p.container_port)) wanted = 0;
        if (wanted == 0) {
          auto allocated = pool->allocate(lease_id, p.container_port, PortPool::Clock::now());
          if (!allocated) return std::unexpected(allocated.error());
          wanted = *allocated;
        }
      }
      auto l = std::make_shared<Listener>(io);
      l->lease_id = lease_id;
      l->provider = provider;
      l->port = p;
      l->from.emplace(options.max_connections_per_address, std::numeric_limits<std::size_t>::max());
      l->of_lease = listeners.empty() ? std::make_shared<AddressCounts>(std::numeric_limits<std::size_t>::max(),
                                                                        options.max_connections_per_lease)
                                      : listeners.front()->of_lease;
      boost::system::error_code ec;
      auto address = asio::ip::make_address(options.listen_host, ec);
      if (ec) return fail(ErrorCode::kInvalidArgument, "bad listen address " + options.listen_host);
      auto bind = [&](std::uint16_t port) {
        boost::system::error_code e;
        if (l->acceptor.is_open()) l->acceptor.close(e);
        l->acceptor.open(address.is_v6() ? tcp::v6() : tcp::v4(), e);
        // SO_REUSEADDR takes a known port back although its old connections linger in
        // TIME_WAIT (after a restart). For port 0 it is set only after the bind: set before,
        // Linux may hand out a port another socket has bound and not yet listens on, and
        // one of the two would take the other's connections.
        if (!e && port != 0) l->acceptor.set_option(tcp::acceptor::reuse_address(true), e);
        if (!e) l->acceptor.bind(tcp::endpoint(address, port), e);
        if (!e && port == 0) l->acceptor.set_option(tcp::acceptor::reuse_address(true), e);
        if (!e) l->acceptor.listen(asio::socket_base::max_listen_connections, e);
        return e;
      };
      ec = bind(wanted);
      if (ec && !pool && wanted != 0) ec = bind(0);  // the remembered port went to someone else
      if (!pool) {
        // Any free port, but not one that rests (another lease's until lately): such a port
        // stays bound aside meanwhile, so the system offers a different one.
        std::vector<tcp::acceptor> aside;
        const auto now_steady = PortPool::Clock::now();
        std::erase_if(resting, [&](const auto& r) { return r.second <= now_steady; });
        while (!ec && aside.size() < 64) {
          const auto got = l->acceptor.local_endpoint().port();
          auto r = resting.find(got);
          if (r == resting.end() || got == wanted) break;
          aside.push_back(std::move(l->acceptor));
          l->acceptor = tcp::acceptor(io);
          ec = bind(0);
        }
      }
      for (int attempt = 0; ec && pool && attempt < 16; ++attempt) {
        // Taken by another program: it rests like a freed one, and the next port is tried.
        pool->release_port(wanted, PortPool::Clock::now());
        auto next = pool->allocate(lease_id, p.container_port, PortPool::Clock::now());
        if (!next) break;
        wanted = *next;
        ec = bind(wanted);
      }
      if (ec) {
        // Nothing half done: the ports this call opened close again.
        if (pool) pool->release_port(wanted, PortPool::Clock::now());
        for (auto it = listeners.begin(); it != listeners.end();) {
          if (std::find_if(out.begin(), out.end(), [&](const Endpoint& e) { return e.public_port == (*it)->public_port; }) !=
                  out.end() &&
              !was_there.contains((*it)->public_port)) {
            (*it)->closed = true;
            boost::system::error_code ignored;
            (*it)->acceptor.close(ignored);
            if (pool) pool->release_port((*it)->public_port, PortPool::Clock::now());
            it = listeners.erase(it);
          } else {
            ++it;
          }
        }
        return fail(ErrorCode::kUnavailable,
                    "cannot listen on " + options.listen_host + ":" + std::to_string(wanted) + ": " + ec.message());
      }
      l->public_port = l->acceptor.local_endpoint().port();
      remembered[key] = l->public_port;
      listeners.push_back(l);
      asio::co_spawn(io, serve(this, l), asio::detached);
      out.push_back(Endpoint{p, l->public_port});
    }
    return out;
  }

  void withdraw(const std::string& lease_id) {
    std::set<std::string> providers;
    if (auto it = by_lease.find(lease_id); it != by_lease.end()) {
      for (auto& l : it->second) {
        l->closed = true;
        boost::system::error_code ec;
        l->acceptor.close(ec);
        providers.insert(l->provider);
      }
      by_lease.erase(it);
    }
    for (const auto& p : providers) {
      if (auto t = tunnels.find(p); t != tunnels.end()) t->second->reset_lease(lease_id);
    }
    if (pool) {
      (void)pool->release(lease_id, PortPool::Clock::now());
    } else {
      for (const auto& [key, port] : remembered) {
        if (key.first == lease_id) resting[port] = PortPool::Clock::now() + options.cool_down;
      }
    }
    std::erase_if(remembered, [&](const auto& entry) { return entry.first.first == lease_id; });
  }

  static asio::awaitable<void> serve(Impl* self, std::shared_ptr<Listener> l) {
    for (;;) {
      auto [ec, socket] = co_await l->acceptor.async_accept(kTuple);
      if (l->closed || !l->acceptor.is_open()) co_return;
      if (ec) {
        asio::steady_timer pause(self->io, std::chrono::milliseconds{50});  // e.g. out of file descriptors
        (void)co_await pause.async_wait(kTuple);
        continue;
      }
      asio::co_spawn(self->io, connection(self, l, std::move(socket)), asio::detached);
    }
  }

  // Writes `response` (if any) and closes. By reference, and called with named values only:
  // GCC 12 can destroy temporaries of a co_await expression twice.
  static asio::awaitable<void> answer_here(tcp::socket& socket, const std::string& response) {
    if (!response.empty()) (void)co_await asio::async_write(socket, asio::buffer(response), kTuple);
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
  }

  static std::string group_of(const tcp::socket& socket) {
    boost::system::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    return ec ? std::string("?") : address_group(remote.address());
  }

  static asio::awaitable<void> connection(Impl* self, std::shared_ptr<Listener> l, tcp::socket socket) {
    std::string refusal;  // an answer instead of the relay
    const bool http = !l->port.tcp;
    // Counted from accept to close, relayed or not: per address on this port, and for the lease.
    const std::string group = group_of(socket);
    auto from_address = l->from->take(group);
    auto of_lease = from_address ? l->of_lease->take(group) : nullptr;
    if (!of_lease) {
      if (http) {
        refusal = plain_response(429, "Too Many Requests",
                                 from_address ? "this lease has as many connections as it may have; try again later"
                                              : "too many connections from your address to this port",
                                 "Retry-After: 5\r\n");
      }
      co_await answer_here(socket, refusal);
      co_return;
    }
    auto hold = std::make_shared<std::pair<std::shared_ptr<void>, std::shared_ptr<void>>>(std::move(from_address),
                                                                                           std::move(of_lease));
    std::string forward;  // what goes on to the container first
    std::unique_ptr<RequestFilter> filter;
    if (http && !l->port.open_to_all) {
      // The first request head must carry the lease's token before a stream is opened; the
      // filter then checks every later request of the connection in the tunnel.
      filter = std::make_unique<RequestFilter>(self->token(l->lease_id));
      beast::tcp_stream stream(std::move(socket));
      stream.expires_after(self->options.handshake_timeout);
      char buffer[4096];
      bool complete = true;
      while (filter->requests() == 0 && !filter->refusal()) {
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer), kTuple);
        if (ec) {
          complete = false;  // closed or timed out before a whole head
          break;
        }
        (void)filter->feed(std::string_view(buffer, n), forward);
      }
      stream.expires_never();
      socket = stream.release_socket();
      if (!complete) co_return;
      if (filter->requests() == 0) {
        refusal = *filter->refusal();
        co_await answer_here(socket, refusal);
        co_return;
      }
    }
    if (l->closed) co_return;
    auto t = self->tunnels.find(l->provider);
    if (t == self->tunnels.end() || t->second->closed()) {
      if (http) refusal = plain_response(502, "Bad Gateway", "the provider is not connected to the gateway");
      co_await answer_here(socket, refusal);
      co_return;
    }
    t->second->relay(std::move(socket), l->lease_id, l->port.container_port, std::move(forward), http, std::move(filter),
                     std::move(hold));
  }

  static asio::awaitable<void> accept_tunnels(Impl* self) {
    for (;;) {
      auto [ec, socket] = co_await self->tunnel_acceptor.async_accept(kTuple);
      if (!self->tunnel_acceptor.is_open()) co_return;
      if (ec) {
        asio::steady_timer pause(self->io, std::chrono::milliseconds{50});
        (void)co_await pause.async_wait(kTuple);
        continue;
      }
      // Unauthenticated connections are capped per address, so strangers holding idle ones
      // cannot take every slot from providers elsewhere. Over a cap: closed at once.
      auto slot = self->handshakes->take(group_of(socket));
      if (!slot || self->tunnels.size() >= self->options.max_tunnels) continue;
      asio::co_spawn(self->io, admit(self, std::move(socket), std::move(slot)), asio::detached);
    }
  }

  // TLS, WebSocket, then the node key: a challenge the agent signs (tunnel_auth_message).
  // `slot` counts the connection until it is authenticated.
  static asio::awaitable<void> admit(Impl* self, tcp::socket socket, std::shared_ptr<void> slot) {
    auto ws = std::make_unique<TunnelSocket>(beast::tcp_stream(std::move(socket)), self->tls);
    auto& lowest = beast::get_lowest_layer(*ws);
    lowest.expires_after(self->options.handshake_timeout);  // TLS, WebSocket and hello together
    auto [tls_ec] = co_await ws->next_layer().async_handshake(asio::ssl::stream_base::server, kTuple);
    if (tls_ec) co_return;
    auto [ws_ec] = co_await ws->async_accept(kTuple);
    if (ws_ec) co_return;
    ws->read_message_max(kMaxHello);  // a stranger's message is small until the node is known
    std::array<std::uint8_t, 32> nonce_bytes{};
    crypto::random_bytes(nonce_bytes);
    const std::string nonce = to_hex(nonce_bytes, false);
    ws->text(true);
    const std::string challenge = json::serialize(
        json::object{{"type", "challenge"}, {"nonce", nonce}, {"certificate_sha256", self->identity.sha256}});
    auto [w_ec, w_n] = co_await ws->async_write(asio::buffer(challenge), kTuple);
    if (w_ec) co_return;
    beast::flat_buffer buffer;
    auto [r_ec, r_n] = co_await ws->async_read(buffer, kTuple);
    if (r_ec) co_return;
    lowest.expires_never();
    boost::system::error_code jec;
    auto hello = json::parse(beast::buffers_to_string(buffer.cdata()), jec);
    const json::object* o = !jec && hello.is_object() ? &hello.get_object() : nullptr;
    auto field = [&](std::string_view key) { return o != nullptr ? string_field(*o, key) : std::string{}; };
    std::string refusal;
    std::optional<crypto::Address> node;
    if (o == nullptr || field("type") != "hello") {
      refusal = "expected {\"type\":\"hello\",\"node\":…,\"signature\":…}";
    } else {
      auto parsed = crypto::Address::parse(field("node"));
      auto signature = crypto::Signature::parse(field("signature"));
      if (!parsed || !signature) {
        refusal = "hello needs node (an address) and signature (65 bytes of hex)";
      } else if (auto signer = crypto::recover_personal_signer(tunnel_auth_message(self->identity.sha256, nonce), *signature);
                 !signer || *signer != *parsed) {
        refusal = "the signature is not the node key's";
      } else if (!self->authorize || !self->authorize(*parsed)) {
        refusal = "no registered provider " + parsed->to_checksum() + " (connect the agent to OneNode first)";
      } else {
        node = *parsed;
      }
    }
    if (!node) {
      const std::string error = json::serialize(json::object{{"type", "error"}, {"message", refusal}});
      (void)co_await ws->async_write(asio::buffer(error), kTuple);
      boost::system::error_code ec;
      beast::get_lowest_layer(*ws).socket().close(ec);
      co_return;
    }
    const std::string welcome = json::serialize(json::object{{"type", "welcome"}});
    auto [we_ec, we_n] = co_await ws->async_write(asio::buffer(welcome), kTuple);
    if (we_ec) co_return;
    ws->read_message_max(kMaxData + 1024);
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = self->options.handshake_timeout;
    timeouts.idle_timeout = self->options.idle_timeout;
    timeouts.keep_alive_pings = true;
    ws->set_option(timeouts);
    TunnelConnection::Limits limits;
    limits.max_buffered_per_lease = self->options.max_buffered_per_lease;
    limits.budget = self->budget;
    auto tunnel = std::make_shared<TunnelConnection>(std::move(ws), Mux::Role::kGateway, TunnelConnection::Resolver{},
                                                     std::move(limits));
    const std::string key = node->to_lower_hex();
    if (auto old = self->tunnels.find(key); old != self->tunnels.end()) old->second->close();  // the agent came back
    self->tunnels[key] = tunnel;
    slot.reset();
    self->say("tunnel up for provider " + node->to_checksum());
    auto ended = co_await tunnel->run();
    if (auto it = self->tunnels.find(key); it != self->tunnels.end() && it->second == tunnel) self->tunnels.erase(it);
    self->say("tunnel down for provider " + node->to_checksum() + ": " + (ended ? std::string("closed") : ended.error().message));
  }
};

Gateway::Gateway(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() { stop(); }

Result<std::unique_ptr<Gateway>> Gateway::start(GatewayOptions options, Authorizer authorize, store::Database* db) {
  auto impl = std::make_shared<Impl>();
  Impl& s = *impl;
  if (options.public_host.empty()) options.public_host = options.listen_host;
  s.options = std::move(options);
  s.authorize = std::move(authorize);
  s.db = db;
  s.handshakes.emplace(s.options.max_handshakes_per_address, s.options.max_handshakes);
  s.budget->limit = s.options.max_buffered;
  if ((s.options.first_port == 0) != (s.options.last_port == 0)) {
    return fail(ErrorCode::kInvalidArgument, "the gateway's port range needs both ends (or neither: any free port)");
  }
  if (s.options.first_port != 0) {
    auto pool = PortPool::create(s.options.first_port, s.options.last_port, s.options.cool_down);
    if (!pool) return std::unexpected(pool.error());
    s.pool.emplace(std::move(*pool));
  }
  auto identity = load_or_create_identity(s.options.certificate, s.options.private_key, s.options.public_host);
  if (!identity) return std::unexpected(identity.error());
  s.identity = std::move(*identity);
  auto secret = load_or_create_secret(s.options.secret);
  if (!secret) return std::unexpected(secret.error());
  s.secret = std::move(*secret);
  boost::system::error_code ec;
  s.tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                    asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  // Idle tunnels give their TLS buffers back (most of a tunnel's memory otherwise).
  SSL_CTX_set_mode(s.tls.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  s.tls.use_certificate_chain(asio::buffer(s.identity.certificate_pem), ec);
  if (!ec) s.tls.use_private_key(asio::buffer(s.identity.private_key_pem), asio::ssl::context::pem, ec);
  if (ec) return fail(ErrorCode::kInvalidArgument, "the gateway's TLS certificate or key: " + ec.message());
  auto address = asio::ip::make_address(s.options.listen_host, ec);
  if (ec) return fail(ErrorCode::kInvalidArgument, "bad gateway listen address '" + s.options.listen_host + "'");
  const tcp::endpoint endpoint(address, s.options.tunnel_port);
  s.tunnel_acceptor.open(endpoint.protocol(), ec);
  if (!ec && s.options.tunnel_port != 0) s.tunnel_acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.tunnel_acceptor.bind(endpoint, ec);
  if (!ec && s.options.tunnel_port == 0) s.tunnel_acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.tunnel_acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(ErrorCode::kUnavailable, "the gateway cannot listen on " + s.options.listen_host + ":" +
                                             std::to_string(s.options.tunnel_port) + ": " + ec.message());
  }
  s.tunnel_port = s.tunnel_acceptor.local_endpoint().port();
  s.restore();
  asio::co_spawn(s.io, Impl::accept_tunnels(&s), asio::detached);
  s.thread = std::thread([&s] { s.io.run(); });
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

void Gateway::stop() {
  Impl& s = *impl_;
  if (s.stopped.exchange(true)) return;
  asio::post(s.io, [&s] {
    boost::system::error_code ec;
    s.tunnel_acceptor.close(ec);
    for (auto& [lease, listeners] : s.by_lease) {
      for (auto& l : listeners) {
        l->closed = true;
        l->acceptor.close(ec);
      }
    }
    for (auto& [provider, t] : s.tunnels) t->close();
    s.io.stop();
  });
  s.work.reset();
  if (s.thread.joinable()) s.thread.join();
  s.by_lease.clear();
  s.tunnels.clear();
}

std::uint16_t Gateway::tunnel_port() const { return impl_->tunnel_port; }

std::string Gateway::tunnel_url() const {
  const std::string& host = impl_->options.public_host;
  const bool v6 = host.find(':') != std::string::npos;
  return "wss://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(impl_->tunnel_port) + "/";
}

const std::string& Gateway::certificate_sha256() const { return impl_->identity.sha256; }
const std::string& Gateway::public_host() const { return impl_->options.public_host; }

Result<std::vector<Gateway::Endpoint>> Gateway::expose(const std::string& lease_id, const crypto::Address& provider,
                                                       const std::vector<Port>& ports) {
  if (impl_->stopped) return fail(ErrorCode::kUnavailable, "the gateway is stopping");
  auto exposed = impl_->on_io([&] { return impl_->expose(lease_id, provider.to_lower_hex(), ports); });
  if (!exposed) return exposed;
  {
    std::lock_guard lock(impl_->published_mutex);
    impl_->published[lease_id] = *exposed;
  }
  for (const auto& e : *exposed) impl_->persist(e.public_port, lease_id, e.port.container_port);  // on the caller's thread
  return exposed;
}

void Gateway::withdraw(const std::string& lease_id) {
  if (impl_->stopped) return;
  impl_->on_io([&] { impl_->withdraw(lease_id); });
  {
    std::lock_guard lock(impl_->published_mutex);
    impl_->published.erase(lease_id);
  }
  if (impl_->db != nullptr) {
    (void)impl_->db->execute("UPDATE gateway_ports SET released_at = ? WHERE lease_id = ? AND released_at IS NULL",
                             {unix_now(), lease_id});
  }
}

std::vector<Gateway::Endpoint> Gateway::endpoints(const std::string& lease_id) const {
  std::lock_guard lock(impl_->published_mutex);
  auto it = impl_->published.find(lease_id);
  return it == impl_->published.end() ? std::vector<Endpoint>{} : it->second;
}

std::string Gateway::access_token(const std::string& lease_id) const { return impl_->token(lease_id); }

bool Gateway::connected(const crypto::Address& provider) const {
  if (impl_->stopped) return false;
  return impl_->on_io([&] {
    auto it = impl_->tunnels.find(provider.to_lower_hex());
    return it != impl_->tunnels.end() && !it->second->closed();
  });
}

std::size_t Gateway::tunnels() const {
  if (impl_->stopped) return 0;
  return impl_->on_io([&] { return impl_->tunnels.size(); });
}

std::size_t Gateway::buffered_bytes() const {
  if (impl_->stopped) return 0;
  return impl_->on_io([&] {
    std::size_t sum = 0;
    for (const auto& [provider, t] : impl_->tunnels) sum += t->buffered_bytes();
    return sum;
  });
}

void Gateway::disconnect(const crypto::Address& provider) {
  if (impl_->stopped) return;
  impl_->on_io([&] {
    if (auto it = impl_->tunnels.find(provider.to_lower_hex()); it != impl_->tunnels.end()) it->second->close();
  });
}

}  // namespace kaisar::gateway
