#include "crypto/random.hpp"

#include <algorithm>

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <limits>

namespace kaisar::crypto {

void random_bytes(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int length; feed large requests in chunks.
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t done = 0; done < out.size();) {
    const std::size_t n = std::min(kChunk, out.size() - done);
    if (RAND_bytes(out.data() + done, static_cast<int>(n)) != 1) {
      std::fputs("kaisar: the OS random number generator failed; refusing to continue\n", stderr);
      std::abort();
    }
    done += n;
  }
}

Hash32 random_hash() {
  Hash32 out{};
  random_bytes(out);
  return out;
}

std::string random_token(std::size_t bytes) {
  Bytes raw(bytes);
  random_bytes(raw);
  return kaisar::to_hex(raw, false);
}

std::chrono::milliseconds jittered(std::chrono::milliseconds backoff) {
  const auto half = std::max<std::int64_t>(0, backoff.count() / 2);
  return std::chrono::milliseconds{half + static_cast<std::int64_t>(random_below(static_cast<std::uint64_t>(half) + 1))};
}

std::uint64_t random_below(std::uint64_t bound) {
  if (bound <= 1) return 0;
  // Rejection sampling: drop the top partial range so every residue is equally likely.
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
  while (true) {
    std::uint64_t value = 0;
    std::array<std::uint8_t, 8> raw{};
    random_bytes(raw);
    for (auto b : raw) value = (value << 8) | b;
    if (value < limit) return value % bound;
  }
}

std::string random_uuid() {
  std::array<std::uint8_t, 16> raw{};
  random_bytes(raw);
  raw[6] = static_cast<std::uint8_t>((raw[6] & 0x0f) | 0x40);  // version 4
  raw[8] = static_cast<std::uint8_t>((raw[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = kaisar::to_hex(raw, false);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20, 12);
}

}  // namespace kaisar::crypto
