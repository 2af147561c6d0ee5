#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "net/client.hpp"
#include "net/http.hpp"
#include "net/request_parse.hpp"
#include "net/router.hpp"
#include "net/server.hpp"
#include "process.hpp"

namespace kaisar::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

// --- pure parts -------------------------------------------------------------------------

Request make_request(std::string method, std::string target) {
  Request r;
  r.method = std::move(method);
  r.target = target;
  split_target(target, r.path, r.query_string);
  return r;
}

Response ok_text(std::string body) { return Response::text(200, std::move(body)); }

TEST(Router, MatchesLiteralsAndPlaceholders) {
  Router router;
  router.add("GET", "/api/v1/providers/{id}", [](Request&) { return ok_text("one"); });
  router.add("GET", "/api/v1/providers/mine", [](Request&) { return ok_text("mine"); });
  router.add("POST", "/api/v1/providers", [](Request&) { return ok_text("create"); });
  router.add("GET", "/a/{x}/b/{y}", [](Request&) { return ok_text("two"); });

  auto r1 = make_request("GET", "/api/v1/providers/0xabc");
  auto m1 = router.match(r1);
  ASSERT_NE(m1.route, nullptr);
  EXPECT_EQ(m1.route->pattern, "/api/v1/providers/{id}");
  EXPECT_EQ(r1.path_params.at("id"), "0xabc");

  // A literal segment beats a placeholder whatever the order of registration.
  auto r2 = make_request("GET", "/api/v1/providers/mine");
  auto m2 = router.match(r2);
  ASSERT_NE(m2.route, nullptr);
  EXPECT_EQ(m2.route->pattern, "/api/v1/providers/mine");

  auto r3 = make_request("GET", "/a/1/b/hello%20world");
  auto m3 = router.match(r3);
  ASSERT_NE(m3.route, nullptr);
  EXPECT_EQ(r3.path_params.at("x"), "1");
  EXPECT_EQ(r3.path_params.at("y"), "hello world");

  auto r4 = make_request("GET", "/api/v1/providers/");  // empty segment never matches {id}
  EXPECT_EQ(router.match(r4).status, 404);
  auto r5 = make_request("GET", "/api/v1/providers/x/y");
  EXPECT_EQ(router.match(r5).status, 404);
  auto r6 = make_request("GET", "/nothing");
  EXPECT_EQ(router.match(r6).status, 404);
}

TEST(Router, MethodNotAllowedListsMethods) {
  Router router;
  router.add("GET", "/items", [](Request&) { return ok_text("list"); });
  router.add("POST", "/items", [](Request&) { return ok_text("add"); });
  auto r = make_request("DELETE", "/items");
  auto m = router.match(r);
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.allow, "GET, HEAD, POST");

  auto head = make_request("HEAD", "/items");
  auto mh = router.match(head);
  ASSERT_NE(mh.route, nullptr);
  EXPECT_EQ(mh.route->method, "GET");

  Response res = dispatch(router, r);
  EXPECT_EQ(res.status, 405);
  bool has_allow = false;
  for (auto& [k, v] : res.headers) has_allow |= (k == "allow" && v == "GET, HEAD, POST");
  EXPECT_TRUE(has_allow);
}

TEST(Router, DispatchTurnsExceptionsInto500) {
  Router router;
  router.add("GET", "/boom", [](Request&) -> Response { throw std::runtime_error("kaput"); });
  auto r = make_request("GET", "/boom");
  Response res = dispatch(router, r);
  EXPECT_EQ(res.status, 500);
  auto body = json::parse(res.body);
  EXPECT_EQ(body.at("error").at("code"), "internal");
}

TEST(Http, QueryDecoding) {
  auto r = make_request("GET", "/x?name=J%C3%BCrgen+M%20x&flag&empty=&a=1&a=2&bad=%zz%4");
  EXPECT_EQ(r.path, "/x");
  EXPECT_EQ(r.query_string, "name=J%C3%BCrgen+M%20x&flag&empty=&a=1&a=2&bad=%zz%4");
  EXPECT_EQ(r.query("name"), "J\xC3\xBCrgen M x");
  EXPECT_EQ(r.query("flag"), "");
  EXPECT_EQ(r.query("empty"), "");
  EXPECT_EQ(r.query("a"), "1");
  EXPECT_EQ(r.query("bad"), "%zz%4");
  EXPECT_EQ(r.query("missing"), std::nullopt);
  // '+' is a space only in the query, not in the path.
  auto p = make_request("GET", "/a+b/%41");
  EXPECT_EQ(p.path, "/a+b/A");
}

TEST(Http, HeadersAndBearer) {
  Request r;
  r.headers = {{"authorization", "Bearer  tok.en-1 "}, {"x-a", "1"}};
  EXPECT_EQ(r.header("x-a"), "1");
  EXPECT_EQ(r.header("x-b"), std::nullopt);
  EXPECT_EQ(r.bearer_token(), "tok.en-1");
  r.headers = {{"authorization", "bearer abc"}};
  EXPECT_EQ(r.bearer_token(), "abc");
  r.headers = {{"authorization", "Basic abc"}};
  EXPECT_EQ(r.bearer_token(), std::nullopt);
  r.headers = {{"authorization", "Bearer "}};
  EXPECT_EQ(r.bearer_token(), std::nullopt);
  r.headers = {{"authorization", "Bearerabc"}};
  EXPECT_EQ(r.bearer_token(), std::nullopt);
}

