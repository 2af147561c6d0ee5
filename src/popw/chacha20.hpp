#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "core/bytes.hpp"

namespace kaisar::popw {

// ChaCha20 exactly as RFC 8439 §2.3: key = 8 little-endian words, state word 12 = block
// counter, words 13..15 = the nonce. The nonce is given as its three 32-bit words (RFC
// byte order: word k is bytes 4k..4k+3 of the 12-byte nonce, little-endian).
using ChaChaNonce = std::array<std::uint32_t, 3>;
using ChaChaBlock = std::array<std::uint8_t, 64>;
using ChaChaWords = std::array<std::uint32_t, 16>;

ChaChaBlock chacha20_block(const Hash32& key, std::uint32_t counter, const ChaChaNonce& nonce) noexcept;

// The keystream from block `counter` on, out.size() bytes (a trailing partial block is cut).
// Block counters must not wrap: out.size() ≤ 64·(2^32 − counter).
void chacha20_keystream(const Hash32& key, const ChaChaNonce& nonce, std::uint32_t counter,
                        std::span<std::uint8_t> out) noexcept;

// The block function on a whole 16-word state: state = 20 rounds(state) + state. The
// memory phase uses it as its mixing permutation (docs/popw.md §6).
void chacha20_core(ChaChaWords& state) noexcept;

// Deterministic random numbers: the ChaCha20 keystream of `key` (nonce = {0x52 'R',
// stream, 0}) read as little-endian 64-bit words. A checker seeds it from the OS CSPRNG
// (from_os); tests seed it with fixed keys so that their trials repeat.
class ChaChaRng {
 public:
  explicit ChaChaRng(const Hash32& key, std::uint32_t stream = 0) noexcept;
  static ChaChaRng from_os();

  std::uint64_t next() noexcept;
  // Uniform in [0, bound) without modulo bias; 0 when bound ≤ 1.
  std::uint64_t below(std::uint64_t bound) noexcept;

 private:
  void refill() noexcept;

  Hash32 key_;
  ChaChaNonce nonce_;
  std::uint32_t counter_ = 0;
  ChaChaBlock block_{};
  std::size_t used_ = sizeof(ChaChaBlock);
};

}  // namespace kaisar::popw
