// RLP decoder: anything it accepts must be canonical, so re-encoding gives the input back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "eth/rlp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kaisar::ByteView input(data, size);
  auto item = kaisar::eth::rlp_decode(input);
  if (!item) return 0;
  const kaisar::Bytes again = kaisar::eth::rlp_encode(*item);
  if (again.size() != size || !std::equal(again.begin(), again.end(), input.begin())) std::abort();
  return 0;
}