TEST(Http, ErrorResponsesAndStatuses) {
  Response res = Response::error(ErrorCode::kConflict, "nonce \"7\" already used");
  EXPECT_EQ(res.status, 409);
  auto body = json::parse(res.body);
  EXPECT_EQ(body.at("error").at("code"), "conflict");
  EXPECT_EQ(body.at("error").at("message"), "nonce \"7\" already used");
  EXPECT_EQ(error_http_status(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(error_http_status(ErrorCode::kUnauthenticated), 401);
  EXPECT_EQ(error_http_status(ErrorCode::kPermissionDenied), 403);
  EXPECT_EQ(error_http_status(ErrorCode::kNotFound), 404);
  EXPECT_EQ(error_http_status(ErrorCode::kPayloadTooLarge), 413);
  EXPECT_EQ(error_http_status(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(error_http_status(ErrorCode::kTimeout), 504);
  EXPECT_EQ(error_http_status(ErrorCode::kInternal), 500);
  EXPECT_EQ(status_reason(404), "Not Found");
  EXPECT_EQ(status_reason(431), "Request Header Fields Too Large");
  EXPECT_EQ(status_reason(299), "Unknown");
}

TEST(Http, ErrorMessagesStayValidJson) {
  // Found by fuzzing: a 404 quoting a path with invalid UTF-8 produced unparsable JSON.
  Response res = Response::error(ErrorCode::kNotFound, "no route for GET /\xff\xc3(ok\xc3\xa9\xed\xa0\x80");
  auto body = json::parse(res.body);
  EXPECT_EQ(body.at("error").at("message"), "no route for GET /\xEF\xBF\xBD\xEF\xBF\xBD(ok\xC3\xA9"
                                            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(RequestParse, ParsesCompleteRequests) {
  auto get = parse_http_request("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing: Yes\r\n\r\n", 1024);
  ASSERT_TRUE(get.has_value()) << get.error().message;
  EXPECT_EQ(get->method, "GET");
  EXPECT_EQ(get->path, "/a/b");
  EXPECT_EQ(get->query_string, "x=1");
  EXPECT_EQ(get->header("x-thing"), "Yes");

  auto chunked = parse_http_request(
      "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n", 1024);
  ASSERT_TRUE(chunked.has_value()) << chunked.error().message;
  EXPECT_EQ(chunked->body, "abcdefg");

  auto big = parse_http_request("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", 5);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);

  auto bad = parse_http_request("GARBAGE\r\n\r\n", 1024);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);

  auto truncated = parse_http_request("POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n01", 1024);
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().code, ErrorCode::kInvalidArgument);
}

TEST(Url, Parses) {
  auto u = Url::parse("http://127.0.0.1:8080/api/v1/x?y=1#frag");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/api/v1/x?y=1");

  auto d = Url::parse("WS://example.com");
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ(d->scheme, "ws");
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->target, "/");

  auto v6 = Url::parse("http://[::1]:9/");
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_EQ(v6->host, "::1");
}

TEST(Url, RejectsBadUrls) {
  for (const char* text : {"", "not a url", "ftp://x/", "http:///path",
                           "http://x:0/", "http://x:65536/", "http://x:abc/", "http://user:pw@x/", "/relative"}) {
    auto u = Url::parse(text);
    ASSERT_FALSE(u.has_value()) << text;
    EXPECT_EQ(u.error().code, ErrorCode::kInvalidArgument) << text;
  }
}

TEST(Url, OnlyTlsOrLoopbackMayCarryAControlChannel) {
  for (const char* url : {"https://onenode.example", "wss://onenode.example:8443/x", "http://127.0.0.1:8080",
                          "http://localhost:1", "ws://[::1]:9/", "http://127.3.2.1:80"}) {
    EXPECT_TRUE(require_secure_channel(url, false)) << url;
  }
  for (const char* url : {"http://192.0.2.7:8080", "http://onenode.example", "ws://10.0.0.1/"}) {
    auto refused = require_secure_channel(url, false);
    ASSERT_FALSE(refused) << url;
    EXPECT_NE(refused.error().message.find("--insecure-dev"), std::string::npos) << refused.error().message;
    EXPECT_TRUE(require_secure_channel(url, true)) << url;  // a dev network, on the operator's word
  }
  auto wss = Url::parse("wss://onenode.example/api");
  ASSERT_TRUE(wss) << wss.error().message;
  EXPECT_EQ(wss->port, 443);
}

TEST(Url, HttpsDefaultsToPort443) {
  auto u = Url::parse("https://rpc.example/v1?key=a");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/v1?key=a");
}

// HTTPS against `openssl s_server` with certificates made for the test.
class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = kaisar::testing::make_temp_dir("tls");
    make_cert("good", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    make_cert("other", "/CN=other.example", "subjectAltName=DNS:other.example");
  }
  void TearDown() override {
    unsetenv("SSL_CERT_FILE");
    std::filesystem::remove_all(dir_);
  }
  void make_cert(const std::string& name, const std::string& subject, const std::string& san) {
    auto r = kaisar::testing::run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                                           dir_ + "/" + name + ".key", "-out", dir_ + "/" + name + ".pem", "-subj",
                                           subject, "-addext", san, "-days", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Starts s_server with cert NAME; returns its https:// base URL.
  std::string serve(const std::string& name) {
    server_ = std::make_unique<kaisar::testing::ChildProcess>(std::vector<std::string>{
        "openssl", "s_server", "-cert", dir_ + "/" + name + ".pem", "-key", dir_ + "/" + name + ".key", "-accept",
        "127.0.0.1:0", "-www"});
    auto line = server_->wait_for_line("ACCEPT ");
    EXPECT_TRUE(line) << server_->output();
    std::string address = line ? *line : "";
    while (!address.empty() && (address.back() == '\n' || address.back() == '\r')) address.pop_back();
    return "https://" + address + "/";
  }
  std::string dir_;
  std::unique_ptr<kaisar::testing::ChildProcess> server_;
};

TEST_F(HttpsTest, TrustedCertificateWorks) {
  setenv("SSL_CERT_FILE", (dir_ + "/good.pem").c_str(), 1);
  auto r = http_request("GET", serve("good"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->body.empty());
}

TEST_F(HttpsTest, UntrustedCertificateIsRefused) {
  setenv("SSL_CERT_FILE", (dir_ + "/other.pem").c_str(), 1);  // trusts only another CA
  auto r = http_request("GET", serve("good"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
}

TEST_F(HttpsTest, CertificateForAnotherHostIsRefused) {
  setenv("SSL_CERT_FILE", (dir_ + "/other.pem").c_str(), 1);
  auto r = http_request("GET", serve("other"));  // trusted, but names other.example, not 127.0.0.1
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

// --- server fixtures ---------------------------------------------------------------------

class TestServer {
 public:
  TestServer(Router router, ServerOptions options = {}) : server_(std::move(options), std::move(router)) {
    auto port = server_.start();
    if (!port) throw std::runtime_error(port.error().message);
    port_ = *port;
  }
  std::string url(std::string_view target) const { return "http://127.0.0.1:" + std::to_string(port_) + std::string(target); }
  std::string ws_url(std::string_view target) const { return "ws://127.0.0.1:" + std::to_string(port_) + std::string(target); }
  std::uint16_t port() const { return port_; }
  HttpServer& server() { return server_; }

 private:
  HttpServer server_;
  std::uint16_t port_ = 0;
};

// A blocking socket that gives up on reads after a few seconds rather than hanging a test.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{5, 0};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

  struct Reply {
    int status = 0;
    std::string head;
    std::string body;
  };
  // One response with a Content-Length body (none for HEAD); status 0 if the connection
  // ended first.
  Reply read_response(bool head_request = false) {
    Reply reply;
    std::size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return reply;
    }
    reply.head = pending_.substr(0, end + 4);
    pending_.erase(0, end + 4);
    reply.status = std::stoi(reply.head.substr(9, 3));
    std::size_t length = 0;
    auto cl = reply.head.find("Content-Length: ");
    if (cl != std::string::npos && !head_request) length = std::stoul(reply.head.substr(cl + 16));
    while (pending_.size() < length) {
      if (!fill()) return reply;
    }
    reply.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return reply;
  }
  // Reads until `needle` has arrived; false if the connection ended or stalled first.
  bool read_until(std::string_view needle) {
    while (pending_.find(needle) == std::string::npos) {
      if (!fill()) return false;
    }
    pending_.erase(0, pending_.find(needle) + needle.size());
    return true;
  }
  // True when the server closed the connection (EOF or reset) before more data came.
  bool closed_by_peer() {
    return !fill();
  }

 private:
  bool fill() {
    char buf[4096];
    boost::system::error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(buf), ec);
    if (ec || n == 0) return false;
    pending_.append(buf, n);
    return true;
  }
  asio::io_context ioc_;
  tcp::socket socket_;
  std::string pending_;
};

Router demo_router() {
  Router router;
  router.add("GET", "/hello/{name}", [](Request& r) {
    return Response::json(200, {{"hello", r.path_params.at("name")}, {"q", r.query("q").value_or("")}});
  });
  router.add("POST", "/echo", [](Request& r) {
    return Response::json(201, {{"body", r.body}, {"type", r.header("content-type").value_or("")}});
  });
  router.add("GET", "/boom", [](Request&) -> Response { throw std::runtime_error("kaput"); });
  router.add("GET", "/slow", [](Request&) {
    std::this_thread::sleep_for(400ms);
    return ok_text("slow done");
  });
  return router;
}

TEST(Server, RoutesWithParamsAndQuery) {
  TestServer ts(demo_router());
  auto res = http_request("GET", ts.url("/hello/w%C3%B6rld?q=a+b%26c"));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("content-type"), "application/json");
  EXPECT_EQ(res->header("server"), "kaisar");
  auto body = json::parse(res->body);
  EXPECT_EQ(body.at("hello"), "w\xC3\xB6rld");
  EXPECT_EQ(body.at("q"), "a b&c");

  auto post = http_request("POST", ts.url("/echo"), "{\"x\":1}", {{"Content-Type", "application/json"}});
  ASSERT_TRUE(post.has_value()) << post.error().message;
  EXPECT_EQ(post->status, 201);
  EXPECT_EQ(json::parse(post->body).at("body"), "{\"x\":1}");
  EXPECT_EQ(json::parse(post->body).at("type"), "application/json");
}

TEST(Server, NotFoundAndMethodNotAllowedAreJsonErrors) {
  TestServer ts(demo_router());
  auto missing = http_request("GET", ts.url("/x"));
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"error":{"code":"not_found","message":"no route for GET /x"}})");

  auto wrong = http_request("DELETE", ts.url("/echo"));
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->header("allow"), "POST");
  EXPECT_EQ(json::parse(wrong->body).at("error").at("code"), "invalid_argument");
}

