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

AuthService::AuthService(store::Database& db, const Clock& clock, AuthSettings settings, NonceKey key)
    : db_(db), clock_(clock), settings_(std::move(settings)), key_(key) {}

namespace {
// The message issue_nonce makes for these; login accepts exactly this text.
SiweMessage message_for(const AuthSettings& settings, const crypto::Address& address, std::string issued_at,
                        std::string expires_at, std::string nonce) {
  SiweMessage m;
  m.domain = settings.domain;
  m.address = address;
  m.statement = "Sign in to Kaisar.";
  m.uri = settings.uri;
  m.chain_id = settings.chain_id;
  m.nonce = std::move(nonce);
  m.issued_at = std::move(issued_at);
  m.expiration_time = std::move(expires_at);
  return m;
}
}  // namespace

Result<IssuedNonce> AuthService::issue_nonce(const crypto::Address& address) {
  const SystemTime now = clock_.now();
  const SystemTime expires = now + settings_.nonce_ttl;
  std::string issued_at = format_rfc3339(now);
  std::string expires_at = format_rfc3339(expires);
  std::string nonce = key_.nonce_for(settings_.domain, address, issued_at, expires_at);
  SiweMessage m = message_for(settings_, address, std::move(issued_at), std::move(expires_at), nonce);
  return IssuedNonce{std::move(nonce), m.to_string(), expires};
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

  if (!m.expiration_time) return unauthenticated("message has no expiration time: ask for a new one at /api/v1/auth/nonce");
  if (message_for(settings_, m.address, m.issued_at, *m.expiration_time, m.nonce).to_string() != message) {
    return unauthenticated("message differs from the one issued with this nonce");
  }
  if (!key_.verify(m.nonce, settings_.domain, m.address, m.issued_at, *m.expiration_time)) {
    return unauthenticated("unknown nonce (not issued by this OneNode for this address): ask for a new one at "
                           "/api/v1/auth/nonce");
  }
  const SystemTime now = clock_.now();
  const std::int64_t now_s = to_unix_seconds(now);
  auto expires = parse_rfc3339(*m.expiration_time);
  if (!expires) return unauthenticated("message has a bad expiration time");
  if (*expires <= now) return unauthenticated("nonce has expired: ask for a new one");

  Session session;
  auto done = db_.transaction([&]() -> Result<void> {
    // Spent nonces are kept until they expire, so a signed message logs in once.
    auto spent = db_.execute(
        "INSERT INTO auth_nonces(nonce, address, message, expires_at, used_at) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(nonce) DO NOTHING",
        {m.nonce, m.address.to_lower_hex(), std::string(message), to_unix_seconds(*expires), now_s});
    if (!spent) return std::unexpected(spent.error());
    if (*spent != 1) return unauthenticated("nonce was already used: ask for a new one");
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
