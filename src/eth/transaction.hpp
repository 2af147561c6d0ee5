#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"
#include "eth/uint256.hpp"

namespace kaisar::eth {

struct AccessListEntry {
  crypto::Address address;
  std::vector<Hash32> storage_keys;
  friend bool operator==(const AccessListEntry&, const AccessListEntry&) = default;
};

// An EIP-1559 (type 2) transaction before signing.
struct Eip1559Transaction {
  std::uint64_t chain_id = 0;
  std::uint64_t nonce = 0;
  Uint256 max_priority_fee_per_gas;
  Uint256 max_fee_per_gas;
  std::uint64_t gas_limit = 0;
  std::optional<crypto::Address> to;  // empty: contract creation
  Uint256 value;
  Bytes data;
  std::vector<AccessListEntry> access_list;

  // keccak256(0x02 || rlp([chain_id, nonce, ..., access_list])), the digest that is signed.
  Hash32 signing_hash() const;
  friend bool operator==(const Eip1559Transaction&, const Eip1559Transaction&) = default;
};

struct SignedEip1559Transaction {
  Eip1559Transaction tx;
  std::uint8_t y_parity = 0;
  Uint256 r;
  Uint256 s;
  crypto::Address signer;
  Bytes raw;   // 0x02 || rlp([..., y_parity, r, s]), what eth_sendRawTransaction takes
  Hash32 hash; // keccak256(raw)
};

SignedEip1559Transaction sign_transaction(const Eip1559Transaction& tx, const crypto::PrivateKey& key);

// Decodes a raw signed type-2 transaction (strict RLP, canonical integers, low s) and
// recovers its signer.
Result<SignedEip1559Transaction> decode_signed_transaction(ByteView raw) noexcept;

}  // namespace kaisar::eth
