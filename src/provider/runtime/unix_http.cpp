#include "provider/runtime/unix_http.hpp"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <exception>

namespace kaisar::provider::runtime {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Stream = beast::basic_stream<local>;
using boost::system::error_code;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

Error io_error(std::string_view what, const std::string& socket_path, const error_code& ec) {
  if (ec == beast::error::timeout) {
    return Error{ErrorCode::kTimeout, std::string(what) + " on " + socket_path + " timed out"};
  }
  return Error{ErrorCode::kUnavailable, std::string(what) + " on " + socket_path + ": " + ec.message()};
}

http::request<http::string_body> make_request(std::string_view method, std::string_view target, std::string_view body,
                                              std::string_view content_type) {
  http::request<http::string_body> req;
  req.version(11);
  req.method_string(method);
  req.target(target);
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "kaisar");
  if (!body.empty()) req.set(http::field::content_type, content_type);
  req.body() = std::string(body);
  req.keep_alive(false);
  req.prepare_payload();
  return req;
}

asio::awaitable<Result<void>> connect_and_send(Stream& stream, const std::string& socket_path,
                                               http::request<http::string_body>& req) {
  {
    auto [ec] = co_await stream.async_connect(local::endpoint(socket_path), kTuple);
    if (ec) co_return std::unexpected(io_error("connecting to the container engine", socket_path, ec));
  }
  auto [ec, n] = co_await http::async_write(stream, req, kTuple);
  if (ec) co_return std::unexpected(io_error("sending to the container engine", socket_path, ec));
  co_return Result<void>{};
}

asio::awaitable<Result<UnixResponse>> do_request(std::string socket_path, http::request<http::string_body> req,
                                                 std::chrono::milliseconds timeout, std::size_t body_limit) {
  Stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  if (auto sent = co_await connect_and_send(stream, socket_path, req); !sent) co_return std::unexpected(sent.error());
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  beast::flat_buffer buffer;
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
  if (ec) co_return std::unexpected(io_error("reading from the container engine", socket_path, ec));
  UnixResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  out.body = std::move(parser.get().body());
  co_return out;
}

asio::awaitable<Result<int>> do_stream(std::string socket_path, http::request<http::string_body> req,
                                       std::function<bool(std::string_view)> on_data,
                                       std::chrono::milliseconds timeout) {
  Stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  if (auto sent = co_await connect_and_send(stream, socket_path, req); !sent) co_return std::unexpected(sent.error());
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  {
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
    if (ec) co_return std::unexpected(io_error("reading from the container engine", socket_path, ec));
  }
  const int status = static_cast<int>(parser.get().result_int());
  const bool ok = status >= 200 && status < 300;
  std::string error_body;
  std::array<char, 16384> chunk{};
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    // read_some: hand over what has arrived (a followed log line) without waiting for more.
    auto [ec, n] = co_await http::async_read_some(stream, buffer, parser, kTuple);
    if (ec && ec != http::error::need_buffer) {
      co_return std::unexpected(io_error("reading from the container engine", socket_path, ec));
    }
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got == 0) continue;
    const std::string_view data(chunk.data(), got);
    if (!ok) {
      if (error_body.size() < 4096) error_body.append(data.substr(0, 4096 - error_body.size()));
      continue;
    }
    if (!on_data(data)) co_return status;
  }
  if (!ok) co_return fail(ErrorCode::kUnavailable, "container engine answered " + std::to_string(status) + ": " + error_body);
  co_return status;
}

template <class T>
Result<T> run_blocking(asio::awaitable<Result<T>> task) {
  try {
    asio::io_context ioc(1);
    Result<T> result = fail(ErrorCode::kInternal, "request did not complete");
    std::exception_ptr failure;
    asio::co_spawn(ioc, std::move(task), [&](std::exception_ptr e, Result<T> r) {
      failure = e;
      result = std::move(r);
    });
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    return result;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, std::string("container engine request failed: ") + e.what());
  }
}

}  // namespace

Result<UnixResponse> unix_request(const std::string& socket_path, std::string_view method, std::string_view target,
                                  std::string_view body, std::string_view content_type,
                                  std::chrono::milliseconds timeout, std::size_t body_limit) {
  return run_blocking(do_request(socket_path, make_request(method, target, body, content_type), timeout, body_limit));
}

Result<int> unix_stream(const std::string& socket_path, std::string_view method, std::string_view target,
                        std::string_view body, std::string_view content_type,
                        const std::function<bool(std::string_view)>& on_data, std::chrono::milliseconds timeout) {
  return run_blocking(do_stream(socket_path, make_request(method, target, body, content_type), on_data, timeout));
}

}  // namespace kaisar::provider::runtime
