#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "store/database.hpp"

namespace kaisar::store {

std::int64_t Row::integer(std::size_t i) const {
  const auto& v = values_.at(i);
  if (auto p = std::get_if<std::int64_t>(&v)) return *p;
  if (auto d = std::get_if<double>(&v)) return static_cast<std::int64_t>(*d);
  return 0;
}

std::string Row::text(std::size_t i) const {
  const auto& v = values_.at(i);
  if (auto s = std::get_if<std::string>(&v)) return *s;
  if (auto n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
  if (auto b = std::get_if<Bytes>(&v)) return std::string(as_string(*b));
  return {};
}

std::optional<std::string> Row::optional_text(std::size_t i) const {
  if (is_null(i)) return std::nullopt;
  return text(i);
}

namespace {

// Copies the write-ahead log into the database from its own connection and thread, so that
// a request never waits for a checkpoint's writes and fsync (SQLite would otherwise run one
// inside whichever commit crosses the threshold). PASSIVE never blocks the writer.
class Checkpointer {
 public:
  explicit Checkpointer(const std::string& path) {
    if (path.empty() || path == ":memory:") return;
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      return;
    }
    sqlite3_busy_timeout(db_, 50);
    thread_ = std::thread([this] { run(); });
  }
  ~Checkpointer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  bool running() const { return db_ != nullptr; }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds{200}, [this] { return stopping_; })) {
      lock.unlock();
      int frames = 0;
      int copied = 0;
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
      lock.lock();
    }
  }

  sqlite3* db_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(sqlite3* db) : db_(db) {}
  ~SqliteDatabase() override {
    checkpointer_.reset();
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  // After the schema is in place: checkpoints move to their own thread; the connection's
  // own remain as a backstop should that thread fall far behind.
  void checkpoint_in_background(const std::string& path) {
    checkpointer_ = std::make_unique<Checkpointer>(path);
    if (checkpointer_->running()) (void)exec_plain("PRAGMA wal_autocheckpoint=20000");
  }

  Result<std::int64_t> execute(std::string_view sql, const std::vector<Value>& params) override {
    std::lock_guard lock(mutex_);
    auto stmt = prepare(sql, params);
    if (!stmt) return std::unexpected(stmt.error());
    int rc;
    while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(*stmt);
    if (rc != SQLITE_DONE) return step_error(rc);
    return static_cast<std::int64_t>(sqlite3_changes64(db_));
  }

  Result<std::vector<Row>> query(std::string_view sql, const std::vector<Value>& params) override {
    std::lock_guard lock(mutex_);
    auto stmt = prepare(sql, params);
    if (!stmt) return std::unexpected(stmt.error());
    std::vector<Row> rows;
    int rc;
    const int columns = sqlite3_column_count(*stmt);
    while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW) {
      std::vector<Value> values;
      values.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) values.push_back(column(*stmt, c));
      rows.emplace_back(std::move(values));
    }
    sqlite3_reset(*stmt);
    if (rc != SQLITE_DONE) return step_error(rc);
    return rows;
  }

  Result<void> transaction(const std::function<Result<void>()>& body) override {
    std::unique_lock lock(mutex_);
    if (in_transaction_) return body();  // joins the outer transaction (same thread holds the lock)
    if (auto r = exec_plain("BEGIN IMMEDIATE"); !r) return r;
    in_transaction_ = true;
    Result<void> result;
    try {
      result = body();
    } catch (const std::exception& e) {
      result = fail(ErrorCode::kInternal, std::string("transaction aborted: ") + e.what());
    }
    in_transaction_ = false;
    if (!result) {
      (void)exec_plain("ROLLBACK");
      return result;
    }
    if (auto r = exec_plain("COMMIT"); !r) {
      (void)exec_plain("ROLLBACK");
      return r;
    }
    return {};
  }

  int schema_version() override {
    auto rows = query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {});
    if (!rows || rows->empty()) return 0;
    return static_cast<int>(rows->front().integer(0));
  }

  Result<void> exec_plain(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string message = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return fail(ErrorCode::kInternal, "database: " + message);
    }
    return {};
  }

  std::recursive_mutex& mutex() { return mutex_; }

 private:
  Result<sqlite3_stmt*> prepare(std::string_view sql, const std::vector<Value>& params) {
    std::string key(sql);
    sqlite3_stmt* stmt = nullptr;
    if (auto it = statements_.find(key); it != statements_.end()) {
      stmt = it->second;
      sqlite3_clear_bindings(stmt);
    } else {
      if (sqlite3_prepare_v2(db_, key.c_str(), static_cast<int>(key.size()), &stmt, nullptr) != SQLITE_OK) {
        return fail(ErrorCode::kInternal, std::string("database: ") + sqlite3_errmsg(db_));
      }
      statements_.emplace(std::move(key), stmt);
    }
    if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(stmt)) {
      return fail(ErrorCode::kInternal, "database: wrong number of parameters for statement");
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      const Value& v = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::monostate>(v)) {
        rc = sqlite3_bind_null(stmt, idx);
      } else if (auto n = std::get_if<std::int64_t>(&v)) {
        rc = sqlite3_bind_int64(stmt, idx, *n);
      } else if (auto d = std::get_if<double>(&v)) {
        rc = sqlite3_bind_double(stmt, idx, *d);
      } else if (auto s = std::get_if<std::string>(&v)) {
        rc = sqlite3_bind_text64(stmt, idx, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      } else if (auto b = std::get_if<Bytes>(&v)) {
        // An empty vector's data() may be null, which SQLite would bind as NULL.
        rc = b->empty() ? sqlite3_bind_zeroblob(stmt, idx, 0)
                        : sqlite3_bind_blob64(stmt, idx, b->data(), b->size(), SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return fail(ErrorCode::kInternal, std::string("database: ") + sqlite3_errmsg(db_));
    }
    return stmt;
  }

  static Value column(sqlite3_stmt* stmt, int c) {
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER: return static_cast<std::int64_t>(sqlite3_column_int64(stmt, c));
      case SQLITE_FLOAT: return sqlite3_column_double(stmt, c);
      case SQLITE_TEXT: {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, c)));
      }
      case SQLITE_BLOB: {
        auto p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, c));
        return Bytes(p, p + sqlite3_column_bytes(stmt, c));
      }
      default: return std::monostate{};
    }
  }

  std::unexpected<Error> step_error(int rc) {
    const ErrorCode code = (rc & 0xff) == SQLITE_CONSTRAINT ? ErrorCode::kConflict : ErrorCode::kInternal;
    return fail(code, std::string("database: ") + sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  std::recursive_mutex mutex_;
  bool in_transaction_ = false;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
  std::unique_ptr<Checkpointer> checkpointer_;
};

}  // namespace

