// What a client sends on a lease's token-protected HTTP port (request heads, bodies, or
// anything): the request filter never crashes; fed in pieces it decides exactly as fed
// whole (where the pieces split comes from the input); and without the token in the input
// no request passes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/request_filter.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using kaisar::gateway::RequestFilter;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string token = "0123456789abcdef0123456789abcdef";
  RequestFilter whole(token, 1024);
  std::string whole_out;
  (void)whole.feed(input, whole_out);

  RequestFilter pieces(token, 1024);
  std::string pieces_out;
  std::size_t at = 0;
  std::size_t step = size == 0 ? 1 : data[0] % 7 + 1;
  while (at < size) {
    const std::size_t n = std::min(step, size - at);
    (void)pieces.feed(input.substr(at, n), pieces_out);
    at += n;
    step = step % 13 + 1;
  }
  if (pieces_out != whole_out || pieces.requests() != whole.requests() ||
      pieces.refusal().has_value() != whole.refusal().has_value()) {
    std::abort();
  }
  // A token with a byte no input of this length can spell in a header is never found.
  RequestFilter absent(std::string(size + 1, 'z'));
  std::string out;
  (void)absent.feed(input, out);
  if (absent.requests() != 0) std::abort();
  return 0;
}
