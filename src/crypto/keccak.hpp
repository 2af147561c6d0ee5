#pragma once

#include "core/bytes.hpp"

namespace kaisar::crypto {

// Keccak-256 as Ethereum uses it (original padding 0x01, not SHA3-256's 0x06).
Hash32 keccak256(ByteView data) noexcept;
inline Hash32 keccak256(std::string_view text) noexcept { return keccak256(as_bytes(text)); }

// SHA-256 (used for hashing stored tokens).
Hash32 sha256(ByteView data) noexcept;

}  // namespace kaisar::crypto
