#include "gateway/tunnel.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>

namespace kaisar::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Sockets are read into this only when they have data, and it is framed before anything
// else runs: one buffer per thread, none per connection or tunnel.
std::vector<std::uint8_t>& read_buffer() {
  thread_local std::vector<std::uint8_t> buffer(kMaxData);
  return buffer;
}
}  // namespace

std::string tunnel_auth_message(std::string_view certificate_sha256, std::string_view nonce) {
  return "kaisar tunnel\ngateway certificate sha256: " + std::string(certificate_sha256) + "\nnonce: " + std::string(nonce);
}

asio::awaitable<void> answer_and_close(tcp::socket socket, std::string response) {
  (void)co_await asio::async_write(socket, asio::buffer(response), kTuple);
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

// One TCP connection carried by the tunnel.
struct TunnelConnection::Stream {
  explicit Stream(tcp::socket s) : socket(std::move(s)), wake(socket.get_executor()) {
    wake.expires_at(asio::steady_timer::time_point::max());
  }
  std::uint32_t id = 0;
  std::string lease_id;
  tcp::socket socket;
  asio::steady_timer wake;  // cancelled to wake the reader (window opened, queue drained)
  std::string pending;  // sent before more is read from the socket: a request head, what the filter passed
  std::size_t pending_at = 0;
  std::unique_ptr<RequestFilter> filter;  // token-protected HTTP: every request is checked
  std::string refusal;  // a later request was refused: the answer, once the container is done
  std::shared_ptr<void> hold;
  bool http = false;
  bool accepted = false;
  std::deque<Bytes> to_socket;  // received, not yet written to the socket
  std::size_t buffered = 0;     // bytes in to_socket and being written
  bool writing = false;
  bool peer_fin = false;
  bool fin_sent = false;
  bool done = false;
};

TunnelConnection::TunnelConnection(std::unique_ptr<TunnelSocket> socket, Mux::Role role, Resolver resolver,
                                   Limits limits)
    : ws_(std::move(socket)),
      mux_(role, limits.window, limits.max_streams),
      resolver_(std::move(resolver)),
      limits_(std::move(limits)) {
  ws_->binary(true);
  ws_->auto_fragment(false);  // one WebSocket frame per message
}

TunnelConnection::~TunnelConnection() { count(-static_cast<std::int64_t>(queued_), -static_cast<std::int64_t>(buffered_)); }

void TunnelConnection::count(std::int64_t queued, std::int64_t buffered) {
  queued_ = static_cast<std::size_t>(static_cast<std::int64_t>(queued_) + queued);
  buffered_ = static_cast<std::size_t>(static_cast<std::int64_t>(buffered_) + buffered);
  if (limits_.budget) {
    limits_.budget->used = static_cast<std::size_t>(static_cast<std::int64_t>(limits_.budget->used) + queued + buffered);
  }
}

void TunnelConnection::unbuffer(const std::shared_ptr<Stream>& s, std::size_t n) {
  n = std::min(n, s->buffered);
  if (n == 0) return;
  s->buffered -= n;
  count(0, -static_cast<std::int64_t>(n));
  auto it = buffered_by_lease_.find(s->lease_id);
  if (it == buffered_by_lease_.end()) return;
  it->second -= std::min(n, it->second);
  if (it->second == 0) buffered_by_lease_.erase(it);
}

bool TunnelConnection::over_budget() const {
  return queued_ > limits_.max_queued || (limits_.budget && limits_.budget->used > limits_.budget->limit);
}

void TunnelConnection::shed(const std::string& lease_id) {
  std::shared_ptr<Stream> most;
  for (const auto& [id, s] : streams_) {
    if ((lease_id.empty() || s->lease_id == lease_id) && (!most || s->buffered > most->buffered)) most = s;
  }
  if (most && most->buffered > 0) abort(most, ResetCode::kGone, "the connection reads too slowly: the gateway's buffer is full");
}

asio::any_io_executor TunnelConnection::executor() { return ws_->get_executor(); }

std::shared_ptr<TunnelConnection::Stream> TunnelConnection::find(std::uint32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

void TunnelConnection::send(const Frame& frame) {
  if (closed_) return;
  auto bytes = encode_frame(frame);
  if (!bytes) return;  // this side's frames are built valid; nothing to send otherwise
  count(static_cast<std::int64_t>(bytes->size()), 0);
  out_.push_back(std::move(*bytes));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(ws_->get_executor(), write_tunnel(shared_from_this()), asio::detached);
  }
}

asio::awaitable<void> TunnelConnection::write_tunnel(std::shared_ptr<TunnelConnection> self) {
  while (!self->out_.empty() && !self->closed_) {
    const Bytes& message = self->out_.front();  // deque: stays put while others are added
    auto [ec, n] = co_await self->ws_->async_write(asio::buffer(message), kTuple);
    if (ec) {
      self->close();
      break;
    }
    self->count(-static_cast<std::int64_t>(message.size()), 0);
    self->out_.pop_front();
    if (self->blocked_ && self->queued_ <= self->limits_.max_queued / 2) {
      self->blocked_ = false;
      for (auto& [id, s] : self->streams_) s->wake.cancel();
    }
  }
  self->writing_ = false;
}

void TunnelConnection::finish(const std::shared_ptr<Stream>& s) {
  if (s->done) return;
  s->done = true;
  boost::system::error_code ec;
  s->socket.close(ec);
  s->wake.cancel();
  s->to_socket.clear();
  unbuffer(s, s->buffered);
  streams_.erase(s->id);
}

void TunnelConnection::abort(const std::shared_ptr<Stream>& s, ResetCode code, std::string message) {
  if (s->done) return;
  send(mux_.reset(s->id, code, std::move(message)));
  finish(s);
}

void TunnelConnection::maybe_done(const std::shared_ptr<Stream>& s) {
  if (s->fin_sent && s->peer_fin && !s->writing && s->to_socket.empty()) finish(s);
}

void TunnelConnection::start_socket_writer(const std::shared_ptr<Stream>& s) {
  if (s->writing || s->done) return;
  s->writing = true;
  asio::co_spawn(ws_->get_executor(), write_socket(shared_from_this(), s), asio::detached);
}

asio::awaitable<void> TunnelConnection::write_socket(std::shared_ptr<TunnelConnection> self, std::shared_ptr<Stream> s) {
  while (!s->to_socket.empty() && !s->done) {
    Bytes bytes = std::move(s->to_socket.front());
    s->to_socket.pop_front();
    auto [ec, n] = co_await asio::async_write(s->socket, asio::buffer(bytes), kTuple);
    if (s->done) break;
    self->unbuffer(s, bytes.size());
    if (ec) {
      s->writing = false;
      self->abort(s, ResetCode::kGone, "the connection closed");
      co_return;
    }
    if (auto window = self->mux_.consumed(s->id, n)) self->send(*window);
  }
  if (!s->done && s->peer_fin && s->to_socket.empty() && !s->refusal.empty()) {
    // The container answered what went before the refused request: now the refusal.
    const std::string refusal = std::move(s->refusal);
    s->refusal.clear();
    (void)co_await asio::async_write(s->socket, asio::buffer(refusal), kTuple);
  }
  s->writing = false;
  if (!s->done && s->peer_fin && s->to_socket.empty()) {
    boost::system::error_code ec;
    s->socket.shutdown(tcp::socket::shutdown_send, ec);
    self->maybe_done(s);
  }
}

asio::awaitable<void> TunnelConnection::read_socket(std::shared_ptr<TunnelConnection> self, std::shared_ptr<Stream> s) {
  const auto accept_by = asio::steady_timer::clock_type::now() + self->limits_.accept_timeout;
  boost::system::error_code ec;
  s->socket.non_blocking(true, ec);  // read only what is there; wait for more without a buffer
  for (;;) {
    // Wait for room: the stream's window (and ACCEPT), the tunnel's queue and the shared budget.
    while (!s->done && (self->mux_.sendable(s->id) == 0 || self->over_budget())) {
      if (self->queued_ > self->limits_.max_queued) self->blocked_ = true;
      if (!s->accepted && asio::steady_timer::clock_type::now() >= accept_by) {
        self->abort(s, ResetCode::kGone, "the provider did not answer in time");
        co_return;
      }
      // Until ACCEPT, wake at the deadline too; after it, only when woken. The shared budget
      // is freed by other tunnels, which do not know this one: look again shortly.
      auto until = s->accepted ? asio::steady_timer::time_point::max() : accept_by;
      if (self->limits_.budget && self->limits_.budget->used > self->limits_.budget->limit) {
        until = std::min(until, asio::steady_timer::clock_type::now() + std::chrono::milliseconds{50});
      }
      s->wake.expires_at(until);
      (void)co_await s->wake.async_wait(kTuple);
    }
    if (s->done) co_return;
    const std::size_t room = std::min(self->mux_.sendable(s->id), kMaxData);
    std::size_t taken = 0;
    if (s->pending_at < s->pending.size()) {
      const std::size_t n = std::min(room, s->pending.size() - s->pending_at);
      const auto* at = reinterpret_cast<const std::uint8_t*>(s->pending.data()) + s->pending_at;
      for (const auto& frame : self->mux_.send(s->id, ByteView(at, n), &taken)) self->send(frame);
      s->pending_at += taken;
      if (s->pending_at == s->pending.size()) {
        s->pending.clear();
        s->pending_at = 0;
      }
      continue;
    }
    if (s->filter && s->filter->refusal()) {
      // A request without the token: the container hears the client's end, answers what came
      // before, and the client gets the refusal after that (write_socket).
      s->refusal = *s->filter->refusal();
      s->filter.reset();
      self->send(self->mux_.fin(s->id));
      s->fin_sent = true;
      if (s->peer_fin && !s->writing) self->start_socket_writer(s);
      self->maybe_done(s);
      co_return;
    }
    auto& buffer = read_buffer();
    const std::size_t n = s->socket.read_some(asio::buffer(buffer.data(), room), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      auto [wait_ec] = co_await s->socket.async_wait(tcp::socket::wait_read, kTuple);
      if (s->done) co_return;
      if (wait_ec) {
        self->abort(s, ResetCode::kGone, "the connection was reset");
        co_return;
      }
      continue;
    }
    if (ec == asio::error::eof) {
      self->send(self->mux_.fin(s->id));
      s->fin_sent = true;
      self->maybe_done(s);
      co_return;
    }
    if (ec) {
      self->abort(s, ResetCode::kGone, "the connection was reset");
      co_return;
    }
    if (s->filter) {
      (void)s->filter->feed(std::string_view(reinterpret_cast<const char*>(buffer.data()), n), s->pending);
      continue;
    }
    for (const auto& frame : self->mux_.send(s->id, ByteView(buffer.data(), n), &taken)) self->send(frame);
  }
}

asio::awaitable<void> TunnelConnection::connect_local(std::shared_ptr<TunnelConnection> self, std::uint32_t id,
                                                      std::string lease_id, std::uint16_t host_port) {
  tcp::socket socket(self->ws_->get_executor());
  auto [ec] = co_await socket.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), host_port), kTuple);
  const bool wanted = self->connecting_.erase(id) > 0 && !self->closed_;
  if (!wanted) co_return;  // reset by the gateway meanwhile, or the tunnel is gone
  if (ec) {
    self->send(self->mux_.reset(id, ResetCode::kRefused, "the container's port does not answer: " + ec.message()));
    co_return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  auto s = std::make_shared<Stream>(std::move(socket));
  s->id = id;
  s->lease_id = std::move(lease_id);
  s->accepted = true;
  self->streams_[id] = s;
  self->send(self->mux_.accept(id));
  asio::co_spawn(self->ws_->get_executor(), read_socket(self, s), asio::detached);
}

