// A small RAII layer over the SQLite C API, private to ipt::db (in the style of SQLiteCpp).
// Callers of the store never see it, and it keeps sqlite3.h out of every header.
//
// Contract:
// - Every SQLite failure becomes an ipt::Error naming the database path: busy/locked -> kBusy,
//   not a database / damaged -> kCorrupt, cannot open / I/O / read-only file / disk full -> kIo,
//   constraint violation -> kInvalidArgument, anything else (SQL errors, misuse) -> kInternal.
// - A Connection owns its prepared statements; a Statement borrows one for the scope of a query
//   and resets it on destruction, so no read snapshot outlives the query that needed it.
// - A Transaction rolls back unless Commit() succeeded.
// - Not thread-safe: one thread at a time per Connection and its Statements.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace ipt::db::sqlite {

enum class Access {
  kReadWrite,  // creates the file when missing
  kReadOnly,   // SQLITE_OPEN_READONLY; the file must exist
};

class Connection {
 public:
  // Opens `path`. Throws kIo naming the path when it cannot be opened or created. SQLite reads
  // the file lazily, so a file that is not a database only fails at the first query.
  Connection(const std::string& path, Access access);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }
  // True when the connection cannot write, including a read-write open that SQLite silently
  // downgraded because the file is write-protected.
  bool IsReadOnly() const;

  // How long a statement waits for a lock held by another connection before failing with kBusy.
  void SetBusyTimeout(int milliseconds);
  int busy_timeout_ms() const { return busy_timeout_ms_; }

  // Runs one or more statements that return no rows needed by the caller.
  void Exec(const std::string& sql);
  // The single value of a one-row query such as "PRAGMA user_version".
  int64_t QueryInt64(const std::string& sql);
  std::string QueryText(const std::string& sql);

  int64_t LastInsertRowId() const;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int Changes() const;

  // Throws the ipt::Error for the SQLite result code `rc`, with the connection's error text.
  [[noreturn]] void Fail(int rc) const;

 private:
  friend class Statement;
  friend class Transaction;
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  sqlite3* db_ = nullptr;
  std::string path_;
  int busy_timeout_ms_ = 0;
  std::unordered_map<std::string, CachedStatement> cache_;
};

// A prepared query. Bind indexes are 1-based, column indexes 0-based, as in SQLite.
class Statement {
 public:
  // Borrows the connection's cached statement for `sql`, preparing it on first use. Throws
  // kInternal for SQL that does not compile.
  Statement(Connection& connection, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& BindInt64(int index, int64_t value);
  Statement& BindDouble(int index, double value);
  Statement& BindText(int index, std::string_view value);
  Statement& BindNull(int index);

  // Advances to the next row: true when a row is available, false when the query is done.
  bool Step();
  // Runs a statement that returns no rows (INSERT, UPDATE, DELETE).
  void Run();

  bool IsNull(int column) const;
  int64_t GetInt64(int column) const;     // NULL reads as 0
  double GetDouble(int column) const;     // NULL reads as 0
  std::string GetText(int column) const;  // NULL reads as ""

 private:
  void Check(int rc) const;

  Connection& connection_;
  sqlite3_stmt* stmt_ = nullptr;
  bool owned_ = false;  // prepared apart from the cache because the cached one is in use
  Connection::CachedStatement* cached_ = nullptr;
};

class Transaction {
 public:
  enum class Kind {
    kDeferred,   // takes locks at first use: for reads that need one consistent snapshot
    kImmediate,  // takes the write lock now: every write, so it never fails halfway on a lock
  };

  Transaction(Connection& connection, Kind kind);
  // Rolls back unless committed; never throws.
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void Commit();

 private:
  Connection& connection_;
  bool open_ = true;
};

}  // namespace ipt::db::sqlite
