#include "net/server.hpp"
#include "net/websocket_queue.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/beast_message.hpp"
#include "net/request_parse.hpp"

namespace kaisar::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Buffers that grew past this for one large message are given back afterwards, so that
// thousands of idle connections stay small.
constexpr std::size_t kShrinkAbove = 8 << 10;
// An SSE client that falls this far behind is disconnected instead of buffering forever.
constexpr std::size_t kSsePendingLimit = 4 << 20;
// After an error answer, unread request bytes are drained for this long before closing so
// that the client sees the answer rather than a reset.
constexpr std::chrono::seconds kLingerTime{1};
constexpr std::size_t kLingerBytes = 1 << 20;

// Runs an SSE or WebSocket route's handler; a handler that throws refuses with a 500.
template <class Call>
std::optional<Response> call_handler(const Call& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    return Response::error(ErrorCode::kInternal, std::string("handler failed: ") + e.what());
  } catch (...) {
    return Response::error(ErrorCode::kInternal, "handler failed");
  }
}

// Completion for detached coroutines: they catch what they can themselves; an escaping
// exception must not take the server down.
void ignore_exception(const std::exception_ptr&) noexcept {}

class Connection;

// State shared by the server and every connection. Connections hold it so that the
// io_context outlives any session object an application keeps after the server stops.
struct Shared {
  Shared(ServerOptions o, Router r)
      : ioc(static_cast<int>(std::max<std::size_t>(o.threads, 1))),
        options(std::move(o)),
        router(std::move(r)),
        acceptor(asio::make_strand(ioc)),
        admission(std::make_shared<Admission>(options.admission)) {}

  asio::io_context ioc;  // first member: destroyed last
  ServerOptions options;
  Router router;
  tcp::acceptor acceptor;
  std::shared_ptr<Admission> admission;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};

  std::mutex mutex;
  std::condition_variable changed;
  std::unordered_map<const Connection*, std::weak_ptr<Connection>> live;

  void add(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex);
    live.emplace(connection.get(), connection);
  }
  void remove(const Connection* connection) {
    std::lock_guard lock(mutex);
    if (live.erase(connection) > 0) changed.notify_all();
  }
  std::vector<std::shared_ptr<Connection>> snapshot() {
    std::vector<std::shared_ptr<Connection>> out;
    std::lock_guard lock(mutex);
    out.reserve(live.size());
    for (auto& [ptr, weak] : live) {
      if (auto strong = weak.lock()) out.push_back(std::move(strong));
    }
    return out;
  }
  // True when no connection is left.
  bool wait_idle(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex);
    return changed.wait_until(lock, deadline, [&] { return live.empty(); });
  }
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Shared> shared, asio::any_io_executor executor)
      : shared_(std::move(shared)), executor_(std::move(executor)) {}
  virtual ~Connection() { shared_->remove(this); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Server stop, first phase: idle connections close, streams end. Thread-safe.
  virtual void begin_shutdown() = 0;
  // Server stop, grace over: everything closes now. Thread-safe.
  virtual void force_close() = 0;

  // Keeps `slots` taken until this connection finishes. On the connection's strand.
  void hold(std::vector<std::shared_ptr<Admission::Slot>> slots) {
    for (auto& slot : slots) slots_.push_back(std::move(slot));
  }

 protected:
  template <class F>
  void on_strand(F&& f) {
    asio::dispatch(executor_, std::forward<F>(f));
  }

  std::shared_ptr<Shared> shared_;  // first: the io_context must outlive the sockets below
  asio::any_io_executor executor_;  // this connection's strand
  // Its places under the admission caps, given back when it finishes (an application may
  // keep a finished session object for a while).
  std::vector<std::shared_ptr<Admission::Slot>> slots_;
};

