#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "net/admission.hpp"
#include "net/http.hpp"
#include "net/router.hpp"

namespace kaisar::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;                       // 0: pick a free port
  std::size_t body_limit = 1 << 20;             // 413 past it
  std::size_t header_limit = 16 << 10;          // 431 past it
  std::chrono::seconds request_timeout{30};     // whole request must arrive in this time (408)
  std::chrono::seconds keep_alive_timeout{60};  // idle keep-alive connections are closed
  std::size_t threads = 1;                      // io_context threads
  std::size_t websocket_message_limit = 1 << 20;
  // Until the route lifts it (WebSocketSession::lift_message_limit, once the peer proved
  // who it is), a message may be at most this large; 0: websocket_message_limit.
  std::size_t websocket_hello_limit = 0;
  // Caps on open connections, SSE streams and WebSockets (default: none). A connection
  // past the anonymous share must carry a privileged request, or it is answered 429/503.
  AdmissionLimits admission;
  // Whether a request may use the caps' reserve (e.g. /healthz or a valid session); called
  // only when the anonymous share is full. Unset: nothing is privileged.
  std::function<bool(const Request&)> privileged;
  std::chrono::seconds sse_keepalive{15};       // comment line sent on idle SSE streams
};

// A live Server-Sent Events stream. All methods are thread-safe and never block.
class SseStream {
 public:
  virtual ~SseStream() = default;
  // Queues "event: <event>\ndata: <data>\n\n" (multi-line data split into data: lines).
  virtual void send(std::string_view event, std::string_view data) = 0;
  virtual void close() = 0;
  virtual bool closed() const = 0;
  // Called once, on the server's thread, when the stream ends for any reason.
  virtual void on_close(std::function<void()> callback) = 0;
};

// A server-side WebSocket connection. Methods are thread-safe and never block; callbacks
// run on the server's threads, one at a time per session.
class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  virtual void on_message(std::function<void(std::string_view text)> callback) = 0;
  // Binary messages (without this callback they are dropped).
  virtual void on_binary(std::function<void(std::string_view bytes)> callback) = 0;
  virtual void on_close(std::function<void()> callback) = 0;
  // Queues a text message.
  virtual void send(std::string text) = 0;
  // Queues a binary message.
  virtual void send_binary(std::string bytes) = 0;
  // Bytes queued and not yet written (for backpressure).
  virtual std::size_t queued_bytes() const = 0;
  virtual void close(std::string_view reason = {}) = 0;
  virtual const std::string& remote_ip() const = 0;
  // The peer proved who it is: messages up to ServerOptions::websocket_message_limit are
  // read from now on, instead of websocket_hello_limit.
  virtual void lift_message_limit() = 0;
};

// HTTP/1.1 server on Boost.Beast with C++20 coroutines: keep-alive, timeouts, body limit,
// SSE, WebSocket and graceful shutdown. Not copyable; stop() or the destructor ends it.
class HttpServer {
 public:
  HttpServer(ServerOptions options, Router router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads. Returns the bound port.
  Result<std::uint16_t> start();
  // Stops accepting, lets in-flight requests finish for up to `grace`, then closes every
  // connection (WebSocket sessions get a close frame, SSE streams end) and joins threads.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{2000});

  std::uint16_t port() const;
  std::size_t open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kaisar::net