Result<std::unique_ptr<Database>> open_sqlite(const std::string& path, const std::vector<Migration>& migrations) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = raw != nullptr ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close_v2(raw);
    return fail(ErrorCode::kUnavailable, "cannot open database " + path + ": " + message);
  }
  auto db = std::make_unique<SqliteDatabase>(raw);
  sqlite3_busy_timeout(raw, 5000);
  // A 64 MiB page cache: at 100,000 providers the hot pages no longer fit the default 2 MiB.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                             "PRAGMA cache_size=-65536", "PRAGMA temp_store=MEMORY"}) {
    if (auto r = db->exec_plain(pragma); !r) return std::unexpected(r.error());
  }
  if (auto r = db->exec_plain("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                              "name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
      !r) {
    return std::unexpected(r.error());
  }
  int current = db->schema_version();
  for (const auto& m : migrations) {
    if (m.version <= current) continue;
    auto applied = db->transaction([&]() -> Result<void> {
      if (auto r = db->exec_plain(std::string(m.sql)); !r) {
        return fail(ErrorCode::kInternal, "migration " + std::to_string(m.version) + " (" + std::string(m.name) +
                                              ") failed: " + r.error().message);
      }
      auto r = db->execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES(?, ?, strftime('%s','now'))",
                           {std::int64_t{m.version}, std::string(m.name)});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    if (!applied) return std::unexpected(applied.error());
    current = m.version;
  }
  db->checkpoint_in_background(path);
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace kaisar::store
