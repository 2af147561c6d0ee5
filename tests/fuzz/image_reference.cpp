// Fuzzes the image reference parser (a renter's text that reaches OneNode and the agent):
// any bytes give a reference or a clear error; a parsed reference prints to a form that
// parses back to itself, and the registry check never throws.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/image_reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ref = kaisar::parse_image_reference(text);
  if (!ref) {
    if (ref.error().message.empty()) std::abort();
    return 0;
  }
  auto again = kaisar::parse_image_reference(ref->to_string());
  if (!again || again->to_string() != ref->to_string()) std::abort();
  (void)kaisar::check_registry(*ref);
  (void)kaisar::internal_address(ref->host());
  return 0;
}
