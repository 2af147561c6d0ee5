#pragma once

#include <string_view>

namespace kaisar::chain {

// Tables of the chain outbox and the log indexer. OneNode applies this as one of its
// migrations; tests apply it alone.
std::string_view schema_sql();

}  // namespace kaisar::chain
