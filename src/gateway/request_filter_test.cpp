#include "gateway/request_filter.hpp"

#include <gtest/gtest.h>

#include <cstdio>

namespace kaisar::gateway {
namespace {

const std::string kToken = "0123456789abcdef0123456789abcdef";

struct Filtered {
  std::string out;
  std::uint64_t requests = 0;
  std::optional<std::string> refusal;
};

// Feeds `in` whole, and again one byte at a time: both must give the same.
Filtered run(std::string_view in) {
  Filtered whole;
  RequestFilter a(kToken);
  (void)a.feed(in, whole.out);
  whole.requests = a.requests();
  whole.refusal = a.refusal();
  Filtered bytes;
  RequestFilter b(kToken);
  for (char c : in) (void)b.feed(std::string_view(&c, 1), bytes.out);
  EXPECT_EQ(bytes.out, whole.out) << "fed byte by byte";
  EXPECT_EQ(b.requests(), whole.requests);
  EXPECT_EQ(b.refusal().has_value(), whole.refusal.has_value());
  return whole;
}

int status_of(const Filtered& f) { return f.refusal ? std::stoi(f.refusal->substr(9, 3)) : 0; }

TEST(RequestFilter, TheTokenCountsOnlyWhereItBelongs) {
  const std::string t = kToken;
  EXPECT_EQ(run("GET / HTTP/1.1\r\nauthorization: bearer " + t + "\r\n\r\n").requests, 1u);
  EXPECT_EQ(run("GET / HTTP/1.1\r\nX-Kaisar-Token: " + t + "\r\n\r\n").requests, 1u);
  EXPECT_EQ(run("GET / HTTP/1.1\r\nCookie: a=1; kaisar_token=" + t + "\r\n\r\n").requests, 1u);
  EXPECT_EQ(run("GET /?kaisar_token=" + t + " HTTP/1.1\r\n\r\n").requests, 1u);
  for (const std::string& bad : {"GET / HTTP/1.1\r\nAuthorization: Basic " + t + "\r\n\r\n",
                                "GET / HTTP/1.1\r\nX-Other: " + t + "\r\n\r\n",
                                "GET /?kaisar_token=" + t.substr(1) + " HTTP/1.1\r\n\r\n",
                                "GET /?xkaisar_token=" + t + " HTTP/1.1\r\n\r\n",
                                "GET / HTTP/1.1\r\n\r\nAuthorization: Bearer " + t + "\r\n\r\n"}) {  // the 2nd "head" is a request line
    EXPECT_EQ(status_of(run(bad)), 401) << bad;
  }
  RequestFilter empty("");
  std::string out;
  EXPECT_FALSE(empty.feed("GET / HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n", out));
}

TEST(RequestFilter, TheContainerNeverSeesTheToken) {
  const auto f = run("GET /page?a=1&kaisar_token=" + kToken + "&b=2 HTTP/1.1\r\nHost: x\r\nCookie: s=1; kaisar_token=" + kToken +
                     "\r\nX-Kaisar-Token: " + kToken + "\r\nAuthorization: Bearer " + kToken + "\r\n\r\n");
  EXPECT_EQ(f.out, "GET /page?a=1&b=2 HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n");
  EXPECT_EQ(run("GET /?kaisar_token=" + kToken + " HTTP/1.1\r\nCookie: kaisar_token=" + kToken + "\r\n\r\n").out,
            "GET / HTTP/1.1\r\n\r\n");
  // The container's own credentials pass.
  EXPECT_EQ(run("GET / HTTP/1.1\r\nX-Kaisar-Token: " + kToken + "\r\nAuthorization: Basic dTpw\r\n\r\n").out,
            "GET / HTTP/1.1\r\nAuthorization: Basic dTpw\r\n\r\n");
}

TEST(RequestFilter, EveryRequestOfAConnectionIsChecked) {
  const std::string ok = "GET /a HTTP/1.1\r\nX-Kaisar-Token: " + kToken + "\r\n\r\n";
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";  // a body, not a request
  const std::string post = "POST /b HTTP/1.1\r\nX-Kaisar-Token: " + kToken + "\r\nContent-Length: " +
                           std::to_string(smuggled.size()) + "\r\n\r\n" + smuggled;
  const std::string chunk = "GET /x HTTP/1.1\r\n\r\nabcdefgh";
  char size[8];
  std::snprintf(size, sizeof size, "%zx", chunk.size());
  const std::string chunked = "POST /c HTTP/1.1\r\nX-Kaisar-Token: " + kToken +
                              "\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n" + size + "\r\n" + chunk +
                              "\r\n0\r\nT: 1\r\n\r\n";
  auto f = run(ok + post + chunked + ok);
  EXPECT_EQ(f.requests, 4u);
  EXPECT_FALSE(f.refusal);
  // A request without the token after good ones: what came before goes on, then nothing.
  f = run(ok + post + "GET /secret HTTP/1.1\r\n\r\n" + ok);
  EXPECT_EQ(f.requests, 2u);
  EXPECT_EQ(status_of(f), 401);
  EXPECT_EQ(f.out.find("/secret"), std::string::npos);
  EXPECT_EQ(f.out.find("X-Kaisar-Token"), std::string::npos);
}

TEST(RequestFilter, AmbiguousFramingIsRefused) {
  const std::string h = "POST / HTTP/1.1\r\nX-Kaisar-Token: " + kToken + "\r\n";
  EXPECT_EQ(status_of(run(h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Content-Length: -1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Transfer-Encoding: chunked, gzip\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "X-A: 1\r\n folded\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "X-A: 1\nX-B: 2\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "X A: 1\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Transfer-Encoding: chunked\r\n\r\n1\r\nab\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "Transfer-Encoding: chunked\r\n\r\n11111111111111111\r\n")), 400);
  EXPECT_EQ(status_of(run("GET / HTTP/2.0\r\nX-Kaisar-Token: " + kToken + "\r\n\r\n")), 400);
  EXPECT_EQ(status_of(run(h + "X-Big: " + std::string(20000, 'a') + "\r\n\r\n")), 431);
}

TEST(RequestFilter, AnUpgradePassesTheRestAsItIs) {
  const std::string up = "GET /ws HTTP/1.1\r\nX-Kaisar-Token: " + kToken + "\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const auto f = run(up + "GET /not-http HTTP/1.1\r\n\r\n\x81\x05hello");
  EXPECT_EQ(f.requests, 1u);
  EXPECT_FALSE(f.refusal);
  EXPECT_NE(f.out.find("GET /not-http HTTP/1.1\r\n\r\n\x81\x05hello"), std::string::npos);
}

}  // namespace
}  // namespace kaisar::gateway
