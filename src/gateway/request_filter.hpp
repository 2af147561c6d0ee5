#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaisar::gateway {

// A complete HTTP/1.1 response with a plain-text body, "Connection: close".
std::string plain_response(int status, std::string_view reason, std::string_view body,
                           std::string_view extra_headers = {});

// Follows the HTTP/1.1 requests a client sends on one connection to a lease's
// token-protected port, so that every request of a keep-alive connection is checked, not
// only the first: each request head must carry the lease's access token (see
// Gateway::access_token), and loses it (the kaisar_token query parameter and cookie, the
// X-Kaisar-Token header, an Authorization header that is the token) before it goes on.
// Bodies pass through by their Content-Length or chunked framing; after an Upgrade or a
// CONNECT the rest of the connection passes as it is. Framing that could be read two ways
// (Content-Length with Transfer-Encoding, two lengths, folded header lines) is refused, so
// that the gateway and the container always agree where a request ends.
//
// Pure (no I/O); bytes in, bytes out. Not thread-safe.
class RequestFilter {
 public:
  static constexpr std::size_t kMaxHead = 16 * 1024;

  explicit RequestFilter(std::string token, std::size_t max_head = kMaxHead);

  // Takes bytes from the client and appends to `out` what may go on to the container. False
  // once a request is refused: nothing from it on goes on, and refusal() is the HTTP
  // response for the client.
  bool feed(std::string_view in, std::string& out);

  const std::optional<std::string>& refusal() const { return refusal_; }
  // Request heads accepted so far.
  std::uint64_t requests() const { return requests_; }
  // Bytes held waiting for the rest of a head (at most max_head).
  std::size_t buffered() const { return head_.size(); }

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailer, kPassThrough, kRefused };
  // One whole head in head_ (through its empty line): checked, rewritten into `out`.
  bool take_head(std::string& out);
  // Refuses the request: refusal() answers the client.
  bool refuse(int status, std::string_view reason, std::string_view body, std::string_view extra_headers = {});
  // Collects a line into line_ (with its CRLF): kBad if it is over `limit` or ends in a bare LF.
  enum class Line { kMore, kComplete, kBad };
  Line collect_line(std::string_view& in, std::size_t limit);
  // Passes up to remaining_ bytes of `in` (a body or a chunk); true when all have passed.
  bool pass_counted(std::string_view& in, std::string& out);

  std::string token_;
  std::size_t max_head_;
  State state_ = State::kHead;
  std::string head_;
  std::string line_;             // a chunk-size or trailer line being collected
  std::uint64_t remaining_ = 0;  // body or chunk bytes still to pass
  std::size_t trailer_bytes_ = 0;
  std::uint64_t requests_ = 0;
  std::optional<std::string> refusal_;
};

}  // namespace kaisar::gateway