std::string make_sse_event(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 24);
  if (!event.empty()) {
    out += "event: ";
    // A newline would end the field early and inject another one.
    for (char c : event) out += (c == '\r' || c == '\n') ? ' ' : c;
    out += '\n';
  }
  std::size_t start = 0;
  while (true) {
    std::size_t nl = data.find('\n', start);
    std::string_view line = data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

// ---------------------------------------------------------------------------------------
// Server-Sent Events: the response head, then queued events until either side ends it.

class SseSession final : public Connection, public SseStream {
 public:
  SseSession(std::shared_ptr<Shared> shared, asio::any_io_executor executor)
      : Connection(std::move(shared), executor), socket_(executor), timer_(executor) {}

  void send(std::string_view event, std::string_view data) override {
    if (closed_.load(std::memory_order_relaxed) || shared_->stopped.load()) return;
    on_strand([self = self(), text = make_sse_event(event, data)]() mutable { self->enqueue(std::move(text)); });
  }

  void close() override {
    if (closed_.load(std::memory_order_relaxed) || shared_->stopped.load()) return;
    on_strand([self = self()] {
      self->closing_ = true;
      if (!self->started_) self->closed_ = true;
      self->timer_.cancel();
    });
  }

  bool closed() const override { return closed_.load(); }

  void on_close(std::function<void()> callback) override {
    if (shared_->stopped.load()) return;
    on_strand([self = self(), cb = std::move(callback)]() mutable {
      if (self->finished_) {
        if (cb) run_callback(cb);
      } else {
        self->on_close_ = std::move(cb);
      }
    });
  }

  void begin_shutdown() override {
    on_strand([self = self()] {
      self->closing_ = true;
      self->timer_.cancel();
    });
  }

  void force_close() override {
    asio::post(executor_, [self = self()] { self->abort(); });
  }

  // The handler refused the subscription: the stream never opens.
  void refuse() {
    closing_ = true;
    closed_ = true;
  }

  void start(tcp::socket socket) {
    socket_ = std::move(socket);
    started_ = true;
    asio::co_spawn(executor_, write_loop(self()), ignore_exception);
    asio::co_spawn(executor_, watch_peer(self()), ignore_exception);
  }

 private:
  std::shared_ptr<SseSession> self() { return std::static_pointer_cast<SseSession>(shared_from_this()); }

  static void run_callback(const std::function<void()>& cb) {
    try {
      cb();
    } catch (...) {
      // An application callback must not end the server's thread.
    }
  }

  void enqueue(std::string text) {
    if (finished_ || closing_) return;
    if (pending_.size() + text.size() > kSsePendingLimit) {
      abort();
      return;
    }
    pending_ += text;
    timer_.cancel();
  }

  void abort() {
    aborted_ = true;
    timer_.cancel();
    error_code ignored;
    socket_.close(ignored);
    if (!started_) closed_ = true;
  }

  asio::awaitable<void> write_loop(std::shared_ptr<SseSession> self) {
    static constexpr std::string_view kHead =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n"
        "Connection: close\r\n"
        "Server: kaisar\r\n"
        "\r\n";
    std::string out(kHead);
    out += pending_;
    pending_.clear();
    const auto keepalive = shared_->options.sse_keepalive;
    while (!aborted_) {
      if (out.empty()) {
        if (pending_.empty()) {
          if (closing_) break;
          timer_.expires_after(keepalive);
          auto [ec] = co_await timer_.async_wait(kTuple);
          if (aborted_) break;
          if (pending_.empty()) {
            if (closing_) break;
            if (ec) continue;  // woken without news
            pending_ = ": keepalive\n\n";
          }
        }
        out.swap(pending_);
      }
      auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(out), kTuple);
      if (ec) break;
      out.clear();
      if (out.capacity() > kShrinkAbove) out.shrink_to_fit();
    }
    self->finish();
  }

  // Reads (and ignores) whatever the client sends, to notice when it goes away.
  asio::awaitable<void> watch_peer(std::shared_ptr<SseSession> self) {
    std::array<char, 64> sink;
    while (!finished_) {
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(sink), kTuple);
      if (ec) break;
    }
    if (!self->finished_) self->abort();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    closed_ = true;
    pending_.clear();
    pending_.shrink_to_fit();
    timer_.cancel();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    slots_.clear();
    shared_->remove(this);
    auto cb = std::move(on_close_);
    on_close_ = nullptr;  // breaks cycles through callbacks that hold this stream
    if (cb) run_callback(cb);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;  // keep-alive interval; cancelled to wake the writer
  std::string pending_;
  std::function<void()> on_close_;
  std::atomic<bool> closed_{false};
  bool started_ = false;
  bool closing_ = false;   // end after flushing what is queued
  bool aborted_ = false;   // end now
  bool finished_ = false;
};