TEST(Server, HandlerExceptionIs500) {
  TestServer ts(demo_router());
  auto res = http_request("GET", ts.url("/boom"));
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(json::parse(res->body).at("error").at("code"), "internal");
  // The server is still there.
  auto again = http_request("GET", ts.url("/hello/x"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
}

TEST(Server, HeadAnswersWithoutBody) {
  TestServer ts(demo_router());
  RawClient c(ts.port());
  c.send("HEAD /hello/x HTTP/1.1\r\nHost: t\r\n\r\nGET /hello/y HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = c.read_response(true);
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.head.find("Content-Length: 20"), std::string::npos) << head.head;
  // The next response follows directly: HEAD sent no body bytes.
  auto get = c.read_response();
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, R"({"hello":"y","q":""})");
}

TEST(Server, KeepAliveServesTwoRequestsOnOneConnection) {
  TestServer ts(demo_router());
  RawClient c(ts.port());
  c.send("GET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n");
  auto first = c.read_response();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, R"({"hello":"a","q":""})");
  c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
  auto second = c.read_response();
  EXPECT_EQ(second.status, 201);
  EXPECT_NE(second.body.find("\"abc\""), std::string::npos);
  EXPECT_EQ(ts.server().open_connections(), 1u);
  c.send("GET /hello/b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto third = c.read_response();
  EXPECT_EQ(third.status, 200);
  EXPECT_NE(third.head.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(Server, IdleKeepAliveConnectionIsClosed) {
  ServerOptions options;
  options.keep_alive_timeout = 1s;
  TestServer ts(demo_router(), options);
  RawClient c(ts.port());
  c.send("GET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST(Server, BodyOverLimitIs413) {
  ServerOptions options;
  options.body_limit = 1000;
  TestServer ts(demo_router(), options);
  {
    RawClient c(ts.port());
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'x'));
    auto reply = c.read_response();
    EXPECT_EQ(reply.status, 413);
    EXPECT_EQ(json::parse(reply.body).at("error").at("code"), "payload_too_large");
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    // Chunked bodies are counted as they arrive.
    RawClient c(ts.port());
    std::string chunk(600, 'y');
    c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk + "\r\n258\r\n" + chunk +
           "\r\n0\r\n\r\n");
    EXPECT_EQ(c.read_response().status, 413);
  }
  auto fine = http_request("POST", ts.url("/echo"), std::string(1000, 'z'));
  ASSERT_TRUE(fine.has_value());
  EXPECT_EQ(fine->status, 201);
}

TEST(Server, HeaderOverLimitIs431) {
  ServerOptions options;
  options.header_limit = 1024;
  TestServer ts(demo_router(), options);
  RawClient c(ts.port());
  c.send("GET /hello/a HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n");
  auto reply = c.read_response();
  EXPECT_EQ(reply.status, 431);
}

TEST(Server, MalformedRequestIs400) {
  TestServer ts(demo_router());
  for (std::string bad : {"GET\r\n\r\n", "GET /x HTTP/9\r\n\r\n", "G@T /x HTTP/1.1\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n"}) {
    RawClient c(ts.port());
    c.send(bad);
    auto reply = c.read_response();
    EXPECT_EQ(reply.status, 400) << bad;
    if (reply.status == 400) {
      EXPECT_EQ(json::parse(reply.body).at("error").at("code"), "invalid_argument");
    }
    EXPECT_TRUE(c.closed_by_peer());
  }
}

TEST(Server, SlowRequestTimesOutWith408) {
  ServerOptions options;
  options.request_timeout = 1s;
  TestServer ts(demo_router(), options);
  RawClient c(ts.port());
  auto start = std::chrono::steady_clock::now();
  c.send("GET /hello/a HTTP/1.1\r\nHost: t\r\n");  // header never finished
  auto reply = c.read_response();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(reply.status, 408);
  EXPECT_EQ(json::parse(reply.body).at("error").at("code"), "timeout");
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 4s);
}

