#include "db/sqlite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/db/test_util.h"

namespace ipt::db::sqlite {
namespace {

using testing_util::ExpectError;
using testing_util::ScratchDir;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    connection_ = std::make_unique<Connection>(dir_.File("t.db"), Access::kReadWrite);
    connection_->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT)");
  }

  int64_t Count() { return connection_->QueryInt64("SELECT count(*) FROM t"); }

  ScratchDir dir_;
  std::unique_ptr<Connection> connection_;
};

TEST_F(SqliteTest, TypedBindsAndGettersRoundTrip) {
  const std::string text("a\0b", 3);  // sizes, not C strings
  {
    Statement insert(*connection_, "INSERT INTO t (i, r, s) VALUES (?, ?, ?)");
    insert.BindInt64(1, int64_t{1} << 40).BindDouble(2, 0.25).BindText(3, text);
    insert.Run();
  }
  EXPECT_EQ(connection_->Changes(), 1);
  const int64_t id = connection_->LastInsertRowId();
  {
    Statement insert(*connection_, "INSERT INTO t (i, r, s) VALUES (?, ?, ?)");
    insert.BindNull(1).BindNull(2).BindNull(3);
    insert.Run();
  }
  Statement select(*connection_, "SELECT i, r, s FROM t ORDER BY id");
  ASSERT_TRUE(select.Step());
  EXPECT_EQ(select.GetInt64(0), int64_t{1} << 40);
  EXPECT_EQ(select.GetDouble(1), 0.25);
  EXPECT_EQ(select.GetText(2), text);
  EXPECT_FALSE(select.IsNull(0));
  ASSERT_TRUE(select.Step());
  EXPECT_TRUE(select.IsNull(0));
  EXPECT_EQ(select.GetInt64(0), 0);
  EXPECT_EQ(select.GetDouble(1), 0.0);
  EXPECT_EQ(select.GetText(2), "");
  EXPECT_FALSE(select.Step());
  EXPECT_GT(id, 0);
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  {
    Transaction transaction(*connection_, Transaction::Kind::kImmediate);
    connection_->Exec("INSERT INTO t (i) VALUES (1)");
  }
  EXPECT_EQ(Count(), 0);
  {
    Transaction transaction(*connection_, Transaction::Kind::kImmediate);
    connection_->Exec("INSERT INTO t (i) VALUES (1)");
    transaction.Commit();
  }
  EXPECT_EQ(Count(), 1);
  try {
    Transaction transaction(*connection_, Transaction::Kind::kImmediate);
    connection_->Exec("INSERT INTO t (i) VALUES (2)");
    throw std::runtime_error("halfway");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(Count(), 1);
}

TEST_F(SqliteTest, FinishedStatementReleasesItsSnapshot) {
  connection_->Exec("INSERT INTO t (i) VALUES (1), (2)");
  Connection reader(dir_.File("t.db"), Access::kReadOnly);
  {
    // Stops after the first of two rows: the cached statement must not keep its read open.
    Statement first(reader, "SELECT i FROM t ORDER BY id");
    ASSERT_TRUE(first.Step());
  }
  connection_->Exec("INSERT INTO t (i) VALUES (3)");
  EXPECT_EQ(reader.QueryInt64("SELECT count(*) FROM t"), 3);
}

TEST_F(SqliteTest, SameQueryNestedInItselfWorks) {
  connection_->Exec("INSERT INTO t (i) VALUES (1), (2)");
  const std::string sql = "SELECT i FROM t ORDER BY id";
  Statement outer(*connection_, sql);
  int rows = 0;
  while (outer.Step()) {
    Statement inner(*connection_, sql);
    ASSERT_TRUE(inner.Step());
    EXPECT_EQ(inner.GetInt64(0), 1);
    ++rows;
  }
  EXPECT_EQ(rows, 2);
}

TEST_F(SqliteTest, ErrorsMapToCodesAndNameThePath) {
  ExpectError([&] { Statement s(*connection_, "SELEC nonsense"); }, ErrorCode::kInternal,
              dir_.File("t.db"));
  connection_->Exec("CREATE TABLE u (k TEXT UNIQUE)");
  connection_->Exec("INSERT INTO u VALUES ('a')");
  ExpectError([&] { connection_->Exec("INSERT INTO u VALUES ('a')"); }, ErrorCode::kInvalidArgument,
              "UNIQUE");
  Connection reader(dir_.File("t.db"), Access::kReadOnly);
  ExpectError([&] { reader.Exec("INSERT INTO u VALUES ('b')"); }, ErrorCode::kIo, "readonly");
}

TEST_F(SqliteTest, LockHeldBeyondTimeoutIsBusy) {
  connection_->Exec("PRAGMA journal_mode = WAL");
  Connection other(dir_.File("t.db"), Access::kReadWrite);
  other.SetBusyTimeout(50);
  Transaction holding(*connection_, Transaction::Kind::kImmediate);
  ExpectError([&] { Transaction t(other, Transaction::Kind::kImmediate); }, ErrorCode::kBusy,
              "'" + dir_.File("t.db") + "' is locked");
}

TEST(SqliteOpenTest, MissingDirectoryIsIo) {
  ExpectError([] { Connection c("/nonexistent/dir/a.db", Access::kReadWrite); }, ErrorCode::kIo,
              "cannot open database '/nonexistent/dir/a.db'");
}

}  // namespace
}  // namespace ipt::db::sqlite
