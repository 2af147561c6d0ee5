#include "net/client.hpp"
#include "net/websocket_queue.hpp"

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <deque>
#include <exception>
#include <type_traits>
#include <vector>

#include "net/request_parse.hpp"

namespace kaisar::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kResponseBodyLimit = 64ull << 20;
constexpr std::size_t kSseLineLimit = 16 << 20;
constexpr std::size_t kShrinkAbove = 8 << 10;

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string host_header(const Url& url) {
  bool ipv6 = url.host.find(':') != std::string::npos;
  std::string out = ipv6 ? "[" + url.host + "]" : url.host;
  return out + ":" + std::to_string(url.port);
}

Headers lowered_headers(const http::fields& fields) {
  Headers out;
  for (const auto& field : fields) out.emplace_back(lower(field.name_string()), std::string(field.value()));
  return out;
}

std::optional<std::string_view> find_header(const Headers& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return std::string_view{value};
  }
  return std::nullopt;
}

Error connect_error(const Url& url, const error_code& ec) {
  if (ec == beast::error::timeout) return Error{ErrorCode::kTimeout, "connecting to " + host_header(url) + " timed out"};
  return Error{ErrorCode::kUnavailable, "cannot connect to " + host_header(url) + ": " + ec.message()};
}

// Numeric hosts skip the resolver, which runs on a single background thread.
asio::awaitable<std::pair<error_code, std::vector<tcp::endpoint>>> resolve(const Url& url) {
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  auto address = asio::ip::make_address(url.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, url.port);
    co_return std::pair{ec, std::move(endpoints)};
  }
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [rec, results] = co_await resolver.async_resolve(url.host, std::to_string(url.port), kTuple);
  if (!rec) {
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  co_return std::pair{rec, std::move(endpoints)};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// URLs

std::string websocket_url(std::string_view http_base, std::string_view path) {
  std::string url(http_base);
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.rfind("http://", 0) == 0) url = "ws://" + url.substr(7);
  else if (url.rfind("https://", 0) == 0) url = "wss://" + url.substr(8);
  return url + std::string(path);
}

Result<void> require_secure_channel(std::string_view text, bool insecure_allowed) {
  std::string url = websocket_url(text, "");
  auto parsed = Url::parse(url);
  if (!parsed) return std::unexpected(parsed.error());
  if (parsed->scheme == "wss" || parsed->scheme == "https" || insecure_allowed) return {};
  error_code ec;
  auto address = asio::ip::make_address(parsed->host, ec);
  if (parsed->host == "localhost" || (!ec && address.is_loopback())) return {};
  return fail(ErrorCode::kInvalidArgument,
              "OneNode at '" + std::string(text) + "' is not TLS: it can make this machine run and remove containers, "
              "so use its https:// URL (the certificate is checked against the system's CAs or $SSL_CERT_FILE); "
              "plain http:// only to this machine's loopback, or with --insecure-dev on a private dev network");
}

Result<Url> Url::parse(std::string_view text) noexcept {
  try {
    auto parsed = boost::urls::parse_uri(text);
    if (!parsed) return fail(ErrorCode::kInvalidArgument, "invalid URL '" + std::string(text) + "'");
    boost::urls::url_view u = *parsed;
    Url url;
    url.scheme = lower(u.scheme());
    if (url.scheme != "http" && url.scheme != "https" && url.scheme != "ws" && url.scheme != "wss") {
      return fail(ErrorCode::kInvalidArgument, "URL scheme must be http, https, ws or wss: '" + std::string(text) + "'");
    }
    if (!u.has_authority() || u.encoded_host().empty()) {
      return fail(ErrorCode::kInvalidArgument, "URL has no host: '" + std::string(text) + "'");
    }
    if (u.has_userinfo()) {
      return fail(ErrorCode::kInvalidArgument, "credentials in URLs are not supported: '" + std::string(text) + "'");
    }
    url.host = u.host_type() == boost::urls::host_type::ipv6 ? std::string(u.encoded_host_address())
                                                             : std::string(u.host());
    url.port = url.scheme == "https" || url.scheme == "wss" ? 443 : 80;
    if (u.has_port()) {
      std::string_view port = u.port();
      unsigned value = 0;
      auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
      if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
        return fail(ErrorCode::kInvalidArgument, "invalid port in URL '" + std::string(text) + "'");
      }
      url.port = static_cast<std::uint16_t>(value);
    }
    url.target = std::string(u.encoded_path());
    if (url.target.empty()) url.target = "/";
    if (u.has_query()) url.target += "?" + std::string(u.encoded_query());
    return url;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("URL parsing failed: ") + e.what());
  }
}

