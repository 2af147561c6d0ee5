// The first bytes a client sends to a lease's HTTP port (a request head, or anything):
// looking for the access token never crashes, and finds it only when it is in a place
// where it counts (checked against a token that cannot occur in the input).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gateway/gateway.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  (void)kaisar::gateway::request_has_token(head, "0123456789abcdef0123456789abcdef");
  // A token with a byte no input of this length can spell in a header is never found.
  const std::string absent(size + 1, 'z');
  if (kaisar::gateway::request_has_token(head, absent)) std::abort();
  return 0;
}