TEST(Server, ConcurrentClients) {
  ServerOptions options;
  options.threads = 2;
  TestServer ts(demo_router(), options);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        std::string name = std::to_string(t) + "-" + std::to_string(i);
        auto res = http_request("GET", ts.url("/hello/" + name));
        if (res && res->status == 200 && json::parse(res->body).at("hello").as_string() == name) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST(Server, GracefulStopFinishesInFlightRequest) {
  auto ts = std::make_unique<TestServer>(demo_router());
  std::string url = ts->url("/slow");
  auto pending = std::async(std::launch::async, [url] { return http_request("GET", url); });
  std::this_thread::sleep_for(150ms);
  // An idle keep-alive connection must not hold the stop up.
  RawClient idle(ts->port());
  idle.send("GET /hello/a HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(idle.read_response().status, 200);

  auto start = std::chrono::steady_clock::now();
  ts->server().stop(3000ms);
  auto took = std::chrono::steady_clock::now() - start;
  auto res = pending.get();
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "slow done");
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_EQ(ts->server().open_connections(), 0u);

  auto after = http_request("GET", url, {}, {}, 1000ms);
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ErrorCode::kUnavailable);
}

TEST(Server, StopPastGraceClosesEverything) {
  ServerOptions options;
  auto ts = std::make_unique<TestServer>(demo_router(), options);
  RawClient partial(ts->port());
  partial.send("GET /hello/a HTTP/1.1\r\n");  // in flight, never completed
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(ts->server().open_connections(), 1u);
  auto start = std::chrono::steady_clock::now();
  ts->server().stop(300ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(partial.closed_by_peer());
}

TEST(Client, ClosedPortIsUnavailable) {
  std::uint16_t port;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto res = http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/");
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);

  auto bad = http_request("GET", "ftp://127.0.0.1/");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

TEST(Client, TimesOutOnSilentServer) {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // listens, never answers
  auto start = std::chrono::steady_clock::now();
  auto res = http_request("GET", "http://127.0.0.1:" + std::to_string(a.local_endpoint().port()) + "/", {}, {}, 300ms);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// --- SSE -----------------------------------------------------------------------------------

struct SseHub {
  std::mutex mutex;
  std::condition_variable cv;
  std::shared_ptr<SseStream> stream;
  bool closed = false;

  std::shared_ptr<SseStream> wait_stream() {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, 5s, [&] { return stream != nullptr; });
    return stream;
  }
  bool wait_closed() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 5s, [&] { return closed; });
  }
};

Router sse_router(SseHub& hub) {
  Router router;
  router.add_sse("/events", [&hub](Request& r, std::shared_ptr<SseStream> s) -> std::optional<Response> {
    if (r.bearer_token() != "letmein") return Response::error(ErrorCode::kUnauthenticated, "bad token");
    s->on_close([&hub] {
      std::lock_guard lock(hub.mutex);
      hub.closed = true;
      hub.cv.notify_all();
    });
    s->send("hello", "first");
    std::lock_guard lock(hub.mutex);
    hub.stream = s;
    hub.cv.notify_all();
    return std::nullopt;
  });
  return router;
}

