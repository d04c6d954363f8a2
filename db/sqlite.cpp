// The SQLite RAII layer: error mapping, the per-connection statement cache, transactions.
#include "db/sqlite.h"

#include <sqlite3.h>

#include "base/error.h"

namespace ipt::db::sqlite {
namespace {

std::string Quoted(const std::string& path) { return "'" + path + "'"; }

}  // namespace

Connection::Connection(const std::string& path, Access access) : path_(path) {
  // No SQLITE_OPEN_URI: a path is a path, even one that starts with "file:".
  const int flags = access == Access::kReadOnly ? SQLITE_OPEN_READONLY
                                                : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kIo, "cannot open database " + Quoted(path) + ": " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  sqlite3_close(db_);
}

bool Connection::IsReadOnly() const { return sqlite3_db_readonly(db_, "main") == 1; }

void Connection::SetBusyTimeout(int milliseconds) {
  sqlite3_busy_timeout(db_, milliseconds);
  busy_timeout_ms_ = milliseconds;
}

void Connection::Exec(const std::string& sql) {
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) Fail(rc);
}

int64_t Connection::QueryInt64(const std::string& sql) {
  Statement statement(*this, sql);
  return statement.Step() ? statement.GetInt64(0) : 0;
}

std::string Connection::QueryText(const std::string& sql) {
  Statement statement(*this, sql);
  return statement.Step() ? statement.GetText(0) : std::string();
}

int64_t Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int Connection::Changes() const { return sqlite3_changes(db_); }

void Connection::Fail(int rc) const {
  const std::string detail = sqlite3_errmsg(db_);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw Error(ErrorCode::kBusy, "database " + Quoted(path_) +
                                        " is locked by another connection (waited " +
                                        std::to_string(busy_timeout_ms_) + " ms): " + detail);
    case SQLITE_NOTADB:
      throw Error(ErrorCode::kCorrupt, Quoted(path_) + " is not an ipex-tune store: " + detail);
    case SQLITE_CORRUPT:
      throw Error(ErrorCode::kCorrupt, "database " + Quoted(path_) + " is damaged: " + detail);
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOLFS:
      throw Error(ErrorCode::kIo, "database " + Quoted(path_) + ": " + detail);
    case SQLITE_CONSTRAINT:
      throw Error(ErrorCode::kInvalidArgument, "database " + Quoted(path_) + ": " + detail);
    default:
      throw Error(ErrorCode::kInternal, "database " + Quoted(path_) + ": " + detail);
  }
}

Statement::Statement(Connection& connection, const std::string& sql) : connection_(connection) {
  auto [it, inserted] = connection.cache_.try_emplace(sql);
  Connection::CachedStatement& entry = it->second;
  if (!entry.in_use) {
    if (entry.stmt == nullptr) {
      const int rc = sqlite3_prepare_v2(connection.db_, sql.c_str(), -1, &entry.stmt, nullptr);
      if (rc != SQLITE_OK) {
        connection.cache_.erase(it);
        connection.Fail(rc);
      }
    }
    entry.in_use = true;
    stmt_ = entry.stmt;
    cached_ = &entry;
    return;
  }
  // The same query nested in itself: rare enough to prepare a private copy.
  const int rc = sqlite3_prepare_v2(connection.db_, sql.c_str(), -1, &stmt_, nullptr);
  if (rc != SQLITE_OK) connection.Fail(rc);
  owned_ = true;
}

Statement::~Statement() {
  if (owned_) {
    sqlite3_finalize(stmt_);
    return;
  }
  // Resetting ends the statement's read snapshot, so a long-lived reader sees new writes.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  cached_->in_use = false;
}

void Statement::Check(int rc) const {
  if (rc != SQLITE_OK) connection_.Fail(rc);
}

Statement& Statement::BindInt64(int index, int64_t value) {
  Check(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::BindDouble(int index, double value) {
  Check(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

Statement& Statement::BindText(int index, std::string_view value) {
  Check(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::BindNull(int index) {
  Check(sqlite3_bind_null(stmt_, index));
  return *this;
}

bool Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_reset returns the same error, and leaves the statement reusable.
  sqlite3_reset(stmt_);
  connection_.Fail(rc);
}

void Statement::Run() {
  while (Step()) {
  }
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::GetInt64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::GetDouble(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::GetText(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (text == nullptr) return {};
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

Transaction::Transaction(Connection& connection, Kind kind) : connection_(connection) {
  connection_.Exec(kind == Kind::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
}

Transaction::~Transaction() {
  if (!open_) return;
  // Fails only when SQLite already rolled back on its own (e.g. after SQLITE_FULL): nothing
  // left to undo.
  sqlite3_exec(connection_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::Commit() {
  connection_.Exec("COMMIT");
  open_ = false;
}

}  // namespace ipt::db::sqlite
