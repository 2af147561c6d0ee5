#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/time.hpp"
#include "crypto/address.hpp"
#include "onenode/signin_nonce.hpp"
#include "store/database.hpp"

namespace kaisar::onenode {

struct AuthSettings {
  std::string domain;      // SIWE domain: this OneNode's authority (host:port)
  std::string uri;         // SIWE URI: this OneNode's public URL
  std::uint64_t chain_id = 31337;
  std::chrono::seconds nonce_ttl{600};
  std::chrono::seconds session_ttl{std::chrono::hours{24}};
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

// Sign-In with Ethereum: single-use expiring nonces, tokens stored hashed. Issuing a nonce
// stores nothing (NonceKey); a nonce is recorded as used only when a valid signature
// spends it, until it expires.
class AuthService {
 public:
  AuthService(store::Database& db, const Clock& clock, AuthSettings settings, NonceKey key);

  Result<IssuedNonce> issue_nonce(const crypto::Address& address);
  // Verifies the message (exactly the one issued: domain, URI, chain id, statement, a nonce
  // this OneNode made for that address and times, unused, unexpired) and the signature;
  // consumes the nonce; returns a new session.
  Result<Session> login(std::string_view message, std::string_view signature_hex);
  // The session a bearer token names, if valid.
  Result<Session> authenticate(std::string_view token);
  Result<void> logout(std::string_view token);
  // Deletes expired used nonces and sessions.
  void purge_expired();

  const AuthSettings& settings() const { return settings_; }

 private:
  store::Database& db_;
  const Clock& clock_;
  AuthSettings settings_;
  NonceKey key_;
};

}  // namespace kaisar::onenode
