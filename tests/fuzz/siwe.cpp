// Fuzzes the EIP-4361 parser: any bytes must give a message or a clear error, and a parsed
// message must print back to exactly the text it came from.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "onenode/siwe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = kaisar::onenode::SiweMessage::parse(text);
  if (m) {
    // Addresses may arrive all-lower-case; the printed form is checksummed, so compare
    // after one round.
    auto again = kaisar::onenode::SiweMessage::parse(m->to_string());
    if (!again || again->to_string() != m->to_string()) std::abort();
  } else if (m.error().message.empty()) {
    std::abort();
  }
  return 0;
}
