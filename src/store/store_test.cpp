#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "store/database.hpp"

namespace kaisar::store {
namespace {

std::string temp_db(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("kaisar-store-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  return path.string();
}

const std::vector<Migration> kMigrations = {
    {1, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, blob BLOB);"},
    {2, "items.score", "ALTER TABLE items ADD COLUMN score REAL;"},
};

TEST(Sqlite, MigratesOnceAndKeepsData) {
  auto path = temp_db("migrate.db");
  {
    auto db = open_sqlite(path, kMigrations);
    ASSERT_TRUE(db) << db.error().message;
    EXPECT_EQ((*db)->schema_version(), 2);
    auto n = (*db)->execute("INSERT INTO items(name, blob, score) VALUES(?, ?, ?)",
                            {std::string("a"), Bytes{1, 2, 3}, 1.5});
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 1);
  }
  // Reopen with one more migration: only the new one runs, the data stays.
  auto more = kMigrations;
  more.push_back({3, "items.tag", "ALTER TABLE items ADD COLUMN tag TEXT DEFAULT 'x';"});
  auto db = open_sqlite(path, more);
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ((*db)->schema_version(), 3);
  auto rows = (*db)->query("SELECT name, blob, score, tag FROM items", {});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].text(0), "a");
  EXPECT_EQ(std::get<Bytes>((*rows)[0].at(1)), (Bytes{1, 2, 3}));
  EXPECT_EQ(std::get<double>((*rows)[0].at(2)), 1.5);
  EXPECT_EQ((*rows)[0].text(3), "x");
}

TEST(Sqlite, EmptyBlobIsNotNull) {
  auto db = open_sqlite(temp_db("emptyblob.db"), {{1, "t", "CREATE TABLE t (b BLOB NOT NULL);"}});
  ASSERT_TRUE(db) << db.error().message;
  auto n = (*db)->execute("INSERT INTO t (b) VALUES (?)", {Bytes{}});
  ASSERT_TRUE(n) << n.error().message;
  auto rows = (*db)->query("SELECT b, b IS NULL FROM t", {});
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].integer(1), 0);
}

TEST(Sqlite, FailedMigrationIsRolledBack) {
  auto path = temp_db("badmigration.db");
  std::vector<Migration> bad = {{1, "ok", "CREATE TABLE t (x INTEGER);"},
                                {2, "broken", "CREATE TABLE u (y INTEGER); THIS IS NOT SQL;"}};
  auto db = open_sqlite(path, bad);
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message.find("migration 2"), std::string::npos);
  auto good = open_sqlite(path, {bad[0]});
  ASSERT_TRUE(good);
  EXPECT_EQ((*good)->schema_version(), 1);
  EXPECT_FALSE((*good)->query("SELECT * FROM u", {}));  // table u was rolled back
}

TEST(Sqlite, ConstraintViolationIsConflict) {
  auto db = open_sqlite(temp_db("conflict.db"), kMigrations);
  ASSERT_TRUE(db);
  ASSERT_TRUE((*db)->execute("INSERT INTO items(name) VALUES(?)", {std::string("dup")}));
  auto again = (*db)->execute("INSERT INTO items(name) VALUES(?)", {std::string("dup")});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
}

TEST(Sqlite, TransactionRollsBackOnError) {
  auto db = open_sqlite(temp_db("tx.db"), kMigrations);
  ASSERT_TRUE(db);
  auto& d = **db;
  auto r = d.transaction([&]() -> Result<void> {
    if (auto x = d.execute("INSERT INTO items(name) VALUES('in-tx')", {}); !x) return std::unexpected(x.error());
    return fail(ErrorCode::kConflict, "changed my mind");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(d.query("SELECT * FROM items", {})->size(), 0u);
  ASSERT_TRUE(d.transaction([&]() -> Result<void> {
    if (auto x = d.execute("INSERT INTO items(name) VALUES('kept')", {}); !x) return std::unexpected(x.error());
    return {};
  }));
  EXPECT_EQ(d.query("SELECT * FROM items", {})->size(), 1u);
}

TEST(Sqlite, ConcurrentWritersLoseNothing) {
  auto db = open_sqlite(temp_db("concurrent.db"), kMigrations);
  ASSERT_TRUE(db);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = (*db)->execute("INSERT INTO items(name) VALUES(?)", {std::to_string(t) + "-" + std::to_string(i)});
        ASSERT_TRUE(r);
      }
    });
  }
  for (auto& th : threads) th.join();
  auto rows = (*db)->query("SELECT COUNT(*) FROM items", {});
  EXPECT_EQ(rows->front().integer(0), 800);
}

TEST(Sqlite, BadSqlAndParameterCount) {
  auto db = open_sqlite(temp_db("bad.db"), kMigrations);
  ASSERT_TRUE(db);
  EXPECT_FALSE((*db)->query("SELEC nonsense", {}));
  EXPECT_FALSE((*db)->execute("INSERT INTO items(name) VALUES(?)", {}));
}

TEST(Sqlite, UnopenablePathIsUnavailable) {
  auto db = open_sqlite("/nonexistent-dir/x/y.db", kMigrations);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace kaisar::store