TEST(Sse, DeliversEventsAndNoticesDisconnect) {
  SseHub hub;
  TestServer ts(sse_router(hub));
  auto reader = SseReader::open(ts.url("/events"), {{"Authorization", "Bearer letmein"}});
  ASSERT_TRUE(reader.has_value()) << reader.error().message;
  auto stream = hub.wait_stream();
  ASSERT_NE(stream, nullptr);
  std::thread sender([stream] {
    stream->send("tick", "1");
    stream->send("", "line one\nline two");
    stream->send("tick", "3");
  });
  sender.join();

  auto e1 = (*reader)->next(5s);
  ASSERT_TRUE(e1.has_value()) << e1.error().message;
  EXPECT_EQ(e1->event, "hello");
  EXPECT_EQ(e1->data, "first");
  auto e2 = (*reader)->next(5s);
  ASSERT_TRUE(e2.has_value());
  EXPECT_EQ(e2->event, "tick");
  EXPECT_EQ(e2->data, "1");
  auto e3 = (*reader)->next(5s);
  ASSERT_TRUE(e3.has_value());
  EXPECT_EQ(e3->event, "message");
  EXPECT_EQ(e3->data, "line one\nline two");
  auto e4 = (*reader)->next(5s);
  ASSERT_TRUE(e4.has_value());
  EXPECT_EQ(e4->data, "3");

  auto none = (*reader)->next(200ms);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kTimeout);
  EXPECT_FALSE(stream->closed());

  reader->reset();  // the client goes away
  EXPECT_TRUE(hub.wait_closed());
  EXPECT_TRUE(stream->closed());
  stream->send("late", "ignored");  // harmless after the end
}

TEST(Sse, RefusalAndKeepaliveAndServerClose) {
  SseHub hub;
  ServerOptions options;
  options.sse_keepalive = 1s;
  TestServer ts(sse_router(hub), options);

  auto refused = SseReader::open(ts.url("/events"), {{"Authorization", "Bearer nope"}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthenticated);
  EXPECT_NE(refused.error().message.find("bad token"), std::string::npos);

  RawClient raw(ts.port());
  raw.send("GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer letmein\r\n\r\n");
  auto head = raw.read_response();  // no Content-Length: the head alone
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.head.find("Cache-Control: no-cache"), std::string::npos);
  std::string seen = head.head;
  EXPECT_TRUE(raw.read_until(": keepalive\n\n"));
  EXPECT_NE(seen.find("text/event-stream"), std::string::npos);
  auto stream = hub.wait_stream();
  ASSERT_NE(stream, nullptr);
  stream->close();
  EXPECT_TRUE(hub.wait_closed());
  EXPECT_TRUE(raw.closed_by_peer());
}

// --- WebSocket --------------------------------------------------------------------------

template <class T>
T run_coro(asio::io_context& ioc, asio::awaitable<T> coro) {
  auto future = asio::co_spawn(ioc, std::move(coro), asio::use_future);
  ioc.restart();
  ioc.run();
  return future.get();
}

struct WsHub {
  std::mutex mutex;
  std::condition_variable cv;
  int opened = 0;
  int closed = 0;
  std::shared_ptr<WebSocketSession> last;
};

Router ws_router(WsHub& hub) {
  Router router;
  router.add_websocket("/ws/{room}", [&hub](Request& r, std::shared_ptr<WebSocketSession> s) -> std::optional<Response> {
    if (r.header("x-token") != "ok") return Response::error(ErrorCode::kUnauthenticated, "no token");
    std::weak_ptr<WebSocketSession> weak = s;
    std::string room = r.path_params.at("room");
    s->on_message([weak, room](std::string_view text) {
      auto self = weak.lock();
      if (!self) return;
      if (text == "bye") {
        self->close("asked to");
        return;
      }
      if (text == "throw") throw std::runtime_error("bad message");
      self->send(room + ":" + std::string(text));
    });
    s->on_binary([weak](std::string_view bytes) {
      if (auto self = weak.lock()) self->send_binary("echo:" + std::string(bytes));
    });
    s->on_close([&hub] {
      std::lock_guard lock(hub.mutex);
      ++hub.closed;
      hub.cv.notify_all();
    });
    s->send("welcome " + s->remote_ip());
    std::lock_guard lock(hub.mutex);
    ++hub.opened;
    hub.last = s;
    return std::nullopt;
  });
  return router;
}

// Built outside the coroutines: GCC 12 miscompiles braced string literals inside co_await.
Headers token_headers() { return {{"X-Token", "ok"}}; }

bool wait_closed(WsHub& hub, int count) {
  std::unique_lock lock(hub.mutex);
  return hub.cv.wait_for(lock, 5s, [&] { return hub.closed >= count; });
}

TEST(WebSocket, EchoesThroughClient) {
  WsHub hub;
  TestServer ts(ws_router(hub));
  asio::io_context ioc;
  std::string url = ts.ws_url("/ws/lobby");
  auto messages = run_coro(ioc, [&]() -> asio::awaitable<std::vector<std::string>> {
    std::vector<std::string> got;
    auto client = co_await WebSocketClient::connect(ioc.get_executor(), url, token_headers());
    if (!client) {
      got.push_back("connect failed: " + client.error().message);
      co_return got;
    }
    auto& c = **client;
    for (int i = 0; i < 50; ++i) c.send("m" + std::to_string(i));
    for (int i = 0; i < 51; ++i) {
      auto m = co_await c.read();
      if (!m) break;
      got.push_back(*m);
    }
    c.send("bye");
    auto end = co_await c.read();
    got.push_back(end ? "unexpected: " + *end : std::string("closed"));
    got.push_back(std::string(c.is_open() ? "open" : "not open"));
    co_return got;
  }());
  ASSERT_EQ(messages.size(), 53u) << messages.front();
  EXPECT_EQ(messages[0], "welcome 127.0.0.1");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(messages[static_cast<std::size_t>(i) + 1], "lobby:m" + std::to_string(i));
  EXPECT_EQ(messages[51], "closed");
  EXPECT_EQ(messages[52], "not open");
  EXPECT_TRUE(wait_closed(hub, 1));
  std::lock_guard lock(hub.mutex);
  EXPECT_EQ(hub.closed, 1);
}

