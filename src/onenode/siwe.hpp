#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "crypto/address.hpp"

namespace kaisar::onenode {

// An EIP-4361 "Sign-In with Ethereum" message.
struct SiweMessage {
  std::optional<std::string> scheme;  // "https" when the domain line carries one
  std::string domain;                 // RFC 3986 authority: host[:port]
  crypto::Address address;
  std::optional<std::string> statement;
  std::string uri;
  std::string version = "1";
  std::uint64_t chain_id = 0;
  std::string nonce;                  // ≥ 8 alphanumeric characters
  std::string issued_at;              // RFC 3339
  std::optional<std::string> expiration_time;
  std::optional<std::string> not_before;
  std::optional<std::string> request_id;
  std::vector<std::string> resources;

  // The exact text a wallet shows and signs.
  std::string to_string() const;
  // Parses untrusted text strictly per the EIP-4361 grammar; the error names the line and
  // what was expected there.
  static Result<SiweMessage> parse(std::string_view text) noexcept;
};

inline constexpr std::size_t kMaxSiweMessageBytes = 8192;

}  // namespace kaisar::onenode
