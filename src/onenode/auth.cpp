#include "onenode/auth.hpp"

#include "crypto/eip191.hpp"
#include "crypto/keccak.hpp"
#include "crypto/random.hpp"
#include "onenode/siwe.hpp"

namespace kaisar::onenode {

namespace {
std::unexpected<Error> unauthenticated(std::string message) {
  return fail(ErrorCode::kUnauthenticated, std::move(message));
}

Bytes token_hash(std::string_view token) {
  auto h = crypto::sha256(as_bytes(token));
  return Bytes(h.begin(), h.end());
}
}  // namespace

AuthService::AuthService(store::Database& db, const Clock& clock, AuthSettings settings)
    : db_(db), clock_(clock), settings_(std::move(settings)) {}

Result<IssuedNonce> AuthService::issue_nonce(const crypto::Address& address) {
  const SystemTime now = clock_.now();
  const std::int64_t now_s = to_unix_seconds(now);
  auto mine = db_.query("SELECT COUNT(*) FROM auth_nonces WHERE address = ? AND expires_at > ? AND used_at IS NULL",
                        {address.to_lower_hex(), now_s});
  if (!mine) return std::unexpected(mine.error());
  if (static_cast<std::size_t>(mine->front().integer(0)) >= settings_.max_pending_per_address) {
    return fail(ErrorCode::kConflict, "too many pending sign-ins for this address: sign one of the messages issued, "
                                      "or wait until they expire");
  }
  auto all = db_.query("SELECT COUNT(*) FROM auth_nonces WHERE expires_at > ? AND used_at IS NULL", {now_s});
  if (!all) return std::unexpected(all.error());
  if (static_cast<std::size_t>(all->front().integer(0)) >= settings_.max_pending_total) {
    return fail(ErrorCode::kUnavailable, "sign-in is busy: retry in a minute");
  }
  SiweMessage m;
  m.domain = settings_.domain;
  m.address = address;
  m.statement = "Sign in to Kaisar.";
  m.uri = settings_.uri;
  m.chain_id = settings_.chain_id;
  m.nonce = crypto::random_token(16);
  m.issued_at = format_rfc3339(now);
  const SystemTime expires = now + settings_.nonce_ttl;
  m.expiration_time = format_rfc3339(expires);
  std::string text = m.to_string();
  auto r = db_.execute("INSERT INTO auth_nonces(nonce, address, message, expires_at) VALUES(?, ?, ?, ?)",
                       {m.nonce, address.to_lower_hex(), text, to_unix_seconds(expires)});
  if (!r) return std::unexpected(r.error());
  return IssuedNonce{m.nonce, std::move(text), expires};
}

Result<Session> AuthService::login(std::string_view message, std::string_view signature_hex) {
  auto parsed = SiweMessage::parse(message);
  if (!parsed) return std::unexpected(parsed.error());
  const SiweMessage& m = *parsed;
  if (m.domain != settings_.domain) {
    return unauthenticated("message is for domain \"" + m.domain + "\", this OneNode is \"" + settings_.domain + "\"");
  }
  if (m.chain_id != settings_.chain_id) {
    return unauthenticated("message is for chain id " + std::to_string(m.chain_id) + ", this OneNode uses " +
                           std::to_string(settings_.chain_id));
  }
  auto sig = crypto::Signature::parse(signature_hex);
  if (!sig) return fail(ErrorCode::kInvalidArgument, "signature: " + sig.error().message);
  auto signer = crypto::recover_personal_signer(message, *sig);
  if (!signer || *signer != m.address) return unauthenticated("signature does not match the message's address");

  const SystemTime now = clock_.now();
  const std::int64_t now_s = to_unix_seconds(now);
  if (m.expiration_time && *parse_rfc3339(*m.expiration_time) <= now) return unauthenticated("message has expired");
  if (m.not_before && *parse_rfc3339(*m.not_before) > now) return unauthenticated("message is not valid yet");

  Session session;
  auto done = db_.transaction([&]() -> Result<void> {
    auto rows = db_.query("SELECT address, message, expires_at, used_at FROM auth_nonces WHERE nonce = ?", {m.nonce});
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty()) return unauthenticated("unknown nonce: ask for a new one at /api/v1/auth/nonce");
    const auto& row = rows->front();
    if (!row.is_null(3)) return unauthenticated("nonce was already used: ask for a new one");
    if (row.integer(2) <= now_s) return unauthenticated("nonce has expired: ask for a new one");
    if (row.text(0) != m.address.to_lower_hex()) return unauthenticated("nonce was issued to another address");
    if (row.text(1) != message) return unauthenticated("message differs from the one issued with this nonce");
    auto used = db_.execute("UPDATE auth_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL", {now_s, m.nonce});
    if (!used) return std::unexpected(used.error());
    if (*used != 1) return unauthenticated("nonce was already used: ask for a new one");
    session.token = crypto::random_token(32);
    session.address = m.address;
    session.expires_at = now + settings_.session_ttl;
    auto ins = db_.execute("INSERT INTO sessions(token_hash, address, created_at, expires_at) VALUES(?, ?, ?, ?)",
                           {token_hash(session.token), m.address.to_lower_hex(), now_s,
                            to_unix_seconds(session.expires_at)});
    if (!ins) return std::unexpected(ins.error());
    return {};
  });
  if (!done) return std::unexpected(done.error());
  return session;
}

Result<Session> AuthService::authenticate(std::string_view token) {
  if (token.empty() || token.size() > 256) return unauthenticated("missing or malformed bearer token");
  auto rows = db_.query("SELECT address, expires_at FROM sessions WHERE token_hash = ?", {token_hash(token)});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return unauthenticated("invalid or revoked token: sign in again");
  const auto& row = rows->front();
  const SystemTime expires = from_unix_seconds(row.integer(1));
  if (expires <= clock_.now()) return unauthenticated("token has expired: sign in again");
  auto address = crypto::Address::parse(row.text(0));
  if (!address) return fail(ErrorCode::kInternal, "stored session has a bad address");
  return Session{{}, *address, expires};
}

Result<void> AuthService::logout(std::string_view token) {
  auto r = db_.execute("DELETE FROM sessions WHERE token_hash = ?", {token_hash(token)});
  if (!r) return std::unexpected(r.error());
  if (*r == 0) return unauthenticated("invalid or revoked token");
  return {};
}

void AuthService::purge_expired() {
  const std::int64_t now_s = to_unix_seconds(clock_.now());
  (void)db_.execute("DELETE FROM auth_nonces WHERE expires_at <= ?", {now_s});
  (void)db_.execute("DELETE FROM sessions WHERE expires_at <= ?", {now_s});
}

}  // namespace kaisar::onenode