// ---------------------------------------------------------------------------------------
// WebSocket: a read loop delivering text messages and an on-demand writer draining a queue.

class WsSession final : public Connection, public WebSocketSession {
 public:
  WsSession(std::shared_ptr<Shared> shared, asio::any_io_executor executor, std::string remote_ip)
      : Connection(std::move(shared), executor), ws_(executor), remote_ip_(std::move(remote_ip)) {}

  void on_message(std::function<void(std::string_view)> callback) override {
    if (shared_->stopped.load()) return;
    on_strand([self = self(), cb = std::move(callback)]() mutable {
      if (!self->finished_) self->on_message_ = std::move(cb);
    });
  }

  void on_binary(std::function<void(std::string_view)> callback) override {
    if (shared_->stopped.load()) return;
    on_strand([self = self(), cb = std::move(callback)]() mutable {
      if (!self->finished_) self->on_binary_ = std::move(cb);
    });
  }

  void on_close(std::function<void()> callback) override {
    if (shared_->stopped.load()) return;
    on_strand([self = self(), cb = std::move(callback)]() mutable {
      if (self->finished_) {
        if (cb && self->accepted_) run_callback(cb);
      } else {
        self->on_close_ = std::move(cb);
      }
    });
  }

  void send(std::string text) override { enqueue(Outgoing{std::move(text), false}); }
  void send_binary(std::string bytes) override { enqueue(Outgoing{std::move(bytes), true}); }
  std::size_t queued_bytes() const override { return queued_bytes_.load(std::memory_order_relaxed); }

  void close(std::string_view reason) override {
    if (closed_.load(std::memory_order_relaxed) || shared_->stopped.load()) return;
    on_strand([self = self(), r = std::string(reason)]() mutable {
      self->request_close(websocket::close_code::normal, std::move(r));
    });
  }

  const std::string& remote_ip() const override { return remote_ip_; }

  void lift_message_limit() override {
    on_strand([self = self()] {
      self->lifted_ = true;
      self->ws_.read_message_max(self->shared_->options.websocket_message_limit);
    });
  }

  void begin_shutdown() override {
    on_strand([self = self()] { self->request_close(websocket::close_code::going_away, "server shutting down"); });
  }

  void force_close() override {
    asio::post(executor_, [self = self()] {
      error_code ignored;
      beast::get_lowest_layer(self->ws_).close(ignored);
    });
  }

  void refuse() {
    finished_ = true;
    closed_ = true;
    queue_.clear();
    on_message_ = nullptr;
    on_close_ = nullptr;
  }

  void start(tcp::socket socket, std::unique_ptr<BeastRequest> upgrade) {
    ws_.next_layer() = std::move(socket);
    asio::co_spawn(executor_, run(self(), std::move(upgrade)), ignore_exception);
  }

 private:
  std::shared_ptr<WsSession> self() { return std::static_pointer_cast<WsSession>(shared_from_this()); }

  template <class Callback, class... Args>
  static bool run_callback(const Callback& cb, Args&&... args) {
    try {
      cb(std::forward<Args>(args)...);
      return true;
    } catch (...) {
      return false;
    }
  }

  void enqueue(Outgoing message) {
    if (closed_.load(std::memory_order_relaxed) || shared_->stopped.load()) return;
    queued_bytes_.fetch_add(message.data.size(), std::memory_order_relaxed);
    on_strand([self = self(), message = std::move(message)]() mutable {
      if (self->finished_ || self->close_requested_) {
        self->queued_bytes_.fetch_sub(message.data.size(), std::memory_order_relaxed);
        return;
      }
      self->queue_.push_back(std::move(message));
      self->maybe_start_writer();
    });
  }

  void request_close(websocket::close_code code, std::string reason) {
    if (finished_ || close_requested_) return;
    close_requested_ = true;
    close_code_ = code;
    // A close frame carries at most 123 bytes of reason.
    if (reason.size() > 123) reason.resize(123);
    close_reason_ = std::move(reason);
    maybe_start_writer();
  }

  void maybe_start_writer() {
    if (!accepted_ || writing_ || finished_) return;
    if (queue_.empty() && !close_requested_) return;
    writing_ = true;
    asio::co_spawn(executor_, write_loop(self()), ignore_exception);
  }

