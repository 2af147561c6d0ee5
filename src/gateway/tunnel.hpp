#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "gateway/mux.hpp"
#include "gateway/request_filter.hpp"

namespace kaisar::gateway {

// Asio's TLS stream, not Beast's ssl_stream wrapper: with Boost 1.81 the wrapper's WebSocket
// teardown hooks are ambiguous to clang (the fuzz build).
using TlsStream = boost::asio::ssl::stream<boost::beast::tcp_stream>;
using TunnelSocket = boost::beast::websocket::stream<TlsStream>;

// The message an agent signs (EIP-191) to open a tunnel: it names the gateway's certificate,
// so a signature given to one gateway cannot be replayed to another, and the gateway's
// one-time nonce, so it cannot be replayed at all.
std::string tunnel_auth_message(std::string_view certificate_sha256, std::string_view nonce);

// One established tunnel (TLS WebSocket, after authentication) and the TCP connections it
// carries: a Mux for the protocol, a socket per stream, flow control both ways. The gateway
// side relays accepted client sockets; the agent side connects each stream the gateway
// opens to 127.0.0.1:<host port> of the lease's container, if `resolver` knows that
// lease and port.
//
// Everything runs on the socket's executor, which must be single-threaded (an io_context
// run by one thread): call relay(), reset_lease() and close() only from it.
class TunnelConnection : public std::enable_shared_from_this<TunnelConnection> {
 public:
  // The host port a lease's container port is published on here, if it is one of ours.
  using Resolver = std::function<std::optional<std::uint16_t>(const std::string& lease_id, std::uint16_t port)>;
  // Bytes held in memory by every tunnel that shares it (one thread): their queues and what
  // waits for slow sockets. Over the limit, sockets stop being read and the stream holding
  // the most for a slow reader is reset.
  struct SharedBudget {
    std::size_t limit = 0;
    std::size_t used = 0;
  };
  struct Limits {
    std::uint32_t window = Mux::kDefaultWindow;
    std::size_t max_streams = Mux::kDefaultMaxStreams;
    std::size_t max_queued = 4u << 20;  // tunnel bytes queued before sockets stop being read
    std::size_t max_streams_per_lease = 1024;  // so one lease's clients cannot take all streams
    std::chrono::seconds accept_timeout{10};   // gateway: an OPEN the agent does not answer
    // Received for a lease's sockets and not yet written to them (each stream holds at most
    // a window): past it the stream holding the most is reset. The gateway sets it.
    std::size_t max_buffered_per_lease = std::numeric_limits<std::size_t>::max();
    std::shared_ptr<SharedBudget> budget;  // optional: shared with the other tunnels
  };

  TunnelConnection(std::unique_ptr<TunnelSocket> socket, Mux::Role role, Resolver resolver, Limits limits);
  TunnelConnection(std::unique_ptr<TunnelSocket> socket, Mux::Role role, Resolver resolver = {})
      : TunnelConnection(std::move(socket), role, std::move(resolver), Limits{}) {}
  ~TunnelConnection();
  TunnelConnection(const TunnelConnection&) = delete;
  TunnelConnection& operator=(const TunnelConnection&) = delete;

  // Reads frames until the tunnel ends: the error says why (a protocol error names the
  // rule the peer broke). Every stream's socket is closed by then.
  boost::asio::awaitable<Result<void>> run();

  // Gateway: carries `client` to the lease's container port; `first_bytes` (an HTTP request
  // head already read) go first. `http`: answer 502 if the agent refuses the stream.
  // `filter` (token-protected HTTP ports) checks every later request of the connection;
  // `hold` is kept as long as the connection (the gateway's per-address counts).
  void relay(boost::asio::ip::tcp::socket client, const std::string& lease_id, std::uint16_t port,
             std::string first_bytes, bool http, std::unique_ptr<RequestFilter> filter = nullptr,
             std::shared_ptr<void> hold = nullptr);
  // Ends every stream of the lease (its connections are closed).
  void reset_lease(const std::string& lease_id);
  // Ends the tunnel and all its streams.
  void close();

  bool closed() const { return closed_; }
  std::size_t streams() const { return streams_.size(); }
  std::size_t queued_bytes() const { return queued_; }
  // Bytes received for sockets and not yet written to them.
  std::size_t buffered_bytes() const { return buffered_; }
  boost::asio::any_io_executor executor();

 private:
  struct Stream;
  void send(const Frame& frame);
  void handle(Mux::Event& event);
  void finish(const std::shared_ptr<Stream>& s);
  void abort(const std::shared_ptr<Stream>& s, ResetCode code, std::string message);
  void maybe_done(const std::shared_ptr<Stream>& s);
  void start_socket_writer(const std::shared_ptr<Stream>& s);
  void count(std::int64_t queued, std::int64_t buffered);  // also in the shared budget
  void unbuffer(const std::shared_ptr<Stream>& s, std::size_t n);
  bool over_budget() const;
  // Resets the stream of `lease_id` (any lease if empty) that holds the most for its socket.
  void shed(const std::string& lease_id);
  std::shared_ptr<Stream> find(std::uint32_t id);
  static boost::asio::awaitable<void> write_tunnel(std::shared_ptr<TunnelConnection> self);
  static boost::asio::awaitable<void> read_socket(std::shared_ptr<TunnelConnection> self, std::shared_ptr<Stream> s);
  static boost::asio::awaitable<void> write_socket(std::shared_ptr<TunnelConnection> self, std::shared_ptr<Stream> s);
  static boost::asio::awaitable<void> connect_local(std::shared_ptr<TunnelConnection> self, std::uint32_t id,
                                                    std::string lease_id, std::uint16_t host_port);

  std::unique_ptr<TunnelSocket> ws_;
  Mux mux_;
  Resolver resolver_;
  Limits limits_;
  std::map<std::uint32_t, std::shared_ptr<Stream>> streams_;
  std::set<std::uint32_t> connecting_;  // agent: opened, connecting to the container
  std::deque<Bytes> out_;              // encoded frames waiting for the WebSocket
  std::size_t queued_ = 0;
  std::size_t buffered_ = 0;
  std::map<std::string, std::size_t> buffered_by_lease_;
  bool writing_ = false;
  bool blocked_ = false;  // a stream waits for the queue to drain
  bool closed_ = false;
};

// Writes `response` to `socket` and closes it (for 401/502 answers on HTTP ports).
boost::asio::awaitable<void> answer_and_close(boost::asio::ip::tcp::socket socket, std::string response);

}  // namespace kaisar::gateway
