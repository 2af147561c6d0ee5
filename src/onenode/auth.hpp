#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

struct AuthSettings {
  std::string domain;      // SIWE domain: this OneNode's authority (host:port)
  std::string uri;         // SIWE URI: this OneNode's public URL
  std::uint64_t chain_id = 31337;
  std::chrono::seconds nonce_ttl{600};
  std::chrono::seconds session_ttl{std::chrono::hours{24}};
  // Bounds on outstanding (unused, unexpired) nonces, so that nobody can grow the table
  // without limit between purges.
  std::size_t max_pending_per_address = 16;
  std::size_t max_pending_total = 100000;
};

struct IssuedNonce {
  std::string nonce;
  std::string message;  // the full EIP-4361 text the wallet must sign
  SystemTime expires_at;
};

struct Session {
  std::string token;  // only returned once, at login
  crypto::Address address;
  SystemTime expires_at;
};

// Sign-In with Ethereum: single-use expiring nonces, tokens stored hashed.
class AuthService {
 public:
  AuthService(store::Database& db, const Clock& clock, AuthSettings settings);

  Result<IssuedNonce> issue_nonce(const crypto::Address& address);
  // Verifies the message (ours: domain, URI, chain id, nonce issued to that address, unused,
  // unexpired) and the signature; consumes the nonce; returns a new session.
  Result<Session> login(std::string_view message, std::string_view signature_hex);
  // The session a bearer token names, if valid.
  Result<Session> authenticate(std::string_view token);
  Result<void> logout(std::string_view token);
  // Deletes expired nonces and sessions.
  void purge_expired();

  const AuthSettings& settings() const { return settings_; }

 private:
  store::Database& db_;
  const Clock& clock_;
  AuthSettings settings_;
};

}  // namespace kaisar::onenode