  asio::awaitable<void> run(std::shared_ptr<WsSession> self, std::unique_ptr<BeastRequest> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "kaisar"); }));
    // Until the route lifts it, a message is at most the hello limit, so that a peer that
    // never authenticates cannot make us buffer megabytes.
    const ServerOptions& options = shared_->options;
    const std::size_t hello_limit = options.websocket_hello_limit == 0
                                        ? options.websocket_message_limit
                                        : std::min(options.websocket_hello_limit, options.websocket_message_limit);
    ws_.read_message_max(lifted_ ? options.websocket_message_limit : hello_limit);
    {
      auto [ec] = co_await ws_.async_accept(*upgrade, kTuple);
      upgrade.reset();  // the headers are not needed for the rest of the session
      if (ec) {
        finish();
        co_return;
      }
    }
    accepted_ = true;
    maybe_start_writer();
    beast::flat_buffer buffer;
    while (true) {
      auto [ec, n] = co_await ws_.async_read(buffer, kTuple);
      if (ec) break;
      const auto& handler = ws_.got_text() ? on_message_ : on_binary_;
      if (handler && !close_requested_) {
        auto data = buffer.cdata();
        std::string_view message(static_cast<const char*>(data.data()), data.size());
        if (!run_callback(handler, message)) {
          request_close(websocket::close_code::internal_error, "message handler failed");
        }
      }
      buffer.consume(buffer.size());
      if (buffer.capacity() > kShrinkAbove) buffer.shrink_to_fit();
    }
    self->finish();
  }

  asio::awaitable<void> write_loop(std::shared_ptr<WsSession> self) {
    const bool drained = co_await write_queued(ws_, queue_, finished_, queued_bytes_);
    if (!drained) {
      writing_ = false;
      co_return;
    }
    if (close_requested_ && !close_sent_ && !finished_) {
      close_sent_ = true;
      auto [ec] = co_await ws_.async_close(websocket::close_reason(close_code_, close_reason_), kTuple);
      if (ec) {
        error_code ignored;
        beast::get_lowest_layer(ws_).close(ignored);
      }
    }
    self->writing_ = false;
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    closed_ = true;
    queue_.clear();
    queue_.shrink_to_fit();
    error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
    slots_.clear();
    shared_->remove(this);
    queued_bytes_ = 0;
    on_message_ = nullptr;  // breaks cycles through callbacks that hold this session
    on_binary_ = nullptr;
    auto cb = std::move(on_close_);
    on_close_ = nullptr;
    if (cb && accepted_) run_callback(cb);
  }

  websocket::stream<tcp::socket> ws_;
  std::string remote_ip_;
  std::function<void(std::string_view)> on_message_;
  std::function<void(std::string_view)> on_binary_;
  std::function<void()> on_close_;
  std::vector<Outgoing> queue_;
  std::atomic<std::size_t> queued_bytes_{0};
  std::string close_reason_;
  websocket::close_code close_code_ = websocket::close_code::normal;
  std::atomic<bool> closed_{false};
  bool accepted_ = false;
  bool lifted_ = false;  // lift_message_limit() was called
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool finished_ = false;
};

// ---------------------------------------------------------------------------------------
// Plain HTTP/1.1 with keep-alive; hands the socket to an SSE or WebSocket session.

class HttpConnection final : public Connection {
 public:
  // `admitted`: the connection's slot, or why it was refused (answered, then closed).
  // `probation`: it holds a reserved slot, so each request must be privileged; the error
  // answers one that is not.
  HttpConnection(std::shared_ptr<Shared> shared, tcp::socket socket, std::string remote_ip,
                 std::expected<std::shared_ptr<Admission::Slot>, Response> admitted, std::optional<Response> probation)
      : Connection(std::move(shared), socket.get_executor()),
        socket_(std::move(socket)),
        deadline_(executor_),
        remote_ip_(std::move(remote_ip)),
        probation_(std::move(probation)) {
    if (admitted) slots_.push_back(std::move(*admitted));
    else refusal_ = probation_ ? *probation_ : std::move(admitted.error());  // as an anonymous peer sees it
  }

  void start() { asio::co_spawn(executor_, run(self()), ignore_exception); }

  void begin_shutdown() override {
    asio::post(executor_, [self = self()] {
      if (self->phase_ == Phase::kIdle) self->close_socket();
    });
  }

