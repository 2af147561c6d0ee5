#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace kaisar::provider::runtime {

// One piece of container output from Docker's multiplexed log stream.
struct LogFrame {
  enum class Stream : std::uint8_t { kStdin = 0, kStdout = 1, kStderr = 2 };
  Stream stream = Stream::kStdout;
  std::string data;
};

// Splits Docker's multiplexed stream (containers without a TTY): each frame is an 8-byte
// header — stream type (0, 1 or 2), three zero bytes, payload length (32-bit big-endian) —
// followed by the payload. Bytes arrive in arbitrary pieces; anything that is not such a
// header is an error, as is a frame larger than `max_frame`.
class LogDemuxer {
 public:
  explicit LogDemuxer(std::size_t max_frame = 1 << 20) : max_frame_(max_frame) {}
  // Appends `bytes` and returns the frames completed by them.
  Result<std::vector<LogFrame>> feed(std::string_view bytes);
  // True when no partial frame is pending.
  bool idle() const { return pending_.empty(); }

 private:
  std::size_t max_frame_;
  std::string pending_;
  bool broken_ = false;
};

// One line of the engine's pull progress (JSON per line).
struct PullProgress {
  std::string status;  // "Pulling fs layer", "Download complete", …
  std::string id;      // layer id, when given
  std::optional<std::uint64_t> current;
  std::optional<std::uint64_t> total;
  std::string error;   // non-empty: the pull failed with this message
};

// Splits the progress stream into lines and parses each; a malformed line is an error.
class PullProgressReader {
 public:
  Result<std::vector<PullProgress>> feed(std::string_view bytes);

 private:
  std::string pending_;
};

Result<PullProgress> parse_pull_progress(std::string_view line);

}  // namespace kaisar::provider::runtime
