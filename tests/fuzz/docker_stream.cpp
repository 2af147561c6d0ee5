// The container engine's streams are untrusted: log frames and pull progress lines, split
// at arbitrary points, must parse or fail cleanly, and splitting must not change the result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "provider/runtime/docker_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaisar::provider::runtime;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t split = data[0] % (input.size() + 1);

  LogDemuxer whole(4096);
  LogDemuxer pieces(4096);
  auto a = whole.feed(input);
  auto b1 = pieces.feed(input.substr(0, split));
  std::size_t frames_a = a ? a->size() : 0;
  std::size_t frames_b = b1 ? b1->size() : 0;
  if (b1) {
    auto b2 = pieces.feed(input.substr(split));
    if (b2) frames_b += b2->size();
    else if (a) std::abort();  // the same bytes in two pieces must not fail where one piece did not
  }
  if (a && b1 && frames_a != frames_b) std::abort();

  PullProgressReader reader;
  (void)reader.feed(input.substr(0, split));
  (void)reader.feed(input.substr(split));
  return 0;
}
