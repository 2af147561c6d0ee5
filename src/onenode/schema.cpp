#include "onenode/schema.hpp"

#include "gateway/gateway.hpp"

#include "chain/schema.hpp"

namespace kaisar::onenode {

const std::vector<store::Migration>& migrations() {
  static const std::vector<store::Migration> kMigrations = {
      {1, "auth and providers", R"sql(
CREATE TABLE auth_nonces (
  nonce      TEXT PRIMARY KEY,
  address    TEXT NOT NULL,          -- lower-case hex
  message    TEXT NOT NULL,          -- the exact SIWE text we issued
  expires_at INTEGER NOT NULL,       -- unix seconds
  used_at    INTEGER                 -- set once, by the login that consumed it
);
CREATE TABLE sessions (
  token_hash BLOB PRIMARY KEY,       -- sha256 of the bearer token; the token itself is never stored
  address    TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE TABLE providers (
  id                TEXT PRIMARY KEY,  -- the node key's address, lower-case hex
  owner             TEXT NOT NULL,     -- the owner wallet, lower-case hex
  binding_signature TEXT NOT NULL,     -- owner's personal_sign of the binding message
  binding_issued_at TEXT NOT NULL,
  hardware          TEXT NOT NULL,     -- JSON
  region            TEXT,              -- declared by the provider, may be NULL
  country           TEXT,              -- from GeoIP of the agent's address
  agent_version     TEXT,
  status            TEXT NOT NULL,     -- online | offline
  registered_at     INTEGER NOT NULL,
  last_seen         INTEGER NOT NULL
);
CREATE INDEX providers_owner ON providers(owner);
CREATE TABLE uptime_intervals (
  id          INTEGER PRIMARY KEY,
  provider_id TEXT NOT NULL REFERENCES providers(id),
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER NOT NULL,       -- last heartbeat seen so far
  open        INTEGER NOT NULL        -- 1 while the provider is online
);
CREATE INDEX uptime_provider ON uptime_intervals(provider_id, started_at);
)sql"},
      {2, "sign-in nonce limits", R"sql(
CREATE INDEX auth_nonces_address ON auth_nonces(address, expires_at);
CREATE INDEX auth_nonces_expiry ON auth_nonces(expires_at);
)sql"},
      {3, "chain outbox and indexer", chain::schema_sql()},
      {4, "provider prices", "ALTER TABLE providers ADD COLUMN prices TEXT;"},
      {5, "leases", R"sql(
CREATE TABLE leases (
  id              TEXT PRIMARY KEY,
  renter          TEXT NOT NULL,
  provider        TEXT NOT NULL,
  spec            TEXT NOT NULL,
  state           TEXT NOT NULL,
  reason          TEXT NOT NULL,
  price_hour      TEXT NOT NULL,   -- token base units, decimal
  amount          TEXT NOT NULL,   -- what the renter deposits
  escrow_lease_id TEXT NOT NULL UNIQUE,
  chain_id        INTEGER NOT NULL,
  escrow          TEXT NOT NULL,
  token           TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  pay_by          INTEGER NOT NULL,
  paid_at         INTEGER,
  paid_block      INTEGER,
  gpus            INTEGER NOT NULL,
  cpu_cores       INTEGER NOT NULL,
  memory_gb       INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX leases_renter ON leases(renter, created_at);
CREATE INDEX leases_provider_state ON leases(provider, state);
CREATE TABLE lease_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  lease_id TEXT NOT NULL,
  at       INTEGER NOT NULL,
  state    TEXT NOT NULL,
  reason   TEXT NOT NULL
);
CREATE INDEX lease_events_lease ON lease_events(lease_id, id);
)sql"},
      {6, "lease endpoints", "ALTER TABLE leases ADD COLUMN endpoints TEXT;"},
      {7, "lease times and settlement", R"sql(
ALTER TABLE leases ADD COLUMN started_at INTEGER;
ALTER TABLE leases ADD COLUMN ended_at INTEGER;
ALTER TABLE leases ADD COLUMN settlement TEXT;
)sql"},
      {8, "lease usage", "ALTER TABLE leases ADD COLUMN usage TEXT;"},
      {9, "lease extensions", "ALTER TABLE leases ADD COLUMN extension TEXT;"},
      {10, "lease idempotency keys", R"sql(
ALTER TABLE leases ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX leases_idempotency ON leases(renter, idempotency_key) WHERE idempotency_key IS NOT NULL;
)sql"},
      {11, "gateway ports", gateway::Gateway::migration_sql()},
      {12, "proof of physical work and epochs", R"sql(
CREATE TABLE checkers (
  id            TEXT PRIMARY KEY,
  owner         TEXT NOT NULL,
  registered_at INTEGER NOT NULL,
  last_seen     INTEGER NOT NULL,
  banned_until  INTEGER NOT NULL DEFAULT 0,
  ban_reason    TEXT
);
CREATE TABLE checks (
  id            TEXT PRIMARY KEY,
  epoch         INTEGER NOT NULL,
  provider      TEXT NOT NULL,
  checker       TEXT NOT NULL,
  kind          TEXT NOT NULL,
  of_check      TEXT,
  class         TEXT NOT NULL,
  params        TEXT NOT NULL,
  state         TEXT NOT NULL,
  created_at    INTEGER NOT NULL,
  deadline_at   INTEGER NOT NULL,
  evidence      TEXT,
  passed        INTEGER,
  verdict       INTEGER,
  checker_wrong INTEGER
);
CREATE INDEX checks_provider ON checks(provider, created_at);
CREATE INDEX checks_checker ON checks(checker, created_at);
CREATE TABLE attestations (
  check_id   TEXT PRIMARY KEY,
  epoch      INTEGER NOT NULL,
  provider   TEXT NOT NULL,
  checker    TEXT NOT NULL,
  body       TEXT NOT NULL,
  signature  TEXT NOT NULL,
  digest     TEXT NOT NULL,
  passed     INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX attestations_provider ON attestations(provider, created_at);
CREATE INDEX attestations_epoch ON attestations(epoch);
CREATE TABLE epochs (
  number        INTEGER PRIMARY KEY,
  started_at    INTEGER NOT NULL,
  ended_at      INTEGER,
  root          TEXT,
  leaf_count    INTEGER,
  rewards_root  TEXT,
  rewards_total TEXT
);
CREATE TABLE epoch_leaves (
  epoch INTEGER NOT NULL,
  idx   INTEGER NOT NULL,
  kind  TEXT NOT NULL,
  ref   TEXT NOT NULL,
  leaf  BLOB NOT NULL,
  PRIMARY KEY (epoch, idx)
);
CREATE INDEX epoch_leaves_ref ON epoch_leaves(epoch, ref);
CREATE TABLE rewards (
  epoch   INTEGER NOT NULL,
  account TEXT NOT NULL,
  amount  TEXT NOT NULL,
  idx     INTEGER NOT NULL,
  detail  TEXT NOT NULL,
  PRIMARY KEY (epoch, account)
);
CREATE INDEX rewards_account ON rewards(account, epoch);
ALTER TABLE providers ADD COLUMN verification TEXT;
)sql"},
      {13, "escrow records per depositor", chain::escrow_records_sql()},
  };
  return kMigrations;
}

}  // namespace kaisar::onenode