TEST(WebSocket, BinaryMessagesStayBinary) {
  WsHub hub;
  TestServer ts(ws_router(hub));
  asio::io_context ioc;
  std::string url = ts.ws_url("/ws/lobby");
  static constexpr char kBytes[] = "\x00\x01\xff\xfe not UTF-8";
  const std::string bytes(kBytes, sizeof kBytes - 1);
  auto got = run_coro(ioc, [&]() -> asio::awaitable<std::vector<WebSocketClient::Message>> {
    std::vector<WebSocketClient::Message> out;
    auto client = co_await WebSocketClient::connect(ioc.get_executor(), url, token_headers());
    if (!client) co_return out;
    auto& c = **client;
    c.send_binary(bytes);
    c.send("text");
    for (int i = 0; i < 3; ++i) {
      auto m = co_await c.read_message();
      if (!m) break;
      out.push_back(*m);
    }
    // read() skips binary messages.
    c.send_binary("skipped");
    c.send("after");
    auto text = co_await c.read();
    out.push_back(WebSocketClient::Message{text ? *text : "read failed", false});
    c.close();
    co_return out;
  }());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_FALSE(got[0].binary);  // the welcome
  EXPECT_TRUE(got[1].binary);
  EXPECT_EQ(got[1].data, "echo:" + bytes);
  EXPECT_FALSE(got[2].binary);
  EXPECT_EQ(got[2].data, "lobby:text");
  EXPECT_EQ(got[3].data, "lobby:after");
}

TEST(WebSocket, RefusedUpgradeCarriesStatus) {
  WsHub hub;
  TestServer ts(ws_router(hub));
  asio::io_context ioc;
  std::string url = ts.ws_url("/ws/lobby");
  auto result = run_coro(ioc, [&]() -> asio::awaitable<Result<std::shared_ptr<WebSocketClient>>> {
    co_return co_await WebSocketClient::connect(ioc.get_executor(), url, Headers{});
  }());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnauthenticated);

  // Without an Upgrade header the route answers 426.
  auto plain = http_request("GET", ts.url("/ws/lobby"));
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->status, 426);
}

// Connects, reads the welcome, sends `message` and reports how the next read ends.
asio::awaitable<std::string> send_and_read(asio::io_context& ioc, std::string url, std::string message) {
  auto client = co_await WebSocketClient::connect(ioc.get_executor(), url, token_headers());
  if (!client) co_return "connect failed: " + client.error().message;
  auto welcome = co_await (*client)->read();
  if (!welcome) co_return std::string("no welcome");
  if (message.empty()) {
    (*client)->close();
  } else {
    (*client)->send(std::move(message));
  }
  auto next = co_await (*client)->read();
  co_return next ? "read: " + *next : std::string("closed");
}


TEST(WebSocket, ClientCloseAndOversizedMessageAndThrowingHandler) {
  WsHub hub;
  ServerOptions options;
  options.websocket_message_limit = 1000;
  TestServer ts(ws_router(hub), options);
  asio::io_context ioc;
  const std::string url = ts.ws_url("/ws/r");
  // The client closes.
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, "")), "closed");
  // A message over the limit ends the session.
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, std::string(5000, 'x'))), "closed");
  // A throwing on_message closes the session instead of the server.
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, "throw")), "closed");
  // And a normal message still echoes.
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, "hi")), "read: r:hi");
  EXPECT_TRUE(wait_closed(hub, 4));
  EXPECT_EQ(ts.server().open_connections(), 0u);
}

// "login" lifts the message limit, as the agents' channel does after a verified hello;
// anything else is answered with its size.
Router lifting_router() {
  Router router;
  router.add_websocket("/ws", [](Request&, std::shared_ptr<WebSocketSession> s) -> std::optional<Response> {
    std::weak_ptr<WebSocketSession> weak = s;
    s->on_message([weak](std::string_view text) {
      auto self = weak.lock();
      if (!self) return;
      if (text == "login") {
        self->lift_message_limit();
        self->send("lifted");
        return;
      }
      self->send("size:" + std::to_string(text.size()));
    });
    s->send("welcome");
    return std::nullopt;
  });
  return router;
}

TEST(WebSocket, MessagesStaySmallUntilTheRouteLiftsTheLimit) {
  ServerOptions options;
  options.websocket_hello_limit = 1024;
  options.websocket_message_limit = 1 << 20;
  TestServer ts(lifting_router(), options);
  asio::io_context ioc;
  const std::string url = ts.ws_url("/ws");
  // Before the lift, 4 KiB ends the session.
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, std::string(4096, 'x'))), "closed");
  EXPECT_EQ(run_coro(ioc, send_and_read(ioc, url, std::string(1000, 'x'))), "read: size:1000");
  // After it, a 512 KiB message is read.
  auto after = run_coro(ioc, [&]() -> asio::awaitable<std::string> {
    auto client = co_await WebSocketClient::connect(ioc.get_executor(), url);
    if (!client) co_return "connect failed: " + client.error().message;
    (void)co_await (*client)->read();
    (*client)->send("login");
    auto lifted = co_await (*client)->read();
    if (!lifted || *lifted != "lifted") co_return std::string("not lifted");
    (*client)->send(std::string(512 << 10, 'y'));
    auto size = co_await (*client)->read();
    co_return size ? *size : std::string("closed");
  }());
  EXPECT_EQ(after, "size:524288");
}

