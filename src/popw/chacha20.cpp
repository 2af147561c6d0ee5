#include "popw/chacha20.hpp"

#include <cstring>
#include <limits>

#include "crypto/random.hpp"

namespace kaisar::popw {

namespace {

constexpr std::uint32_t kSigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"

inline std::uint32_t load_le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

inline void store_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

inline std::uint32_t rotl(std::uint32_t v, int c) noexcept {
  return (v << c) | (v >> (32 - c));
}

// Each operation is applied to kLanes independent blocks side by side, which compilers
// turn into SIMD; kLanes = 1 is the plain block function.
template <std::size_t kLanes>
struct Lanes {
  std::uint32_t x[16][kLanes];

  [[gnu::always_inline]] void quarter(int a, int b, int c, int d) noexcept {
    for (std::size_t l = 0; l < kLanes; ++l) x[a][l] += x[b][l];
    for (std::size_t l = 0; l < kLanes; ++l) x[d][l] = rotl(x[d][l] ^ x[a][l], 16);
    for (std::size_t l = 0; l < kLanes; ++l) x[c][l] += x[d][l];
    for (std::size_t l = 0; l < kLanes; ++l) x[b][l] = rotl(x[b][l] ^ x[c][l], 12);
    for (std::size_t l = 0; l < kLanes; ++l) x[a][l] += x[b][l];
    for (std::size_t l = 0; l < kLanes; ++l) x[d][l] = rotl(x[d][l] ^ x[a][l], 8);
    for (std::size_t l = 0; l < kLanes; ++l) x[c][l] += x[d][l];
    for (std::size_t l = 0; l < kLanes; ++l) x[b][l] = rotl(x[b][l] ^ x[c][l], 7);
  }

  [[gnu::always_inline]] void rounds() noexcept {
    for (int i = 0; i < 10; ++i) {
      quarter(0, 4, 8, 12);
      quarter(1, 5, 9, 13);
      quarter(2, 6, 10, 14);
      quarter(3, 7, 11, 15);
      quarter(0, 5, 10, 15);
      quarter(1, 6, 11, 12);
      quarter(2, 7, 8, 13);
      quarter(3, 4, 9, 14);
    }
  }
};

// kLanes consecutive blocks starting at `counter` into out (64·kLanes bytes).
template <std::size_t kLanes>
[[gnu::always_inline]] inline void blocks(const std::uint32_t key[8], const ChaChaNonce& nonce, std::uint32_t counter, std::uint8_t* out) noexcept {
  Lanes<kLanes> in;
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (int w = 0; w < 4; ++w) in.x[w][l] = kSigma[w];
    for (int w = 0; w < 8; ++w) in.x[4 + w][l] = key[w];
    in.x[12][l] = counter + static_cast<std::uint32_t>(l);
    for (int w = 0; w < 3; ++w) in.x[13 + w][l] = nonce[static_cast<std::size_t>(w)];
  }
  Lanes<kLanes> s = in;
  s.rounds();
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (int w = 0; w < 16; ++w) store_le32(out + 64 * l + 4 * w, s.x[w][l] + in.x[w][l]);
  }
}

// Whole 8-block groups of the keystream; compiled once per instruction set, picked at load.
__attribute__((target_clones("avx2", "default"))) void wide_blocks(const std::uint32_t key[8],
                                                                   const ChaChaNonce& nonce, std::uint32_t counter,
                                                                   std::uint8_t* out, std::size_t groups) noexcept {
  for (std::size_t g = 0; g < groups; ++g) {
    blocks<8>(key, nonce, counter + static_cast<std::uint32_t>(8 * g), out + 512 * g);
  }
}

void key_words(const Hash32& key, std::uint32_t out[8]) noexcept {
  for (int w = 0; w < 8; ++w) out[w] = load_le32(key.data() + 4 * w);
}

}  // namespace

ChaChaBlock chacha20_block(const Hash32& key, std::uint32_t counter, const ChaChaNonce& nonce) noexcept {
  std::uint32_t k[8];
  key_words(key, k);
  ChaChaBlock out{};
  blocks<1>(k, nonce, counter, out.data());
  return out;
}

void chacha20_keystream(const Hash32& key, const ChaChaNonce& nonce, std::uint32_t counter,
                        std::span<std::uint8_t> out) noexcept {
  constexpr std::size_t kWide = 8;
  std::uint32_t k[8];
  key_words(key, k);
  const std::size_t groups = out.size() / (64 * kWide);
  wide_blocks(k, nonce, counter, out.data(), groups);
  counter += static_cast<std::uint32_t>(groups * kWide);
  std::size_t done = groups * 64 * kWide;
  while (done < out.size()) {
    std::uint8_t block[64];
    blocks<1>(k, nonce, counter++, block);
    const std::size_t take = std::min<std::size_t>(64, out.size() - done);
    std::memcpy(out.data() + done, block, take);
    done += take;
  }
}

void chacha20_core(ChaChaWords& state) noexcept {
  Lanes<1> s;
  for (std::size_t w = 0; w < 16; ++w) s.x[w][0] = state[w];
  s.rounds();
  for (std::size_t w = 0; w < 16; ++w) state[w] += s.x[w][0];
}

ChaChaRng::ChaChaRng(const Hash32& key, std::uint32_t stream) noexcept : key_(key), nonce_{0x52, stream, 0} {}

ChaChaRng ChaChaRng::from_os() { return ChaChaRng(crypto::random_hash()); }

void ChaChaRng::refill() noexcept {
  block_ = chacha20_block(key_, counter_, nonce_);
  if (++counter_ == 0) ++nonce_[2];  // 256 GiB later: move to a fresh nonce, never repeat
  used_ = 0;
}

std::uint64_t ChaChaRng::next() noexcept {
  if (used_ + 8 > block_.size()) refill();
  std::uint64_t v = static_cast<std::uint64_t>(load_le32(block_.data() + used_)) |
                    static_cast<std::uint64_t>(load_le32(block_.data() + used_ + 4)) << 32;
  used_ += 8;
  return v;
}

std::uint64_t ChaChaRng::below(std::uint64_t bound) noexcept {
  if (bound <= 1) return 0;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = max - max % bound;
  while (true) {
    const std::uint64_t v = next();
    if (v < limit) return v % bound;
  }
}

}  // namespace kaisar::popw