  void force_close() override {
    asio::post(executor_, [self = self()] {
      if (self->phase_ != Phase::kHandedOff) self->close_socket();
    });
  }

 private:
  // kIdle: waiting for the first byte of a request; kBusy: reading, handling or answering;
  // kHandedOff: the socket belongs to an SSE or WebSocket session now.
  enum class Phase { kIdle, kBusy, kHandedOff, kDone };

  std::shared_ptr<HttpConnection> self() { return std::static_pointer_cast<HttpConnection>(shared_from_this()); }

  void close_socket() {
    error_code ignored;
    socket_.close(ignored);
  }

  // Pending socket operations are cancelled once `duration` passes; timed_out_ tells why.
  void arm(std::chrono::steady_clock::duration duration) {
    timed_out_ = false;
    deadline_.expires_after(duration);
    deadline_.async_wait([self = self(), generation = ++generation_](error_code ec) {
      if (ec || generation != self->generation_) return;
      self->timed_out_ = true;
      error_code ignored;
      self->socket_.cancel(ignored);
    });
  }
  void disarm() {
    ++generation_;
    deadline_.cancel();
  }

  asio::awaitable<void> run(std::shared_ptr<HttpConnection> self) {
    try {
      co_await serve();
    } catch (...) {
      // Allocation failures and the like: drop this connection, keep the server.
    }
    disarm();
    if (phase_ != Phase::kHandedOff) {
      error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      close_socket();
      phase_ = Phase::kDone;
    }
    slots_.clear();
    shared_->remove(self.get());
  }

