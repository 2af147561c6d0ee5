#pragma once

#include <cstddef>
#include <string>
#include <sys/types.h>

#include "core/error.hpp"

namespace kaisar::store {

// Writes through a temporary file and rename, so a crash leaves the old or the new file,
// never half of one. `mode` applies from creation (secrets are never world-readable).
Result<void> write_file_atomic(const std::string& path, std::string_view content, mode_t mode = 0600);
// Reads a whole file, refusing ones larger than `max_bytes`.
Result<std::string> read_file(const std::string& path, std::size_t max_bytes = 1 << 20);

}  // namespace kaisar::store
