#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "core/error.hpp"
#include "gateway/frame.hpp"

namespace kaisar::gateway {

// One end of a tunnel: its streams, their states and flow-control windows, and the rules
// the other end must keep. No I/O: the caller feeds received frames to receive() and sends
// the frames it is handed. Not thread-safe (one tunnel, one strand).
//
// Flow control is per stream, as in HTTP/2: each side may have at most `window` bytes of
// DATA in flight that the other has not yet consumed; consuming half of it sends a WINDOW
// back. A peer that sends more than its window, talks on streams it may not, or opens
// streams from the agent side breaks the protocol: receive() fails and the tunnel closes.
class Mux {
 public:
  enum class Role { kGateway, kAgent };
  static constexpr std::uint32_t kDefaultWindow = 256 * 1024;
  static constexpr std::size_t kDefaultMaxStreams = 4096;

  explicit Mux(Role role, std::uint32_t window = kDefaultWindow, std::size_t max_streams = kDefaultMaxStreams);

  // Gateway: a new stream to the lease's container port. kUnavailable with too many open.
  Result<Frame> open(const std::string& lease_id, std::uint16_t port);

  // What a received frame means for the caller.
  struct Opened {  // agent: connect to the lease's port, then send accept(stream) or reset
    std::uint32_t stream;
    std::string lease_id;
    std::uint16_t port;
  };
  struct Accepted {  // gateway: the agent reached the port; data may flow
    std::uint32_t stream;
  };
  struct Received {  // bytes for the stream's socket
    std::uint32_t stream;
    Bytes bytes;
  };
  struct Writable {  // the peer opened its window: more may be sent
    std::uint32_t stream;
  };
  struct Finished {  // the peer sends no more on this stream
    std::uint32_t stream;
  };
  struct ResetByPeer {  // the stream is gone
    std::uint32_t stream;
    ResetCode code;
    std::string message;
  };
  struct Reply {  // a frame to send back (PONG)
    Frame frame;
  };
  struct Nothing {};  // e.g. data for a stream this side already reset
  using Event = std::variant<Opened, Accepted, Received, Writable, Finished, ResetByPeer, Reply, Nothing>;

  Result<Event> receive(Frame frame);  // by value: DATA bytes move into the event

  Frame accept(std::uint32_t stream);
  // How many bytes may go out on `stream` now; 0 when unknown, closed or not accepted yet.
  std::size_t sendable(std::uint32_t stream) const;
  // DATA frames for up to sendable() bytes of `bytes` (kMaxData each); the rest waits.
  std::vector<Frame> send(std::uint32_t stream, ByteView bytes, std::size_t* taken);
  // The application wrote `n` received bytes out: a WINDOW frame when half the window is used.
  std::optional<Frame> consumed(std::uint32_t stream, std::size_t n);
  Frame fin(std::uint32_t stream);
  // Ends the stream on this side; frames for it that are still in flight are ignored.
  Frame reset(std::uint32_t stream, ResetCode code, std::string message);
  Frame ping(std::uint64_t opaque) const;

  std::size_t open_streams() const { return streams_.size(); }

 private:
  struct Stream {
    bool accepted = false;
    bool fin_sent = false;
    bool fin_received = false;
    std::int64_t send_window = 0;  // what the peer still takes
    std::uint32_t receive_window = 0;  // what the peer may still send
    std::uint32_t unacknowledged = 0;  // consumed but not yet given back in a WINDOW
  };
  Stream* find(std::uint32_t stream);
  void close_if_done(std::uint32_t stream);

  Role role_;
  std::uint32_t window_;
  std::size_t max_streams_;
  std::uint32_t next_stream_ = 1;     // gateway: odd, increasing
  std::uint32_t highest_seen_ = 0;    // agent: the last stream the gateway opened
  std::map<std::uint32_t, Stream> streams_;
};

}  // namespace kaisar::gateway
