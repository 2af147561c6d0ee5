#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace kaisar::store {

// A value bound to or read from a statement. SQL uses '?' placeholders.
using Value = std::variant<std::monostate, std::int64_t, double, std::string, Bytes>;

class Row {
 public:
  explicit Row(std::vector<Value> values) : values_(std::move(values)) {}
  std::size_t size() const { return values_.size(); }
  bool is_null(std::size_t i) const { return std::holds_alternative<std::monostate>(values_.at(i)); }
  std::int64_t integer(std::size_t i) const;      // 0 for NULL
  std::string text(std::size_t i) const;           // "" for NULL
  std::optional<std::string> optional_text(std::size_t i) const;
  const Value& at(std::size_t i) const { return values_.at(i); }

 private:
  std::vector<Value> values_;
};

struct Migration {
  int version;             // 1, 2, 3, ... applied in order, each exactly once
  std::string_view name;
  std::string_view sql;    // may hold several statements
};

// The database interface OneNode is written against. SQLite implements it today; a
// PostgreSQL backend can implement it later (placeholders '?' are translated to $n there).
// Implementations are safe to call from several threads.
class Database {
 public:
  virtual ~Database() = default;

  // Runs one statement; returns the number of rows it changed.
  virtual Result<std::int64_t> execute(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  virtual Result<std::vector<Row>> query(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  // Runs `body` in one transaction on this thread; commits when it succeeds, rolls back
  // when it fails (or throws). Calls on the same Database from inside `body` join it.
  virtual Result<void> transaction(const std::function<Result<void>()>& body) = 0;
  // Highest migration version applied.
  virtual int schema_version() = 0;
};

// Opens (creating if needed) a SQLite database in WAL mode and applies the migrations
// that are not yet applied, each in its own transaction.
Result<std::unique_ptr<Database>> open_sqlite(const std::string& path, const std::vector<Migration>& migrations);

}  // namespace kaisar::store