void TunnelConnection::relay(tcp::socket client, const std::string& lease_id, std::uint16_t port,
                             std::string first_bytes, bool http, std::unique_ptr<RequestFilter> filter,
                             std::shared_ptr<void> hold) {
  if (closed_) {
    asio::co_spawn(ws_->get_executor(),
                   answer_and_close(std::move(client), http ? plain_response(502, "Bad Gateway", "the provider's tunnel closed")
                                                            : std::string{}),
                   asio::detached);
    return;
  }
  std::size_t of_lease = 0;
  for (const auto& [id, s] : streams_) of_lease += s->lease_id == lease_id ? 1u : 0u;
  auto opened = of_lease >= limits_.max_streams_per_lease
                    ? Result<Frame>(fail(ErrorCode::kUnavailable, "too many connections to this lease"))
                    : mux_.open(lease_id, port);
  if (!opened) {
    asio::co_spawn(ws_->get_executor(),
                   answer_and_close(std::move(client), http ? plain_response(503, "Service Unavailable", opened.error().message)
                                                            : std::string{}),
                   asio::detached);
    return;
  }
  boost::system::error_code ec;
  client.set_option(tcp::no_delay(true), ec);
  auto s = std::make_shared<Stream>(std::move(client));
  s->id = opened->stream;
  s->lease_id = lease_id;
  s->pending = std::move(first_bytes);
  s->filter = std::move(filter);
  s->hold = std::move(hold);
  s->http = http;
  streams_[s->id] = s;
  send(*opened);
  asio::co_spawn(ws_->get_executor(), read_socket(shared_from_this(), s), asio::detached);
}

