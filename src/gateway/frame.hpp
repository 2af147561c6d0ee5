#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "core/bytes.hpp"
#include "core/error.hpp"

// The tunnel protocol between a provider's agent and the gateway (docs/gateway.md): many
// TCP streams multiplexed over one WebSocket, one frame per binary message. Every number
// is big-endian. A frame is
//
//   u8 type | u32 stream | payload (by type)
//
//   OPEN    1  gateway → agent  u16 port | u8 n | n bytes lease id   (stream ≠ 0)
//   ACCEPT  2  agent → gateway  (empty)                                 the stream is up
//   DATA    3  both             1 to 65,536 bytes
//   WINDOW  4  both             u32 increment, 1 to 2^31 − 1
//   FIN     5  both             (empty)       the sender sends no more data
//   RESET   6  both             u8 code | message (at most 256 bytes)
//   PING    7  both             u64 opaque                            (stream 0)
//   PONG    8  both             u64 opaque                            (stream 0)
//
// Anything else (unknown type, short or long payload, stream 0 where a stream is needed or
// a stream where 0 is needed) is a protocol error: the tunnel closes, other tunnels go on.
namespace kaisar::gateway {

inline constexpr std::size_t kMaxData = 65536;
inline constexpr std::size_t kMaxResetMessage = 256;
inline constexpr std::size_t kMaxLeaseId = 64;
inline constexpr std::uint32_t kMaxWindowIncrement = 0x7fffffff;

enum class FrameType : std::uint8_t {
  kOpen = 1,
  kAccept = 2,
  kData = 3,
  kWindow = 4,
  kFin = 5,
  kReset = 6,
  kPing = 7,
  kPong = 8,
};

enum class ResetCode : std::uint8_t {
  kRefused = 1,         // the agent could not connect to the container's port
  kNotAllowed = 2,      // no such lease or port on this provider
  kFlowControl = 3,     // more data than the window allowed
  kGone = 4,            // the other side's connection closed abruptly
  kShuttingDown = 5,
};

struct Open {
  std::uint16_t port = 0;
  std::string lease_id;
};
struct Accept {};
struct Data {
  Bytes bytes;
};
struct Window {
  std::uint32_t increment = 0;
};
struct Fin {};
struct Reset {
  ResetCode code = ResetCode::kRefused;
  std::string message;
};
struct Ping {
  std::uint64_t opaque = 0;
};
struct Pong {
  std::uint64_t opaque = 0;
};

struct Frame {
  std::uint32_t stream = 0;
  std::variant<Open, Accept, Data, Window, Fin, Reset, Ping, Pong> body;
};

// Strict: errors are kInvalidArgument naming what is wrong.
Result<Frame> decode_frame(ByteView message);
// Checks the same rules as decode_frame (kInvalidArgument for a frame it would refuse).
Result<Bytes> encode_frame(const Frame& frame);

}  // namespace kaisar::gateway