  asio::awaitable<void> serve() {
    const ServerOptions& options = shared_->options;
    if (refusal_) {
      error_code ec = co_await write(*refusal_, false, false);
      if (!ec) co_await linger();
      co_return;
    }
    bool first = true;
    while (!shared_->stopping.load()) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      parser.header_limit(static_cast<std::uint32_t>(
          std::min<std::size_t>(options.header_limit, std::numeric_limits<std::uint32_t>::max())));
      if (buffer_.size() == 0) {
        // Idle until the first byte: the keep-alive timeout applies and a stopping server
        // may close the connection.
        phase_ = Phase::kIdle;
        arm(first ? options.request_timeout : options.keep_alive_timeout);
        auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, kTuple);
        phase_ = Phase::kBusy;
        if (ec || shared_->stopping.load()) co_return;
        if (!first) {
          disarm();
          arm(options.request_timeout);
        }
      } else {
        phase_ = Phase::kBusy;
        arm(options.request_timeout);
      }
      {
        auto [ec, n] = co_await http::async_read_header(socket_, buffer_, parser, kTuple);
        if (ec) {
          disarm();
          co_await answer_read_error(ec, parser.got_some() || buffer_.size() > 0);
          co_return;
        }
      }
      if (!parser.is_done()) {
        auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(socket_, asio::buffer(kContinue), kTuple);
        }
        auto [ec, n] = co_await http::async_read(socket_, buffer_, parser, kTuple);
        if (ec) {
          disarm();
          co_await answer_read_error(ec, true);
          co_return;
        }
      }
      disarm();

      BeastRequest message = parser.release();
      bool keep_alive = message.keep_alive();
      const bool upgrade = websocket::is_upgrade(message);
      Request request = to_request(message, remote_ip_);
      if (probation_ && !privileged(request)) {
        // Past the anonymous share of the connection caps: only the reserve's requests pass.
        error_code ec = co_await write(*probation_, false, request.method == "HEAD");
        if (!ec) co_await linger();
        co_return;
      }
      Router::Match match = shared_->router.match(request);
      std::optional<Response> response;
      if (match.route != nullptr && match.route->kind == Router::Route::Kind::kWebSocket && upgrade) {
        response = open_websocket(*match.route, request, message);
      } else if (match.route != nullptr && match.route->kind == Router::Route::Kind::kSse) {
        response = open_sse(*match.route, request);
      } else {
        response = dispatch(match, request);
      }
      if (!response) co_return;  // the socket now belongs to a stream session

      keep_alive = keep_alive && !shared_->stopping.load();
      error_code ec = co_await write(std::move(*response), keep_alive, request.method == "HEAD");
      if (ec || !keep_alive) co_return;
      first = false;
      if (buffer_.size() == 0 && buffer_.capacity() > kShrinkAbove) buffer_.shrink_to_fit();
    }
  }

  bool privileged(const Request& request) const {
    const auto& check = shared_->options.privileged;
    if (!check) return false;
    try {
      return check(request);
    } catch (...) {
      return false;
    }
  }

  // A slot for one more stream of `kind`: the anonymous share, else the reserve for a
  // privileged request.
  std::expected<std::shared_ptr<Admission::Slot>, Response> admit_stream(SlotKind kind, const Request& request) {
    auto slot = shared_->admission->admit(kind, remote_ip_, false);
    if (!slot && privileged(request)) {
      if (auto reserved = shared_->admission->admit(kind, remote_ip_, true)) return reserved;
    }
    return slot;
  }

  // The session takes over this connection's slot and holds its stream slot.
  void hand_off(Connection& session, std::shared_ptr<Admission::Slot> stream_slot) {
    slots_.push_back(std::move(stream_slot));
    session.hold(std::move(slots_));
    slots_.clear();
  }

  std::optional<Response> open_websocket(const Router::Route& route, Request& request, BeastRequest& message) {
    auto slot = admit_stream(SlotKind::kWebSocket, request);
    if (!slot) return std::move(slot.error());
    auto session = std::make_shared<WsSession>(shared_, executor_, remote_ip_);
    std::optional<Response> refusal = call_handler([&] { return route.websocket(request, session); });
    if (refusal) {
      session->refuse();
      return refusal;
    }
    phase_ = Phase::kHandedOff;
    disarm();
    hand_off(*session, std::move(*slot));
    shared_->add(session);
    session->start(std::move(socket_), std::make_unique<BeastRequest>(std::move(message)));
    return std::nullopt;
  }

  std::optional<Response> open_sse(const Router::Route& route, Request& request) {
    auto slot = admit_stream(SlotKind::kSseStream, request);
    if (!slot) return std::move(slot.error());
    auto session = std::make_shared<SseSession>(shared_, executor_);
    std::optional<Response> refusal = call_handler([&] { return route.sse(request, session); });
    if (refusal) {
      session->refuse();
      return refusal;
    }
    phase_ = Phase::kHandedOff;
    disarm();
    hand_off(*session, std::move(*slot));
    shared_->add(session);
    session->start(std::move(socket_));
    return std::nullopt;
  }

  asio::awaitable<error_code> write(Response response, bool keep_alive, bool head) {
    BeastResponse message = to_beast(std::move(response), keep_alive, head);
    arm(shared_->options.request_timeout);
    auto [ec, n] = co_await http::async_write(socket_, message, kTuple);
    disarm();
    co_return ec;
  }

  // Answers what can be answered after a failed read; the connection closes afterwards.
  asio::awaitable<void> answer_read_error(error_code ec, bool got_bytes) {
    const ServerOptions& options = shared_->options;
    std::optional<Response> response;
    if (timed_out_) {
      if (got_bytes) {
        response = Response::error(ErrorCode::kTimeout, "request not received within " +
                                                            std::to_string(options.request_timeout.count()) + " s");
        response->status = 408;
      }
    } else if (ec == http::error::body_limit) {
      response = Response::error(ErrorCode::kPayloadTooLarge,
                                 "request body exceeds " + std::to_string(options.body_limit) + " bytes");
    } else if (ec == http::error::header_limit) {
      response = Response::error(ErrorCode::kPayloadTooLarge,
                                 "request header exceeds " + std::to_string(options.header_limit) + " bytes");
      response->status = 431;
    } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
               ec != http::error::end_of_stream && ec != http::error::partial_message) {
      response = Response::error(ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message());
    }
    if (!response) co_return;
    error_code wec = co_await write(std::move(*response), false, false);
    if (wec) co_return;
    co_await linger();
  }

  asio::awaitable<void> linger() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(kLingerTime);
    std::array<char, 1024> sink;
    std::size_t drained = 0;
    while (drained < kLingerBytes) {
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(sink), kTuple);
      if (ec) break;
      drained += n;
    }
    disarm();
  }

  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::uint64_t generation_ = 0;
  beast::flat_buffer buffer_;
  std::string remote_ip_;
  std::optional<Response> probation_;
  std::optional<Response> refusal_;
  Phase phase_ = Phase::kIdle;
  bool timed_out_ = false;
};

