#pragma once

#include <string_view>

namespace kaisar::chain {

// Tables of the chain outbox and the log indexer. OneNode applies this as one of its
// migrations; tests apply it alone.
std::string_view schema_sql();
// The escrow's records per (lease, depositor): each deposit's lock. Applied after schema_sql.
std::string_view escrow_records_sql();

}  // namespace kaisar::chain
