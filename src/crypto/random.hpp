#pragma once

#include <chrono>

#include <cstdint>
#include <span>
#include <string>

#include "core/bytes.hpp"

namespace kaisar::crypto {

// Bytes from the OS CSPRNG (getrandom / OpenSSL RAND_bytes). Aborts if the OS cannot
// supply randomness: continuing with weak keys would be worse.
void random_bytes(std::span<std::uint8_t> out);
Hash32 random_hash();
// URL-safe token of `bytes` random bytes, hex encoded (no prefix).
std::string random_token(std::size_t bytes = 32);
// Uniform in [0, bound).
std::uint64_t random_below(std::uint64_t bound);
// A reconnect delay with jitter: uniform in [backoff/2, backoff], so clients that lost
// their peer together do not all come back in the same instant.
std::chrono::milliseconds jittered(std::chrono::milliseconds backoff);
// RFC 4122 version 4 UUID.
std::string random_uuid();

}  // namespace kaisar::crypto