template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 100 && !pred(); ++i) std::this_thread::sleep_for(50ms);
  return pred();
}

TEST(Admission, AnonymousPeersCannotTakeTheReserve) {
  Router router;
  router.add("GET", "/healthz", [](Request&) { return Response::text(200, "ok"); });
  router.add("GET", "/x", [](Request&) { return Response::text(200, "x"); });
  ServerOptions options;
  options.admission.connections = {0, 3};
  options.admission.reserve = 2;
  options.privileged = [](const Request& r) { return r.path == "/healthz" || r.header("x-token") == "ok"; };
  TestServer ts(std::move(router), options);
  auto get = [](RawClient& c, std::string_view target, std::string_view extra = {}) {
    c.send("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n");
    return c.read_response().status;
  };
  std::vector<std::unique_ptr<RawClient>> idle;  // anonymous peers holding their share
  for (int i = 0; i < 3; ++i) idle.push_back(std::make_unique<RawClient>(ts.port()));
  ASSERT_TRUE(eventually([&] { return ts.server().open_connections() == 3; }));
  {
    RawClient stranger(ts.port());
    RawClient::Reply refused;
    stranger.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    refused = stranger.read_response();
    EXPECT_EQ(refused.status, 429);
    EXPECT_NE(refused.body.find("too many connections from 127.0.0.1"), std::string::npos) << refused.body;
  }
  ASSERT_TRUE(eventually([&] { return ts.server().open_connections() == 3; }));
  RawClient probe(ts.port());
  EXPECT_EQ(get(probe, "/healthz"), 200);
  RawClient user(ts.port());
  EXPECT_EQ(get(user, "/x", "X-Token: ok\r\n"), 200);
  EXPECT_EQ(get(user, "/x"), 429) << "each request in the reserve must be privileged";
  // Share and reserve full: refused at once, whatever it asks.
  RawClient late(ts.port());
  EXPECT_EQ(get(late, "/healthz"), 429);
}

TEST(Admission, EventStreamsHaveTheirOwnCap) {
  Router router;
  router.add_sse("/events", [](Request&, std::shared_ptr<SseStream> s) -> std::optional<Response> {
    s->send("hello", "{}");
    return std::nullopt;
  });
  ServerOptions options;
  options.admission.sse_streams = {2, 0};
  options.admission.reserve = 1;
  options.privileged = [](const Request& r) { return r.header("x-token") == "ok"; };
  TestServer ts(std::move(router), options);
  auto first = SseReader::open(ts.url("/events"));
  ASSERT_TRUE(first) << first.error().message;
  auto second = SseReader::open(ts.url("/events"));  // over total − reserve
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("maximum of 1 event streams"), std::string::npos) << second.error().message;
  auto privileged = SseReader::open(ts.url("/events"), {{"x-token", "ok"}});
  ASSERT_TRUE(privileged) << privileged.error().message;
  EXPECT_FALSE(SseReader::open(ts.url("/events"), {{"x-token", "ok"}})) << "the reserve is full too";
  first->reset();  // slots come back when streams end
  privileged->reset();
  EXPECT_TRUE(eventually([&] { return SseReader::open(ts.url("/events")).has_value(); }));
}

