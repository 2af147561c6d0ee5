#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/address.hpp"
#include "crypto/secp256k1.hpp"

namespace kaisar::popw {

// A checker's signed verdict on one check (EIP-712, docs/checkers.md "Attestations"):
//
//   Attestation(address provider,address checker,uint64 epoch,bytes32 checkId,bytes32 seed,
//               bytes32 root,uint64 opsPerSecond,uint64 memoryBytes,bool memoryPassed,bool passed)
//   domain {name "Kaisar PoPW", version "1", chainId, verifyingContract = EpochLog}
//
// `checker` is the checker's node key, the key that signs.
struct Attestation {
  crypto::Address provider;
  crypto::Address checker;
  std::uint64_t epoch = 0;
  Hash32 check_id{};
  Hash32 seed{};
  Hash32 root{};
  std::uint64_t ops_per_second = 0;  // int8 multiply-adds ×2 per second, as timed
  std::uint64_t memory_bytes = 0;    // what the memory phase covered
  bool memory_passed = false;
  bool passed = false;  // the whole verdict: audit, deadline and memory

  friend bool operator==(const Attestation&, const Attestation&) = default;
};

struct AttestationDomain {
  std::uint64_t chain_id = 0;
  crypto::Address verifying_contract;  // EpochLog
};

// {"types","primaryType","domain","message"} as eth_signTypedData_v4 takes it.
boost::json::value attestation_typed_data(const Attestation& a, const AttestationDomain& domain);
Result<Hash32> attestation_digest(const Attestation& a, const AttestationDomain& domain);
Result<crypto::Signature> sign_attestation(const crypto::PrivateKey& checker_key, const Attestation& a,
                                           const AttestationDomain& domain);
// kUnauthenticated unless `signature` is `a.checker`'s over `a`.
Result<void> verify_attestation(const Attestation& a, const crypto::Signature& signature,
                                const AttestationDomain& domain);

// The message fields as JSON (addresses checksummed, hashes 0x-hex, numbers as JSON numbers).
boost::json::object to_json(const Attestation& a);
// Strict: every field present and well-formed; errors name the field.
Result<Attestation> attestation_from_json(const boost::json::value& value);

}  // namespace kaisar::popw