std::optional<std::string_view> ClientResponse::header(std::string_view lower_name) const {
  return find_header(headers, lower_name);
}

// ---------------------------------------------------------------------------------------
// Blocking HTTP request

namespace {

// Writes the request and reads the response on a connected (plain or TLS) stream.
template <class Stream>
asio::awaitable<Result<ClientResponse>> exchange(Stream& stream, const std::string& method, const Url& url,
                                                 std::string body, const Headers& headers,
                                                 std::chrono::milliseconds timeout) {
  http::request<http::string_body> request;
  request.version(11);
  request.method_string(method);
  request.target(url.target);
  request.set(http::field::host, host_header(url));
  request.set(http::field::user_agent, "kaisar");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = std::move(body);
  request.keep_alive(false);
  request.prepare_payload();

  const std::string what = method + " " + url.scheme + "://" + host_header(url) + url.target;
  auto io_error = [&](const error_code& ec) {
    if (ec == beast::error::timeout) {
      return Error{ErrorCode::kTimeout, what + " timed out after " + std::to_string(timeout.count()) + " ms"};
    }
    return Error{ErrorCode::kUnavailable, what + " failed: " + ec.message()};
  };
  {
    auto [ec, n] = co_await http::async_write(stream, request, kTuple);
    if (ec) co_return std::unexpected(io_error(ec));
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(kResponseBodyLimit);
  if (method == "HEAD") parser.skip(true);
  beast::flat_buffer buffer;
  {
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
    if (ec) co_return std::unexpected(io_error(ec));
  }
  auto message = parser.release();
  ClientResponse response;
  response.status = static_cast<int>(message.result_int());
  response.headers = lowered_headers(message.base());
  response.body = std::move(message.body());
  co_return response;
}

// The system's trusted CAs (or $SSL_CERT_FILE / $SSL_CERT_DIR), TLS 1.2 or later.
Result<void> trust_system_cas(asio::ssl::context& tls) {
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  tls.set_default_verify_paths(ec);
  if (ec) return fail(ErrorCode::kUnavailable, "no trusted CA certificates: " + ec.message());
  return {};
}

// The certificate must name `host`, and SNI names it.
template <class TlsStream>
Result<void> expect_host(TlsStream& secure, std::string& host) {
  secure.set_verify_mode(asio::ssl::verify_peer);
  secure.set_verify_callback(asio::ssl::host_name_verification(host));
  // SSL_set_tlsext_host_name without the macro's C cast.
  if (SSL_ctrl(secure.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               static_cast<void*>(host.data())) != 1) {
    return fail(ErrorCode::kInvalidArgument, "cannot use '" + host + "' as a TLS server name");
  }
  return {};
}

template <class TlsStream>
asio::awaitable<Result<void>> tls_handshake(TlsStream& secure, const Url& url) {
  auto [ec] = co_await secure.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (!ec) co_return Result<void>{};
  if (ec == beast::error::timeout) co_return fail(ErrorCode::kTimeout, "TLS handshake with " + host_header(url) + " timed out");
  co_return fail(ErrorCode::kUnavailable, "TLS handshake with " + host_header(url) + " failed: " + ec.message());
}

asio::awaitable<Result<ClientResponse>> do_http_request(std::string method, Url url, std::string body,
                                                        Headers headers, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto [rec, endpoints] = co_await resolve(url);
  if (rec) co_return fail(ErrorCode::kUnavailable, "cannot resolve " + url.host + ": " + rec.message());

  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_at(deadline);
  {
    auto [ec, endpoint] = co_await stream.async_connect(endpoints, kTuple);
    if (ec) co_return std::unexpected(connect_error(url, ec));
  }
  if (url.scheme != "https") {
    auto result = co_await exchange(stream, method, url, std::move(body), headers, timeout);
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return result;
  }

  asio::ssl::context tls(asio::ssl::context::tls_client);
  if (auto trusted = trust_system_cas(tls); !trusted) co_return std::unexpected(trusted.error());
  beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), tls);
  if (auto named = expect_host(secure, url.host); !named) co_return std::unexpected(named.error());
  if (auto shaken = co_await tls_handshake(secure, url); !shaken) co_return std::unexpected(shaken.error());
  auto result = co_await exchange(secure, method, url, std::move(body), headers, timeout);
  beast::get_lowest_layer(secure).expires_after(std::chrono::seconds{1});
  (void)co_await secure.async_shutdown(kTuple);
  co_return result;
}

}  // namespace

