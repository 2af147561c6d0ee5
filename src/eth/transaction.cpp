#include "eth/transaction.hpp"

#include <algorithm>

#include "crypto/keccak.hpp"
#include "eth/rlp.hpp"

namespace kaisar::eth {

namespace {

constexpr std::uint8_t kEip1559Type = 0x02;

RlpItem::List unsigned_fields(const Eip1559Transaction& tx) {
  RlpItem::List access_list;
  for (const AccessListEntry& entry : tx.access_list) {
    RlpItem::List keys;
    for (const Hash32& key : entry.storage_keys) keys.push_back(RlpItem::bytes(Bytes(key.begin(), key.end())));
    const auto& address = entry.address.bytes();
    access_list.push_back(RlpItem::list({RlpItem::bytes(Bytes(address.begin(), address.end())),
                                         RlpItem::list(std::move(keys))}));
  }
  Bytes to;
  if (tx.to) to.assign(tx.to->bytes().begin(), tx.to->bytes().end());
  return {RlpItem::uint(tx.chain_id),
          RlpItem::uint(tx.nonce),
          RlpItem::uint(tx.max_priority_fee_per_gas),
          RlpItem::uint(tx.max_fee_per_gas),
          RlpItem::uint(tx.gas_limit),
          RlpItem::bytes(std::move(to)),
          RlpItem::uint(tx.value),
          RlpItem::bytes(tx.data),
          RlpItem::list(std::move(access_list))};
}

Bytes typed_envelope(const RlpItem::List& fields) {
  Bytes out{kEip1559Type};
  const Bytes body = rlp_encode(RlpItem::list(fields));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Error invalid(std::string message) { return Error{ErrorCode::kInvalidArgument, "transaction: " + std::move(message)}; }

Result<crypto::Address> to_address(const Bytes& b) noexcept {
  if (b.size() != 20) return std::unexpected(invalid("address must be 20 bytes"));
  std::array<std::uint8_t, 20> raw{};
  std::copy(b.begin(), b.end(), raw.begin());
  return crypto::Address(raw);
}

Result<std::vector<AccessListEntry>> decode_access_list(const RlpItem& item) noexcept {
  if (!item.is_list()) return std::unexpected(invalid("access list must be a list"));
  std::vector<AccessListEntry> entries;
  for (const RlpItem& e : item.as_list()) {
    if (!e.is_list() || e.as_list().size() != 2 || e.as_list()[0].is_list() || !e.as_list()[1].is_list()) {
      return std::unexpected(invalid("access list entry must be [address, [keys]]"));
    }
    auto address = to_address(e.as_list()[0].as_bytes());
    if (!address) return std::unexpected(address.error());
    AccessListEntry entry{*address, {}};
    for (const RlpItem& key : e.as_list()[1].as_list()) {
      if (key.is_list() || key.as_bytes().size() != 32) return std::unexpected(invalid("storage key must be 32 bytes"));
      Hash32 k{};
      std::copy(key.as_bytes().begin(), key.as_bytes().end(), k.begin());
      entry.storage_keys.push_back(k);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

Hash32 Eip1559Transaction::signing_hash() const { return crypto::keccak256(typed_envelope(unsigned_fields(*this))); }

SignedEip1559Transaction sign_transaction(const Eip1559Transaction& tx, const crypto::PrivateKey& key) {
  const crypto::Signature sig = key.sign_digest(tx.signing_hash());
  SignedEip1559Transaction signed_tx;
  signed_tx.tx = tx;
  signed_tx.y_parity = sig.recovery_id();
  std::array<std::uint8_t, 32> half{};
  std::copy(sig.rsv.begin(), sig.rsv.begin() + 32, half.begin());
  signed_tx.r = Uint256::from_be32(half);
  std::copy(sig.rsv.begin() + 32, sig.rsv.begin() + 64, half.begin());
  signed_tx.s = Uint256::from_be32(half);
  signed_tx.signer = key.address();
  RlpItem::List fields = unsigned_fields(tx);
  fields.push_back(RlpItem::uint(signed_tx.y_parity));
  fields.push_back(RlpItem::uint(signed_tx.r));
  fields.push_back(RlpItem::uint(signed_tx.s));
  signed_tx.raw = typed_envelope(fields);
  signed_tx.hash = crypto::keccak256(signed_tx.raw);
  return signed_tx;
}

Result<SignedEip1559Transaction> decode_signed_transaction(ByteView raw) noexcept {
  if (raw.empty() || raw[0] != kEip1559Type) return std::unexpected(invalid("not a type-2 (EIP-1559) transaction"));
  auto decoded = rlp_decode(raw.subspan(1));
  if (!decoded) return std::unexpected(decoded.error());
  if (!decoded->is_list() || decoded->as_list().size() != 12) {
    return std::unexpected(invalid("expected a list of 12 fields"));
  }
  const RlpItem::List& f = decoded->as_list();
  SignedEip1559Transaction out;
  Eip1559Transaction& tx = out.tx;

  auto chain_id = rlp_to_u64(f[0]);
  auto nonce = rlp_to_u64(f[1]);
  auto priority = rlp_to_uint256(f[2]);
  auto max_fee = rlp_to_uint256(f[3]);
  auto gas_limit = rlp_to_u64(f[4]);
  auto value = rlp_to_uint256(f[6]);
  auto y_parity = rlp_to_u64(f[9]);
  auto r = rlp_to_uint256(f[10]);
  auto s = rlp_to_uint256(f[11]);
  for (const Error* e : {chain_id ? nullptr : &chain_id.error(), nonce ? nullptr : &nonce.error(),
                         priority ? nullptr : &priority.error(), max_fee ? nullptr : &max_fee.error(),
                         gas_limit ? nullptr : &gas_limit.error(), value ? nullptr : &value.error(),
                         y_parity ? nullptr : &y_parity.error(), r ? nullptr : &r.error(), s ? nullptr : &s.error()}) {
    if (e != nullptr) return std::unexpected(*e);
  }
  tx.chain_id = *chain_id;
  tx.nonce = *nonce;
  tx.max_priority_fee_per_gas = *priority;
  tx.max_fee_per_gas = *max_fee;
  tx.gas_limit = *gas_limit;
  tx.value = *value;
  if (f[5].is_list()) return std::unexpected(invalid("'to' must be a byte string"));
  if (!f[5].as_bytes().empty()) {
    auto to = to_address(f[5].as_bytes());
    if (!to) return std::unexpected(to.error());
    tx.to = *to;
  }
  if (f[7].is_list()) return std::unexpected(invalid("'data' must be a byte string"));
  tx.data = f[7].as_bytes();
  auto access_list = decode_access_list(f[8]);
  if (!access_list) return std::unexpected(access_list.error());
  tx.access_list = std::move(*access_list);

  if (*y_parity > 1) return std::unexpected(invalid("y_parity must be 0 or 1"));
  out.y_parity = static_cast<std::uint8_t>(*y_parity);
  out.r = *r;
  out.s = *s;
  std::array<std::uint8_t, 65> rsv{};
  const auto r_be = r->to_be32();
  const auto s_be = s->to_be32();
  std::copy(r_be.begin(), r_be.end(), rsv.begin());
  std::copy(s_be.begin(), s_be.end(), rsv.begin() + 32);
  rsv[64] = static_cast<std::uint8_t>(27 + out.y_parity);
  auto sig = crypto::Signature::from_bytes(rsv);  // rejects high s
  if (!sig) return std::unexpected(invalid("bad signature: " + sig.error().message));
  auto signer = crypto::recover_address(tx.signing_hash(), *sig);
  if (!signer) return std::unexpected(invalid("cannot recover signer: " + signer.error().message));
  out.signer = *signer;
  out.raw.assign(raw.begin(), raw.end());
  out.hash = crypto::keccak256(raw);
  return out;
}

}  // namespace kaisar::eth
