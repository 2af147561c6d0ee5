#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "net/http.hpp"

namespace kaisar::provider::runtime {

struct UnixResponse {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 request over a unix socket (the Docker/Podman API), read to the end.
// kUnavailable when nothing listens on the socket, kTimeout past `timeout`.
Result<UnixResponse> unix_request(const std::string& socket_path, std::string_view method, std::string_view target,
                                  std::string_view body = {}, std::string_view content_type = "application/json",
                                  std::chrono::milliseconds timeout = std::chrono::seconds{30},
                                  std::size_t body_limit = 64 << 20);

// Streams the response body to `on_data` as it arrives (pull progress, followed logs).
// `on_data` returns false to stop early. On a non-2xx answer the body is collected and
// returned as the error message instead. `timeout` bounds the whole exchange.
Result<int> unix_stream(const std::string& socket_path, std::string_view method, std::string_view target,
                        std::string_view body, std::string_view content_type,
                        const std::function<bool(std::string_view)>& on_data, std::chrono::milliseconds timeout);

}  // namespace kaisar::provider::runtime
