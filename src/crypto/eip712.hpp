#pragma once

#include <boost/json/value.hpp>

#include "core/bytes.hpp"

namespace kaisar::crypto {

// EIP-712 typed structured data hashing (eth_signTypedData_v4 semantics).
// `typed_data` is the JSON object {"types", "primaryType", "domain", "message"} that wallets
// sign. Supports atomic types (address, bool, string, bytes, bytesN, uintN, intN), nested
// struct types and arrays (T[] and T[k]) of any of them. Integers may be given as JSON
// numbers or decimal/0x-hex strings.
Result<Hash32> eip712_digest(const boost::json::value& typed_data) noexcept;

// The pieces, for callers that build their own types.
Result<Hash32> eip712_hash_struct(const boost::json::object& types, std::string_view type_name,
                                  const boost::json::value& data) noexcept;
Result<std::string> eip712_encode_type(const boost::json::object& types, std::string_view type_name) noexcept;

}  // namespace kaisar::crypto