void TunnelConnection::reset_lease(const std::string& lease_id) {
  std::vector<std::shared_ptr<Stream>> ending;
  for (auto& [id, s] : streams_) {
    if (s->lease_id == lease_id) ending.push_back(s);
  }
  for (auto& s : ending) abort(s, ResetCode::kGone, "the lease ended");
}

void TunnelConnection::close() {
  if (closed_) return;
  closed_ = true;
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) {
    s->done = true;
    boost::system::error_code ec;
    s->socket.close(ec);
    s->wake.cancel();
    s->to_socket.clear();
    unbuffer(s, s->buffered);
  }
  connecting_.clear();
  boost::system::error_code ec;
  beast::get_lowest_layer(*ws_).socket().close(ec);
}

void TunnelConnection::handle(Mux::Event& event) {
  if (auto* opened = std::get_if<Mux::Opened>(&event)) {
    std::optional<std::uint16_t> host_port;
    if (resolver_) host_port = resolver_(opened->lease_id, opened->port);
    if (!host_port) {
      send(mux_.reset(opened->stream, ResetCode::kNotAllowed,
                      "port " + std::to_string(opened->port) + " of lease " + opened->lease_id + " is not on this provider"));
      return;
    }
    connecting_.insert(opened->stream);
    asio::co_spawn(ws_->get_executor(), connect_local(shared_from_this(), opened->stream, opened->lease_id, *host_port),
                   asio::detached);
    return;
  }
  if (auto* accepted = std::get_if<Mux::Accepted>(&event)) {
    if (auto s = find(accepted->stream)) {
      s->accepted = true;
      s->wake.cancel();
    }
    return;
  }
  if (auto* received = std::get_if<Mux::Received>(&event)) {
    auto s = find(received->stream);
    if (!s) return;  // ended on this side; the peer will hear the RESET
    const std::size_t n = received->bytes.size();
    s->buffered += n;
    count(0, static_cast<std::int64_t>(n));
    const std::size_t of_lease = buffered_by_lease_[s->lease_id] += n;
    s->to_socket.push_back(std::move(received->bytes));
    start_socket_writer(s);
    if (of_lease > limits_.max_buffered_per_lease) shed(s->lease_id);
    else if (limits_.budget && limits_.budget->used > limits_.budget->limit) shed({});
    return;
  }
  if (auto* writable = std::get_if<Mux::Writable>(&event)) {
    if (auto s = find(writable->stream)) s->wake.cancel();
    return;
  }
  if (auto* finished = std::get_if<Mux::Finished>(&event)) {
    auto s = find(finished->stream);
    if (!s) return;
    s->peer_fin = true;
    if (!s->writing && s->to_socket.empty()) {
      if (!s->refusal.empty()) {
        start_socket_writer(s);  // writes the refusal, then ends the connection
        return;
      }
      boost::system::error_code ec;
      s->socket.shutdown(tcp::socket::shutdown_send, ec);
    }
    maybe_done(s);
    return;
  }
  if (auto* reset = std::get_if<Mux::ResetByPeer>(&event)) {
    connecting_.erase(reset->stream);
    auto s = find(reset->stream);
    if (!s) return;
    if (s->http && !s->accepted) {
      // Nothing reached the container: tell the HTTP client why.
      s->done = true;
      s->wake.cancel();
      streams_.erase(s->id);
      asio::co_spawn(ws_->get_executor(),
                     answer_and_close(std::move(s->socket), plain_response(502, "Bad Gateway", reset->message)),
                     asio::detached);
      return;
    }
    finish(s);
    return;
  }
  if (auto* reply = std::get_if<Mux::Reply>(&event)) {
    // A PONG only when the queue has room: a peer that pings without reading gets none,
    // rather than growing our queue.
    if (queued_ <= limits_.max_queued) send(reply->frame);
  }
}

asio::awaitable<Result<void>> TunnelConnection::run() {
  auto self = shared_from_this();
  beast::flat_buffer buffer;
  Result<void> why;
  while (!closed_) {
    buffer.clear();
    auto [ec, n] = co_await ws_->async_read(buffer, kTuple);
    if (ec) {
      why = fail(ErrorCode::kUnavailable, "the tunnel closed: " + ec.message());
      break;
    }
    if (!ws_->got_binary()) {
      why = fail(ErrorCode::kInvalidArgument, "tunnel protocol: a text message after the handshake");
      break;
    }
    const auto data = buffer.cdata();
    auto frame = decode_frame(ByteView(static_cast<const std::uint8_t*>(data.data()), data.size()));
    if (!frame) {
      why = std::unexpected(frame.error());
      break;
    }
    auto event = mux_.receive(std::move(*frame));
    if (!event) {
      why = std::unexpected(event.error());
      break;
    }
    handle(*event);
  }
  if (why && closed_) why = fail(ErrorCode::kUnavailable, "the tunnel was closed");
  close();
  co_return why;
}

}  // namespace kaisar::gateway