Result<ClientResponse> http_request(std::string_view method, std::string_view url, std::string_view body,
                                    const Headers& headers, std::chrono::milliseconds timeout) {
  auto parsed = Url::parse(url);
  if (!parsed) return std::unexpected(parsed.error());
  if (parsed->scheme != "http" && parsed->scheme != "https") {
    return fail(ErrorCode::kInvalidArgument, "not an http(s) URL: '" + std::string(url) + "'");
  }
  if (method.empty()) return fail(ErrorCode::kInvalidArgument, "empty HTTP method");
  try {
    asio::io_context ioc(1);
    Result<ClientResponse> result = fail(ErrorCode::kInternal, "request did not complete");
    std::exception_ptr failure;
    asio::co_spawn(
        ioc, do_http_request(std::string(method), std::move(*parsed), std::string(body), headers, timeout),
        [&](std::exception_ptr e, Result<ClientResponse> r) {
          failure = e;
          result = std::move(r);
        });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    return result;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("HTTP request failed: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------
// Blocking Server-Sent Events reader

struct SseReader::Impl {
  asio::io_context ioc{1};  // first: destroyed after the socket
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  std::array<char, 4096> chunk{};
  std::string text;  // received, not yet split into lines
  std::string event;
  std::string data;
  bool has_data = false;
  std::string last_id;
  std::deque<SseEvent> ready;
  bool ended = false;

  // Runs the started operation until `done` or the deadline; past it the operation is
  // cancelled (the socket stays usable) and false is returned.
  bool run_until(Clock::time_point deadline, const bool& done) {
    ioc.restart();
    ioc.run_until(deadline);
    if (done) return true;
    error_code ignored;
    socket.cancel(ignored);
    ioc.restart();
    ioc.run();
    return false;
  }

  // Reads the next piece of the body into `chunk`. Returns the error (need_buffer is not one).
  error_code read_body(Clock::time_point deadline, std::size_t& got) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    parser.get().body().more = true;
    bool done = false;
    error_code result;
    http::async_read_some(socket, buffer, parser, [&](error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    bool in_time = run_until(deadline, done);
    got = chunk.size() - parser.get().body().size;
    if (result == http::error::need_buffer) result = {};
    if (!in_time && !result) result = beast::error::timeout;
    if (result == asio::error::operation_aborted) result = beast::error::timeout;
    return result;
  }

  void feed(std::string_view bytes) {
    text.append(bytes);
    std::size_t start = 0;
    while (true) {
      std::size_t nl = text.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(text.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      process_line(line);
      start = nl + 1;
    }
    text.erase(0, start);
    if (text.size() > kSseLineLimit) ended = true;
  }

  void process_line(std::string_view line) {
    if (line.empty()) {
      if (has_data) {
        if (!data.empty() && data.back() == '\n') data.pop_back();
        ready.push_back(SseEvent{event.empty() ? "message" : event, std::move(data), last_id});
      }
      event.clear();
      data.clear();
      has_data = false;
      return;
    }
    if (line.front() == ':') return;  // comment (keep-alive)
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      event = std::string(value);
    } else if (field == "data") {
      data.append(value);
      data.push_back('\n');
      has_data = true;
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) last_id = std::string(value);
    }
  }
};

SseReader::SseReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SseReader::~SseReader() {
  if (impl_) {
    error_code ignored;
    impl_->socket.close(ignored);
  }
}

Result<std::unique_ptr<SseReader>> SseReader::open(std::string_view url_text, const Headers& headers,
                                                   std::chrono::milliseconds timeout) {
  auto url = Url::parse(url_text);
  if (!url) return std::unexpected(url.error());
  if (url->scheme != "http") return fail(ErrorCode::kInvalidArgument, "not an http URL: '" + std::string(url_text) + "'");
  try {
    const auto deadline = Clock::now() + timeout;
    auto impl = std::make_unique<Impl>();
    error_code ec;
    std::vector<tcp::endpoint> endpoints;
    auto address = asio::ip::make_address(url->host, ec);
    if (!ec) {
      endpoints.emplace_back(address, url->port);
    } else {
      tcp::resolver resolver(impl->ioc);
      auto results = resolver.resolve(url->host, std::to_string(url->port), ec);
      if (ec) return fail(ErrorCode::kUnavailable, "cannot resolve " + url->host + ": " + ec.message());
      for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    }
    bool done = false;
    asio::async_connect(impl->socket, endpoints, [&](error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (!impl->run_until(deadline, done) || ec == asio::error::operation_aborted) {
      return std::unexpected(connect_error(*url, beast::error::timeout));
    }
    if (ec) return std::unexpected(connect_error(*url, ec));

    http::request<http::empty_body> request{http::verb::get, url->target, 11};
    request.set(http::field::host, host_header(*url));
    request.set(http::field::user_agent, "kaisar");
    request.set(http::field::accept, "text/event-stream");
    request.set(http::field::cache_control, "no-cache");
    for (const auto& [name, value] : headers) request.set(name, value);
    done = false;
    http::async_write(impl->socket, request, [&](error_code e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!impl->run_until(deadline, done)) return fail(ErrorCode::kTimeout, "sending the SSE request timed out");
    if (ec) return fail(ErrorCode::kUnavailable, "sending the SSE request failed: " + ec.message());

    impl->parser.body_limit(boost::none);
    done = false;
    http::async_read_header(impl->socket, impl->buffer, impl->parser, [&](error_code e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!impl->run_until(deadline, done)) return fail(ErrorCode::kTimeout, "no SSE response in time");
    if (ec) return fail(ErrorCode::kUnavailable, "reading the SSE response failed: " + ec.message());

    const auto& head = impl->parser.get();
    const int status = static_cast<int>(head.result_int());
    const bool event_stream = lower(head[http::field::content_type]).starts_with("text/event-stream");
    if (status != 200 || !event_stream) {
      std::string body;
      while (!impl->parser.is_done() && body.size() < 64 * 1024) {
        std::size_t got = 0;
        error_code rec = impl->read_body(deadline, got);
        body.append(impl->chunk.data(), got);
        if (rec) break;
      }
      ErrorCode code = status == 200 ? ErrorCode::kInvalidArgument : error_code_for_status(status);
      return fail(code, "HTTP " + std::to_string(status) + (event_stream ? "" : " (not an event stream)") + ": " + body);
    }
    return std::unique_ptr<SseReader>(new SseReader(std::move(impl)));
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("SSE open failed: ") + e.what());
  }
}

Result<SseEvent> SseReader::next(std::chrono::milliseconds timeout) {
  Impl& impl = *impl_;
  const auto deadline = Clock::now() + timeout;
  try {
    while (true) {
      if (!impl.ready.empty()) {
        SseEvent event = std::move(impl.ready.front());
        impl.ready.pop_front();
        return event;
      }
      if (impl.ended || impl.parser.is_done()) return fail(ErrorCode::kUnavailable, "event stream ended");
      if (Clock::now() >= deadline) return fail(ErrorCode::kTimeout, "no event within " + std::to_string(timeout.count()) + " ms");
      std::size_t got = 0;
      error_code ec = impl.read_body(deadline, got);
      impl.feed(std::string_view(impl.chunk.data(), got));
      if (ec == beast::error::timeout) {
        if (!impl.ready.empty()) continue;
        return fail(ErrorCode::kTimeout, "no event within " + std::to_string(timeout.count()) + " ms");
      }
      if (ec) impl.ended = true;
    }
  } catch (const std::exception& e) {
    impl.ended = true;
    return fail(ErrorCode::kInternal, std::string("SSE read failed: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------
// WebSocket client

// What WebSocketClient needs of a connection, plain (ws://) or TLS (wss://). Everything
// but the atomics lives on the connection's strand.
struct WebSocketClient::Impl {
  virtual ~Impl() = default;
  virtual asio::any_io_executor executor() = 0;
  // The next message; with `text_only`, binary ones are skipped. On the strand.
  virtual asio::awaitable<Result<Message>> read_next(bool text_only) = 0;
  virtual void enqueue(Outgoing message) = 0;  // on the strand
  virtual void request_close() = 0;            // on the strand

  std::atomic<std::size_t> queued_bytes{0};
  std::atomic<bool> open{false};  // what is_open() reports
};

namespace {

void close_socket(tcp::socket& socket) {
  error_code ignored;
  socket.close(ignored);
}
void close_socket(beast::tcp_stream& stream) { close_socket(stream.socket()); }

template <class NextLayer>
struct ClientConnection final : WebSocketClient::Impl, std::enable_shared_from_this<ClientConnection<NextLayer>> {
  static constexpr bool kTls = !std::is_same_v<NextLayer, tcp::socket>;
  using Message = WebSocketClient::Message;

  explicit ClientConnection(asio::any_io_executor strand)
    requires(!kTls)
      : ws(std::move(strand)) {}
  // The context is this connection's, so that $SSL_CERT_FILE is read when it connects.
  ClientConnection(asio::any_io_executor strand, std::unique_ptr<asio::ssl::context> context)
    requires kTls
      : tls(std::move(context)), ws(std::move(strand), *tls) {}

  std::unique_ptr<asio::ssl::context> tls;  // wss:// only; outlives the stream below
  websocket::stream<NextLayer> ws;  // bound to a strand; all state below lives on it
  beast::flat_buffer read_buffer;
  std::vector<Outgoing> queue;
  bool connected = false;
  bool writing = false;
  bool close_requested = false;
  bool finished = false;

  asio::any_io_executor executor() override { return ws.get_executor(); }

  asio::awaitable<Result<void>> handshake(Url url, Headers headers, std::chrono::milliseconds timeout) {
    auto [rec, endpoints] = co_await resolve(url);
    if (rec) co_return fail(ErrorCode::kUnavailable, "cannot resolve " + url.host + ": " + rec.message());
    {
      beast::tcp_stream stream(ws.get_executor());
      stream.expires_after(timeout);
      auto [ec, endpoint] = co_await stream.async_connect(endpoints, kTuple);
      if (ec) co_return std::unexpected(connect_error(url, ec));
      stream.expires_never();
      error_code ignored;
      stream.socket().set_option(tcp::no_delay(true), ignored);
      if constexpr (kTls) {
        beast::get_lowest_layer(ws).socket() = stream.release_socket();
      } else {
        ws.next_layer() = stream.release_socket();
      }
    }
    if constexpr (kTls) {
      if (auto named = expect_host(ws.next_layer(), url.host); !named) co_return std::unexpected(named.error());
      beast::get_lowest_layer(ws).expires_after(timeout);
      auto shaken = co_await tls_handshake(ws.next_layer(), url);
      beast::get_lowest_layer(ws).expires_never();  // the WebSocket's own timeouts from here
      if (!shaken) {
        close_socket(beast::get_lowest_layer(ws));
        co_return std::unexpected(shaken.error());
      }
    }
    auto options = websocket::stream_base::timeout::suggested(beast::role_type::client);
    options.handshake_timeout = timeout;
    ws.set_option(options);
    ws.set_option(websocket::stream_base::decorator([headers = std::move(headers)](websocket::request_type& req) {
      req.set(http::field::user_agent, "kaisar");
      for (const auto& [name, value] : headers) req.set(name, value);
    }));
    // Masking goes through this buffer; the default 4 KiB adds up over thousands of clients.
    ws.write_buffer_bytes(2048);
    // Client masking only shields naive intermediaries from script-forged frames (RFC 6455
    // §10.3); a native agent gains nothing from a cryptographic PRNG there, and it is the
    // largest per-frame cost at thousands of messages per second.
    ws.secure_prng(false);
    websocket::response_type response;
    auto [ec] = co_await ws.async_handshake(response, host_header(url), url.target, kTuple);
    // Drop the decorator and with it the copied headers.
    ws.set_option(websocket::stream_base::decorator([](websocket::request_type&) {}));
    if (ec) {
      close_socket(beast::get_lowest_layer(ws));
      if (ec == beast::error::timeout) co_return fail(ErrorCode::kTimeout, "WebSocket handshake timed out");
      const int status = static_cast<int>(response.result_int());
      if (status != 0 && status != 101) {
        co_return fail(error_code_for_status(status),
                       "WebSocket upgrade refused: HTTP " + std::to_string(status) + ": " + response.body());
      }
      co_return fail(ErrorCode::kUnavailable, "WebSocket handshake failed: " + ec.message());
    }
    connected = true;
    open = true;
    co_return Result<void>{};
  }

  asio::awaitable<Result<Message>> read_next(bool text_only) override {
    auto self = this->shared_from_this();
    while (true) {
      if (finished) co_return fail(ErrorCode::kUnavailable, "WebSocket connection closed");
      auto [ec, n] = co_await ws.async_read(read_buffer, kTuple);
      if (ec) {
        finish();
        co_return fail(ErrorCode::kUnavailable, "WebSocket connection closed: " + ec.message());
      }
      const bool text = ws.got_text();
      Message message;
      if (text || !text_only) message = Message{beast::buffers_to_string(read_buffer.cdata()), !text};
      read_buffer.consume(read_buffer.size());
      if (read_buffer.capacity() > kShrinkAbove) read_buffer.shrink_to_fit();
      if (text || !text_only) co_return message;
    }
  }

  void enqueue(Outgoing message) override {
    if (finished || close_requested) {
      queued_bytes.fetch_sub(message.data.size(), std::memory_order_relaxed);
      return;
    }
    queue.push_back(std::move(message));
    maybe_start_writer();
  }

  void request_close() override {
    if (finished || close_requested) return;
    close_requested = true;
    maybe_start_writer();
  }

  void maybe_start_writer() {
    if (writing || finished || !connected) return;
    if (queue.empty() && !close_requested) return;
    writing = true;
    asio::co_spawn(ws.get_executor(), write_loop(this->shared_from_this()), [](const std::exception_ptr&) {});
  }

  asio::awaitable<void> write_loop(std::shared_ptr<ClientConnection> self) {
    const bool drained = co_await write_queued(ws, queue, finished, queued_bytes);
    if (!drained) {
      writing = false;
      co_return;
    }
    if (close_requested && !finished) {
      co_await ws.async_close(websocket::close_code::normal, kTuple);
      finish();
    }
    self->writing = false;
  }

  void finish() {
    if (finished) return;
    finished = true;
    open = false;
    queue.clear();
    queued_bytes = 0;
    close_socket(beast::get_lowest_layer(ws));
  }
};

using PlainConnection = ClientConnection<tcp::socket>;
// Asio's TLS stream: with Boost 1.81, Beast's ssl_stream makes WebSocket teardown ambiguous to clang.
using TlsConnection = ClientConnection<asio::ssl::stream<beast::tcp_stream>>;

}  // namespace

WebSocketClient::WebSocketClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebSocketClient::~WebSocketClient() { close(); }

asio::awaitable<Result<std::shared_ptr<WebSocketClient>>> WebSocketClient::connect(
    asio::any_io_executor executor, std::string url_text, Headers headers, std::chrono::milliseconds timeout) {
  auto url = Url::parse(url_text);
  if (!url) co_return std::unexpected(url.error());
  // Nothing else touches the stream yet, so the handshake may run from the caller's executor.
  if (url->scheme == "wss") {
    auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    if (auto trusted = trust_system_cas(*tls); !trusted) co_return std::unexpected(trusted.error());
    auto impl = std::make_shared<TlsConnection>(asio::make_strand(executor), std::move(tls));
    auto result = co_await impl->handshake(std::move(*url), std::move(headers), timeout);
    if (!result) co_return std::unexpected(result.error());
    co_return std::make_shared<WebSocketClient>(std::move(impl));
  }
  if (url->scheme != "ws") co_return fail(ErrorCode::kInvalidArgument, "not a ws:// or wss:// URL: '" + url_text + "'");
  auto impl = std::make_shared<PlainConnection>(asio::make_strand(executor));
  auto result = co_await impl->handshake(std::move(*url), std::move(headers), timeout);
  if (!result) co_return std::unexpected(result.error());
  co_return std::make_shared<WebSocketClient>(std::move(impl));
}

asio::awaitable<Result<std::string>> WebSocketClient::read() {
  auto message = co_await read_message_of(true);
  if (!message) co_return std::unexpected(message.error());
  co_return std::move(message->data);
}

asio::awaitable<Result<WebSocketClient::Message>> WebSocketClient::read_message() {
  co_return co_await read_message_of(false);
}

asio::awaitable<Result<WebSocketClient::Message>> WebSocketClient::read_message_of(bool text_only) {
  auto impl = impl_;
  // Reads run on the connection's strand, next to the writer.
  co_return co_await asio::co_spawn(impl->executor(), impl->read_next(text_only), asio::use_awaitable);
}

std::size_t WebSocketClient::queued_bytes() const { return impl_->queued_bytes.load(std::memory_order_relaxed); }

namespace {

void enqueue_message(const std::shared_ptr<WebSocketClient::Impl>& impl, Outgoing message) {
  if (!impl->open.load()) return;
  impl->queued_bytes.fetch_add(message.data.size(), std::memory_order_relaxed);
  asio::dispatch(impl->executor(), [impl, message = std::move(message)]() mutable { impl->enqueue(std::move(message)); });
}

}  // namespace

void WebSocketClient::send(std::string text) { enqueue_message(impl_, Outgoing{std::move(text), false}); }

void WebSocketClient::send_binary(std::string bytes) { enqueue_message(impl_, Outgoing{std::move(bytes), true}); }

void WebSocketClient::close() {
  if (!impl_ || !impl_->open.exchange(false)) return;
  asio::dispatch(impl_->executor(), [impl = impl_] { impl->request_close(); });
}

bool WebSocketClient::is_open() const { return impl_->open.load(); }

}  // namespace kaisar::net
