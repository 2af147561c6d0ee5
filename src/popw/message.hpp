#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "popw/audit.hpp"
#include "popw/matrix.hpp"
#include "popw/memory.hpp"

namespace kaisar::popw {

// JSON forms of the PoPW messages (docs/popw.md §7). Every *_from_json takes untrusted
// input: it checks types, sizes and ranges and fails with kInvalidArgument naming the
// field ("commit.root: …"). Unknown keys (an envelope's "type", say) are ignored. to_json
// adds "type" and its output parses back to an equal value.

inline constexpr std::size_t kMaxAuditRows = 1024;
inline constexpr std::size_t kMaxProofLength = 32;  // a tree of ≤ 16384 leaves needs 14
inline constexpr std::size_t kMaxMessageBytes = std::size_t{128} << 20;
inline constexpr std::chrono::microseconds kMaxElapsed{std::chrono::hours(24)};

// The provider's commitment to a challenge.
struct Commit {
  Hash32 root{};
  std::chrono::microseconds elapsed{0};  // the provider's own timing; informational

  friend bool operator==(const Commit&, const Commit&) = default;
};

// JSON text → value, refusing more than kMaxMessageBytes and deep nesting.
Result<boost::json::value> parse_message(std::string_view text) noexcept;

boost::json::object to_json(const Challenge& m);     // {"type":"challenge","seed":"0x…","n":4096}
boost::json::object to_json(const Commit& m);        // {"type":"commit","root":"0x…","elapsed_us":1234567}
boost::json::object to_json(const AuditRequest& m);  // {"type":"audit","rows":[…]}
// {"type":"openings","openings":[{"row":7,"values":"<base64 of n int32 LE>","proof":["0x…"]}]}
boost::json::object to_json(const AuditAnswer& m);
boost::json::object to_json(const MemoryFill& m);    // {"type":"memory_fill","seed","bytes","cache_bytes"}
boost::json::object to_json(const MemoryQuery& m);   // {"type":"memory_query","starts":[…],"steps":L}
boost::json::object to_json(const MemoryAnswer& m);  // {"type":"memory_answer","digests":["0x…"]}

Result<Challenge> challenge_from_json(const boost::json::value& v);
Result<Commit> commit_from_json(const boost::json::value& v);
Result<AuditRequest> audit_request_from_json(const boost::json::value& v);
Result<AuditAnswer> audit_answer_from_json(const boost::json::value& v);
Result<MemoryFill> memory_fill_from_json(const boost::json::value& v);
Result<MemoryQuery> memory_query_from_json(const boost::json::value& v);
Result<MemoryAnswer> memory_answer_from_json(const boost::json::value& v);

// RFC 4648 base64 (standard alphabet, padded); decoding rejects anything non-canonical.
std::string base64_encode(ByteView bytes);
Result<Bytes> base64_decode(std::string_view text);

}  // namespace kaisar::popw
