#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace kaisar {

// One error vocabulary for the whole project. The API maps each code to an HTTP status
// and renders {"error":{"code","message"}}; the CLI maps it to an exit code.
enum class ErrorCode {
  kInvalidArgument,   // malformed or out-of-range input (400)
  kUnauthenticated,   // missing, bad or expired credentials (401)
  kPermissionDenied,  // authenticated but not allowed (403)
  kNotFound,          // (404)
  kConflict,          // state does not allow it, e.g. replayed nonce (409)
  kPayloadTooLarge,   // (413)
  kUnavailable,       // dependency down, retry later (503)
  kTimeout,           // (504)
  kInternal,          // our bug or an I/O failure (500)
};

std::string_view error_code_name(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace kaisar