asio::awaitable<void> accept_loop(std::shared_ptr<Shared> shared) {
  while (!shared->stopping.load()) {
    auto [ec, socket] = co_await shared->acceptor.async_accept(asio::make_strand(shared->ioc), kTuple);
    if (shared->stopping.load() || !shared->acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors and the like: back off briefly rather than spin.
      asio::steady_timer pause(shared->acceptor.get_executor(), std::chrono::milliseconds{20});
      co_await pause.async_wait(kTuple);
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    try {
      std::string remote_ip;
      if (auto endpoint = socket.remote_endpoint(ignored); !ignored) remote_ip = endpoint.address().to_string();
      // The anonymous share first; past it, the reserve on probation; past that, refused.
      auto admitted = shared->admission->admit(SlotKind::kConnection, remote_ip, false);
      std::optional<Response> probation;
      if (!admitted) {
        probation = admitted.error();
        admitted = shared->admission->admit(SlotKind::kConnection, remote_ip, true);
      }
      auto connection = std::make_shared<HttpConnection>(shared, std::move(socket), std::move(remote_ip),
                                                         std::move(admitted), std::move(probation));
      shared->add(connection);
      connection->start();
    } catch (const std::exception&) {
      // The socket closes with the failed connection; keep accepting.
    }
  }
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<Shared> shared;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
  bool started = false;
  bool stopped = false;
};

HttpServer::HttpServer(ServerOptions options, Router router) : impl_(std::make_unique<Impl>()) {
  impl_->shared = std::make_shared<Shared>(std::move(options), std::move(router));
}

HttpServer::~HttpServer() { stop(); }

Result<std::uint16_t> HttpServer::start() {
  if (impl_->started) return fail(ErrorCode::kConflict, "server already started");
  Shared& shared = *impl_->shared;
  const ServerOptions& options = shared.options;
  error_code ec;
  tcp::resolver resolver(shared.ioc);
  auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return fail(ErrorCode::kInvalidArgument, "cannot resolve listen address '" + options.host + "': " + ec.message());
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  const std::string where = options.host + ":" + std::to_string(options.port);
  shared.acceptor.open(endpoint.protocol(), ec);
  if (!ec) shared.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) shared.acceptor.bind(endpoint, ec);
  if (!ec) shared.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    shared.acceptor.close(ignored);
    return fail(ErrorCode::kUnavailable, "cannot listen on " + where + ": " + ec.message());
  }
  impl_->port = shared.acceptor.local_endpoint(ec).port();
  impl_->started = true;
  asio::co_spawn(shared.acceptor.get_executor(), accept_loop(impl_->shared), ignore_exception);
  impl_->work.emplace(shared.ioc.get_executor());
  const std::size_t count = std::max<std::size_t>(options.threads, 1);
  for (std::size_t i = 0; i < count; ++i) {
    impl_->threads.emplace_back([s = impl_->shared.get()] {
      while (true) {
        try {
          s->ioc.run();
          return;
        } catch (...) {
          // A handler threw past every catch: keep serving the other connections.
        }
      }
    });
  }
  return impl_->port;
}

void HttpServer::stop(std::chrono::milliseconds grace) {
  if (!impl_ || !impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  std::shared_ptr<Shared> shared = impl_->shared;
  shared->stopping = true;
  asio::post(shared->acceptor.get_executor(), [shared] {
    error_code ignored;
    shared->acceptor.close(ignored);
  });
  for (auto& connection : shared->snapshot()) connection->begin_shutdown();
  if (!shared->wait_idle(std::chrono::steady_clock::now() + grace)) {
    for (auto& connection : shared->snapshot()) connection->force_close();
    shared->wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds{2});
  }
  impl_->work.reset();
  shared->ioc.stop();
  for (auto& thread : impl_->threads) thread.join();
  impl_->threads.clear();
  shared->stopped = true;
  // Run what raced with the stop (sends from other threads) so that nothing queued keeps
  // a session, and through it the io_context, alive.
  shared->ioc.restart();
  try {
    shared->ioc.poll();
  } catch (...) {
  }
}

std::uint16_t HttpServer::port() const { return impl_->port; }

std::size_t HttpServer::open_connections() const {
  std::lock_guard lock(impl_->shared->mutex);
  return impl_->shared->live.size();
}

}  // namespace kaisar::net
