#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "net/http.hpp"

namespace kaisar::net {

struct Url {
  std::string scheme;  // "http", "https" or "ws"
  std::string host;
  std::uint16_t port = 0;
  std::string target;  // path + query, at least "/"

  // http://, https:// (http_request only) and ws:// URLs: scheme://host[:port][/path][?query].
  static Result<Url> parse(std::string_view text) noexcept;
};

struct ClientResponse {
  int status = 0;
  Headers headers;  // names lower-cased
  std::string body;
  std::optional<std::string_view> header(std::string_view lower_name) const;
};

// The WebSocket URL of `path` on the server at `http_base` (http:// → ws://, https:// →
// wss://), e.g. websocket_url("http://h:8080/", "/api/v1/agents/connect").
std::string websocket_url(std::string_view http_base, std::string_view path);

// For a channel that can make this machine run or remove containers (the agent's and the
// checker's link to OneNode): TLS (https://, wss://), or plain http:// / ws:// only to this
// machine's loopback (nothing crosses a wire) or when `insecure_allowed` (a private dev
// network, on the operator's word). The error says what to use instead.
Result<void> require_secure_channel(std::string_view url, bool insecure_allowed);

// Blocking HTTP/1.1 request on a fresh connection, over TLS for https:// (certificates are
// checked against the system's CAs, or $SSL_CERT_FILE, and must name the host). Errors:
// kUnavailable when the server cannot be reached or its certificate is not trusted,
// kTimeout past `timeout`, kInvalidArgument for a bad URL.
Result<ClientResponse> http_request(std::string_view method, std::string_view url, std::string_view body = {},
                                    const Headers& headers = {},
                                    std::chrono::milliseconds timeout = std::chrono::milliseconds{10000});

// Blocking Server-Sent Events reader (for the CLI and tests).
struct SseEvent {
  std::string event;  // "message" when the stream gave none
  std::string data;
  std::string id;
};

class SseReader {
 public:
  // Fails unless the server answers 200 with text/event-stream; the error then carries
  // the status and body.
  static Result<std::unique_ptr<SseReader>> open(std::string_view url, const Headers& headers = {},
                                                 std::chrono::milliseconds timeout = std::chrono::milliseconds{10000});
  ~SseReader();
  // Next event; kTimeout when none arrives in time; kUnavailable when the stream ended.
  Result<SseEvent> next(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit SseReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Asynchronous WebSocket client (text messages) for agents and benchmarks.
class WebSocketClient {
 public:
  // Connects to ws://host:port/path, or wss:// (the certificate is checked against the
  // system's CAs or $SSL_CERT_FILE and must name the host), with extra handshake headers.
  static boost::asio::awaitable<Result<std::shared_ptr<WebSocketClient>>> connect(
      boost::asio::any_io_executor executor, std::string url, Headers headers = {},
      std::chrono::milliseconds timeout = std::chrono::milliseconds{10000});
  ~WebSocketClient();

  // Next text message (binary ones are skipped); kUnavailable once the connection is closed.
  boost::asio::awaitable<Result<std::string>> read();
  struct Message {
    std::string data;
    bool binary = false;
  };
  // Next message, text or binary.
  boost::asio::awaitable<Result<Message>> read_message();
  // Queues a message; messages go out in order. Safe from any thread.
  void send(std::string text);
  void send_binary(std::string bytes);
  // Bytes queued and not yet written (for backpressure).
  std::size_t queued_bytes() const;
  // Sends a close frame and ends the connection; pending reads complete with kUnavailable.
  void close();
  bool is_open() const;

  struct Impl;
  explicit WebSocketClient(std::shared_ptr<Impl> impl);

 private:
  boost::asio::awaitable<Result<Message>> read_message_of(bool text_only);
  std::shared_ptr<Impl> impl_;
};

}  // namespace kaisar::net
