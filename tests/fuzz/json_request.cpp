// Fuzzes OneNode's JSON request handling: body parsing with limits, typed field access and
// the hardware description agents send.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/hardware.hpp"
#include "onenode/api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto object = kaisar::onenode::parse_json_object(body);
  if (!object) {
    if (object.error().message.empty()) std::abort();
    return 0;
  }
  for (const char* key : {"address", "message", "signature"}) (void)kaisar::onenode::require_string(*object, key, 64);
  if (auto* hw = object->if_contains("hardware")) {
    auto parsed = kaisar::Hardware::from_json(*hw);
    if (parsed) {
      // What we accept must survive a round trip unchanged.
      auto back = kaisar::Hardware::from_json(parsed->to_json());
      if (!back || boost::json::serialize(back->to_json()) != boost::json::serialize(parsed->to_json())) std::abort();
    }
  }
  (void)kaisar::Hardware::from_json(*object);
  return 0;
}
