#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace kaisar {

using SystemTime = std::chrono::system_clock::time_point;
using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

// Where time enters the system; tests substitute a manual clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start) : now_(start) {}
  SystemTime now() const override { return now_; }
  void advance(std::chrono::system_clock::duration d) { now_ += d; }

 private:
  SystemTime now_;
};

// RFC 3339 / ISO 8601 in UTC with a "Z" suffix, second precision: 2026-11-25T10:00:00Z.
std::string format_rfc3339(SystemTime t);

// Accepts YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM).
Result<SystemTime> parse_rfc3339(std::string_view text) noexcept;

// Unix seconds, the form timestamps take in the database and API.
inline std::int64_t to_unix_seconds(SystemTime t) {
  return std::chrono::duration_cast<Seconds>(t.time_since_epoch()).count();
}
inline SystemTime from_unix_seconds(std::int64_t s) { return SystemTime{Seconds{s}}; }

}  // namespace kaisar
