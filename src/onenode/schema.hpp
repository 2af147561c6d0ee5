#pragma once

#include <vector>

#include "store/database.hpp"

namespace kaisar::onenode {

// OneNode's schema, one migration per change, never edited once released.
const std::vector<store::Migration>& migrations();

}  // namespace kaisar::onenode
