#include "gateway/client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/json.hpp>

#include "core/json_fields.hpp"
#include "crypto/eip191.hpp"
#include "net/client.hpp"

namespace kaisar::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// One TLS context per process for agents: it holds no per-connection state.
asio::ssl::context& client_context() {
  static asio::ssl::context context = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                  asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    c.set_default_verify_paths(ec);
    return c;
  }();
  return context;
}

// SHA-256 of the certificate the TLS peer showed (lower-case hex); empty without one.
std::string peer_certificate_sha256(SSL* ssl) {
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer == nullptr) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  std::string hex;
  if (X509_digest(peer, EVP_sha256(), digest, &n) == 1) hex = to_hex(ByteView(digest, n), false);
  X509_free(peer);
  return hex;
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<TunnelSocket>>> connect_tunnel_socket(asio::any_io_executor executor,
                                                                              const TunnelTarget& target,
                                                                              std::chrono::milliseconds timeout) {
  std::string as_https = target.url;
  if (as_https.rfind("wss://", 0) != 0) co_return fail(ErrorCode::kInvalidArgument, "the gateway's URL must be wss://: " + target.url);
  as_https = "https://" + as_https.substr(6);
  auto url = net::Url::parse(as_https);
  if (!url) co_return fail(ErrorCode::kInvalidArgument, "bad gateway URL '" + target.url + "'");
  tcp::resolver resolver(executor);
  auto [rec, found] = co_await resolver.async_resolve(url->host, std::to_string(url->port), kTuple);
  if (rec) co_return fail(ErrorCode::kUnavailable, "cannot resolve " + url->host + ": " + rec.message());
  auto ws = std::make_unique<TunnelSocket>(beast::tcp_stream(executor), client_context());
  auto& lowest = beast::get_lowest_layer(*ws);
  lowest.expires_after(timeout);
  auto [cec, endpoint] = co_await lowest.async_connect(found, kTuple);
  if (cec) co_return fail(ErrorCode::kUnavailable, "cannot reach the gateway at " + target.url + ": " + cec.message());
  lowest.socket().set_option(tcp::no_delay(true), cec);
  auto& tls = ws->next_layer();
  // SSL_set_tlsext_host_name without the macro's C cast.
  if (SSL_ctrl(tls.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(url->host.c_str())) != 1) {
    co_return fail(ErrorCode::kInternal, "cannot set the TLS server name");
  }
  tls.set_verify_mode(asio::ssl::verify_peer);
  if (!target.certificate_sha256.empty()) {
    // The pinned certificate, whoever signed it.
    tls.set_verify_callback([pin = target.certificate_sha256](bool, asio::ssl::verify_context& ctx) {
      X509_STORE_CTX* store = ctx.native_handle();
      if (X509_STORE_CTX_get_error_depth(store) > 0) return true;  // only the gateway's own certificate counts
      X509* cert = X509_STORE_CTX_get_current_cert(store);
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int n = 0;
      if (cert == nullptr || X509_digest(cert, EVP_sha256(), digest, &n) != 1) return false;
      return to_hex(ByteView(digest, n), false) == pin;
    });
  } else {
    tls.set_verify_callback(asio::ssl::host_name_verification(url->host));
  }
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) {
    const bool untrusted = hec.category() == asio::error::get_ssl_category() &&
                           ERR_GET_REASON(static_cast<unsigned long>(hec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED;
    co_return fail(ErrorCode::kUnavailable,
                   untrusted ? "the gateway's certificate is not the pinned one (or not trusted): " + target.url
                             : "TLS with the gateway failed: " + hec.message());
  }
  // Masked in 64 KiB pieces rather than Beast's default 4 KiB: each piece is a TLS record and
  // a write. (Takes effect at the handshake.)
  ws->write_buffer_bytes(kMaxData + 64);
  const std::string host = url->host + ":" + std::to_string(url->port);
  auto [wec] = co_await ws->async_handshake(host, url->target, kTuple);
  if (wec) co_return fail(ErrorCode::kUnavailable, "the gateway refused the WebSocket: " + wec.message());
  lowest.expires_never();
  co_return ws;
}

asio::awaitable<Result<std::shared_ptr<TunnelConnection>>> dial_tunnel(asio::any_io_executor executor, TunnelTarget target,
                                                                       const crypto::PrivateKey& node_key,
                                                                       TunnelConnection::Resolver resolver,
                                                                       std::chrono::milliseconds timeout) {
  auto connected = co_await connect_tunnel_socket(executor, target, timeout);
  if (!connected) co_return std::unexpected(connected.error());
  auto ws = std::move(*connected);
  auto& lowest = beast::get_lowest_layer(*ws);
  lowest.expires_after(timeout);
  ws->read_message_max(kMaxData + 1024);
  beast::flat_buffer buffer;
  auto [rec, rn] = co_await ws->async_read(buffer, kTuple);
  if (rec) co_return fail(ErrorCode::kUnavailable, "the gateway sent no challenge: " + rec.message());
  boost::system::error_code jec;
  auto challenge = json::parse(beast::buffers_to_string(buffer.cdata()), jec);
  if (jec || !challenge.is_object() || string_field(challenge.get_object(), "type") != "challenge" ||
      string_field(challenge.get_object(), "nonce").size() != 64) {
    co_return fail(ErrorCode::kInvalidArgument, "the gateway sent no valid challenge");
  }
  const std::string nonce = string_field(challenge.get_object(), "nonce");
  // Signed over the certificate actually seen in the handshake (not what the gateway says),
  // so the signature is good for this gateway only.
  const std::string seen_sha256 = peer_certificate_sha256(ws->next_layer().native_handle());
  if (seen_sha256.empty()) co_return fail(ErrorCode::kUnavailable, "the gateway showed no certificate");
  const auto signature = crypto::personal_sign(node_key, tunnel_auth_message(seen_sha256, nonce));
  ws->text(true);
  const std::string hello = json::serialize(json::object{
      {"type", "hello"}, {"node", node_key.address().to_checksum()}, {"signature", signature.to_hex()}});
  auto [wec, wn] = co_await ws->async_write(asio::buffer(hello), kTuple);
  if (wec) co_return fail(ErrorCode::kUnavailable, "the gateway closed the tunnel: " + wec.message());
  buffer.clear();
  auto [aec, an] = co_await ws->async_read(buffer, kTuple);
  if (aec) co_return fail(ErrorCode::kUnavailable, "the gateway closed the tunnel: " + aec.message());
  auto answer = json::parse(beast::buffers_to_string(buffer.cdata()), jec);
  if (jec || !answer.is_object()) co_return fail(ErrorCode::kInvalidArgument, "the gateway's answer is not JSON");
  if (string_field(answer.get_object(), "type") != "welcome") {
    co_return fail(ErrorCode::kUnauthenticated, "the gateway refused the tunnel: " + string_field(answer.get_object(), "message"));
  }
  lowest.expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds{10};
  timeouts.idle_timeout = std::chrono::seconds{20};
  timeouts.keep_alive_pings = true;
  ws->set_option(timeouts);
  co_return std::make_shared<TunnelConnection>(std::move(ws), Mux::Role::kAgent, std::move(resolver));
}

}  // namespace kaisar::gateway