TEST_F(HttpsTest, WssChecksTheCertificate) {
  // A TLS WebSocket server (certificate for 127.0.0.1) that greets each client.
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  asio::io_context server_ioc;
  asio::ssl::context server_tls(asio::ssl::context::tls_server);
  server_tls.use_certificate_chain_file(dir_ + "/good.pem");
  server_tls.use_private_key_file(dir_ + "/good.key", asio::ssl::context::pem);
  tcp::acceptor acceptor(server_ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string url = "wss://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/";
  std::thread server([&] {
    for (int i = 0; i < 2; ++i) {
      tcp::socket socket(server_ioc);
      acceptor.accept(socket);
      websocket::stream<beast::ssl_stream<tcp::socket>> ws(std::move(socket), server_tls);
      boost::system::error_code ec;
      ws.next_layer().handshake(asio::ssl::stream_base::server, ec);
      if (!ec) ws.accept(ec);
      if (!ec) ws.write(asio::buffer(std::string("hello over tls")), ec);
      if (!ec) ws.close(websocket::close_code::normal, ec);
    }
  });
  auto greet = [&] {
    asio::io_context ioc;
    return run_coro(ioc, [&]() -> asio::awaitable<std::string> {
      auto client = co_await WebSocketClient::connect(ioc.get_executor(), url);
      if (!client) co_return client.error().message;
      auto m = co_await (*client)->read();
      co_return m ? *m : m.error().message;
    }());
  };
  setenv("SSL_CERT_FILE", (dir_ + "/good.pem").c_str(), 1);
  EXPECT_EQ(greet(), "hello over tls");
  setenv("SSL_CERT_FILE", (dir_ + "/other.pem").c_str(), 1);  // trusts only another CA
  EXPECT_NE(greet().find("TLS handshake"), std::string::npos);
  server.join();
}

TEST(WebSocket, ManyClientsAndServerStopSendsClose) {
  WsHub hub;
  ServerOptions options;
  options.threads = 2;
  auto ts = std::make_unique<TestServer>(ws_router(hub), options);
  constexpr int kClients = 40;
  asio::io_context ioc;
  std::string url = ts->ws_url("/ws/many");
  std::atomic<int> echoed{0};
  std::atomic<int> ended{0};
  std::promise<void> all_echoed;
  for (int i = 0; i < kClients; ++i) {
    asio::co_spawn(ioc, [&, i]() -> asio::awaitable<void> {
      auto client = co_await WebSocketClient::connect(ioc.get_executor(), url, token_headers());
      if (!client) co_return;
      (void)co_await (*client)->read();
      (*client)->send("c" + std::to_string(i));
      auto m = co_await (*client)->read();
      if (m && *m == "many:c" + std::to_string(i)) {
        if (++echoed == kClients) all_echoed.set_value();
      }
      auto end = co_await (*client)->read();  // completes when the server stops
      if (!end) ++ended;
    }, asio::detached);
  }
  std::thread io([&] { ioc.run(); });
  auto echoed_future = all_echoed.get_future();
  ASSERT_EQ(echoed_future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ts->server().open_connections(), static_cast<std::size_t>(kClients));
  auto start = std::chrono::steady_clock::now();
  ts->server().stop(2000ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);  // close frames, not the grace period
  io.join();
  EXPECT_EQ(ended.load(), kClients);
  std::lock_guard lock(hub.mutex);
  EXPECT_EQ(hub.closed, kClients);
  // The application may keep a session past the server; using it is harmless.
  ASSERT_NE(hub.last, nullptr);
  hub.last->send("after stop");
  hub.last->close();
}

std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// The benchmark holds 10,000 sessions and allows 32 KiB for each. Here both ends live in
// one process, so the budget checked is per server session plus its client.
TEST(WebSocket, SessionsStaySmall) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  const int clients = static_cast<int>(std::min<rlim_t>(2000, (limit.rlim_cur - 64) / 2));
  ASSERT_GT(clients, 100);
  WsHub hub;
  TestServer ts(ws_router(hub));
  asio::io_context ioc;
  std::string url = ts.ws_url("/ws/m");
  std::vector<std::shared_ptr<WebSocketClient>> held;
  auto connect_all = [&](int count) -> asio::awaitable<int> {
    int ready = 0;
    for (int i = 0; i < count; ++i) {
      auto client = co_await WebSocketClient::connect(ioc.get_executor(), url, token_headers());
      if (!client) break;
      (void)co_await (*client)->read();
      (*client)->send("ping");
      auto echo = co_await (*client)->read();
      if (echo) ++ready;
      held.push_back(std::move(*client));
    }
    co_return ready;
  };
  // Warm up allocator pools and thread-local caches before measuring.
  EXPECT_EQ(run_coro(ioc, connect_all(50)), 50);
  const std::size_t before = resident_bytes();
  EXPECT_EQ(run_coro(ioc, connect_all(clients)), clients);
  const std::size_t after = resident_bytes();
  const double per_pair = static_cast<double>(after - before) / clients;
  std::printf("[ memory ] %d sessions: %.1f KiB per server session + client\n", clients, per_pair / 1024.0);
#if defined(__SANITIZE_ADDRESS__)
  constexpr double kBudget = 3 * 32.0 * 1024;  // ASan's redzones and quarantine triple small blocks
#else
  constexpr double kBudget = 32.0 * 1024;
#endif
  EXPECT_LT(per_pair, kBudget);
  EXPECT_EQ(ts.server().open_connections(), static_cast<std::size_t>(clients + 50));
  for (auto& c : held) c->close();
  held.clear();
  ioc.restart();
  ioc.run_for(3s);
  EXPECT_TRUE(wait_closed(hub, clients + 50));
}

// --- curl as an independent client ------------------------------------------------------

TEST(Curl, TalksToServer) {
  TestServer ts(demo_router());
  auto get = kaisar::testing::run_process({"curl", "-sS", "-i", ts.url("/hello/curl?q=x%20y")});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("HTTP/1.1 200 OK"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find(R"({"hello":"curl","q":"x y"})"), std::string::npos) << get.out;

  // A 3000-byte body makes curl send "Expect: 100-continue".
  std::string big(3000, 'b');
  auto post = kaisar::testing::run_process(
      {"curl", "-sS", "-w", "\n%{http_code} %{time_total}", "-H", "Content-Type: text/plain", "--data-binary", big,
       ts.url("/echo")});
  ASSERT_EQ(post.exit_code, 0) << post.err;
  EXPECT_NE(post.out.find("\n201 "), std::string::npos) << post.out;
  EXPECT_NE(post.out.find(big), std::string::npos);
  double seconds = std::stod(post.out.substr(post.out.rfind(' ') + 1));
  EXPECT_LT(seconds, 0.9);  // no one-second wait for a 100 Continue

  auto missing = kaisar::testing::run_process({"curl", "-sS", "-w", "\n%{http_code}", ts.url("/nope")});
  ASSERT_EQ(missing.exit_code, 0) << missing.err;
  EXPECT_NE(missing.out.find(R"({"error":{"code":"not_found","message":"no route for GET /nope"}})"), std::string::npos);
  EXPECT_NE(missing.out.find("\n404"), std::string::npos);

  auto head = kaisar::testing::run_process({"curl", "-sS", "-I", ts.url("/hello/h")});
  ASSERT_EQ(head.exit_code, 0) << head.err;
  EXPECT_NE(head.out.find("Content-Length: 20"), std::string::npos) << head.out;
}

TEST(Curl, ReadsEventStream) {
  SseHub hub;
  TestServer ts(sse_router(hub));
  std::thread closer([&] {
    auto stream = hub.wait_stream();
    if (!stream) return;
    stream->send("tick", "a\nb");
    stream->close();
  });
  auto out = kaisar::testing::run_process(
      {"curl", "-sS", "-N", "--max-time", "5", "-H", "Authorization: Bearer letmein", ts.url("/events")});
  closer.join();
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "event: hello\ndata: first\n\nevent: tick\ndata: a\ndata: b\n\n");
}

}  // namespace
}  // namespace kaisar::net
