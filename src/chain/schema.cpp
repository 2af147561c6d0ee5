#include "chain/schema.hpp"

namespace kaisar::chain {

std::string_view schema_sql() {
  return R"sql(
CREATE TABLE chain_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  to_address TEXT NOT NULL,
  data BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'mined', 'confirmed', 'failed')),
  sender TEXT,
  nonce INTEGER,
  raw_tx BLOB,
  tx_hash TEXT,
  previous_hashes TEXT NOT NULL DEFAULT '',
  stale_rounds INTEGER NOT NULL DEFAULT 0,
  block_number INTEGER,
  block_hash TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_broadcast_ms INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE INDEX chain_outbox_open ON chain_outbox(state, id);
CREATE TABLE chain_nonces (
  sender TEXT PRIMARY KEY,
  next_nonce INTEGER NOT NULL
);
CREATE TABLE chain_cursor (
  name TEXT PRIMARY KEY,
  next_block INTEGER NOT NULL
);
CREATE TABLE chain_blocks (
  name TEXT NOT NULL,
  number INTEGER NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (name, number)
);
CREATE TABLE chain_logs (
  name TEXT NOT NULL,
  block_number INTEGER NOT NULL,
  log_index INTEGER NOT NULL,
  tx_hash TEXT NOT NULL,
  address TEXT NOT NULL,
  topics TEXT NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (name, block_number, log_index)
);
CREATE TABLE escrow_events (
  block_number INTEGER NOT NULL,
  log_index INTEGER NOT NULL,
  lease_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  renter TEXT NOT NULL,
  provider TEXT NOT NULL,
  amount TEXT NOT NULL,
  refund TEXT NOT NULL,
  credit_points TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  PRIMARY KEY (block_number, log_index)
);
CREATE INDEX escrow_events_lease ON escrow_events(lease_id);
)sql";
}

std::string_view escrow_records_sql() {
  return R"sql(
ALTER TABLE escrow_events ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX escrow_events_record ON escrow_events(lease_id, renter);
)sql";
}

}  // namespace kaisar::chain
