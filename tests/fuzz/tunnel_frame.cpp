// Tunnel frames come from the other end of a tunnel (an agent or the gateway): decoding
// never crashes, and a frame that decodes encodes back to the same bytes. A decoded frame
// fed to both ends of a tunnel is either taken or refused, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gateway/frame.hpp"
#include "gateway/mux.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaisar::gateway;
  const kaisar::ByteView input(data, size);
  auto frame = decode_frame(input);
  if (!frame) return 0;
  auto again = encode_frame(*frame);
  if (!again || *again != kaisar::Bytes(input.begin(), input.end())) std::abort();
  Mux gateway(Mux::Role::kGateway);
  (void)gateway.open("lease", 22);
  (void)gateway.receive(*frame);
  Mux agent(Mux::Role::kAgent);
  (void)agent.receive(*frame);
  return 0;
}
