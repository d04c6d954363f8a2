// The SQLite store: schema migrations, opening checks, leases, and the typed reads and writes.
#include "db/store.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <utility>

#include "base/error.h"
#include "db/sqlite.h"

namespace ipt::db {
namespace {

using sqlite::Connection;
using sqlite::Statement;
using sqlite::Transaction;

// PRAGMA application_id of every ipex-tune store ("IPTS"), so another application's SQLite file
// is told apart from ours.
constexpr int64_t kApplicationId = 0x49505453;

// Migration i brings `PRAGMA user_version` from i to i + 1. Append only: a released step never
// changes, since stores in the field have already run it.
constexpr const char* kMigrations[] = {
    // 1: the initial schema.
    R"sql(
CREATE TABLE machines (
  id INTEGER PRIMARY KEY,
  fingerprint_key TEXT NOT NULL UNIQUE,
  fingerprint_json TEXT NOT NULL,
  context_json TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE TABLE workloads (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  model_hash TEXT NOT NULL,
  flops_per_item REAL,
  info_json TEXT NOT NULL,
  UNIQUE (name, model_hash)
);
CREATE TABLE studies (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  workload_id INTEGER NOT NULL REFERENCES workloads (id),
  machine_id INTEGER NOT NULL REFERENCES machines (id),
  space_json TEXT NOT NULL,
  settings_json TEXT NOT NULL,
  created_at REAL NOT NULL,
  lease_owner TEXT,
  lease_heartbeat REAL
);
CREATE INDEX studies_by_workload ON studies (workload_id);
CREATE INDEX studies_by_machine ON studies (machine_id);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY,
  study_id INTEGER NOT NULL REFERENCES studies (id),
  number INTEGER NOT NULL CHECK (number >= 0),
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('queued', 'running', 'done', 'failed', 'pruned', 'timed_out')),
  error TEXT,
  started_at REAL,
  finished_at REAL,
  setup_s REAL,
  recipe_yaml TEXT,
  UNIQUE (study_id, config_hash),
  UNIQUE (study_id, number)
);
CREATE TABLE measurements (
  id INTEGER PRIMARY KEY,
  trial_id INTEGER NOT NULL REFERENCES trials (id),
  scenario TEXT NOT NULL,
  batch INTEGER NOT NULL,
  threads INTEGER NOT NULL,
  items_per_s REAL,
  median_ms REAL,
  p90_ms REAL,
  p99_ms REAL,
  mean_ms REAL,
  stddev_ms REAL,
  cv REAL,
  samples INTEGER NOT NULL,
  noisy INTEGER NOT NULL CHECK (noisy IN (0, 1)),
  accuracy_json TEXT NOT NULL,
  applied_json TEXT NOT NULL,
  raw_json TEXT NOT NULL
);
CREATE INDEX measurements_by_trial ON measurements (trial_id);
CREATE TABLE recipes (
  id INTEGER PRIMARY KEY,
  study_id INTEGER NOT NULL REFERENCES studies (id),
  trial_id INTEGER NOT NULL REFERENCES trials (id),
  yaml TEXT NOT NULL,
  path TEXT NOT NULL,
  created_at REAL NOT NULL
);
CREATE INDEX recipes_by_study ON recipes (study_id);
CREATE INDEX recipes_by_trial ON recipes (trial_id);
PRAGMA application_id = 1230001235;
)sql",
    // 2: what a study optimises and the targets of its latest run; trials that finished but miss
    // a target; the machine's load average around each measurement.
    R"sql(
ALTER TABLE studies ADD COLUMN objective TEXT NOT NULL DEFAULT 'throughput';
ALTER TABLE studies ADD COLUMN mode TEXT NOT NULL DEFAULT 'optimise';
ALTER TABLE studies ADD COLUMN latency_bound_ms REAL;
ALTER TABLE studies ADD COLUMN min_speedup REAL;
ALTER TABLE trials ADD COLUMN infeasible TEXT;
ALTER TABLE measurements ADD COLUMN load_before REAL;
ALTER TABLE measurements ADD COLUMN load_after REAL;
)sql",
    // 3: the accuracy target of a study's latest run.
    R"sql(
ALTER TABLE studies ADD COLUMN max_accuracy_loss REAL;
)sql",
};

constexpr int kLatestSchemaVersion = static_cast<int>(std::size(kMigrations));

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// Wall-clock Unix seconds: timestamps are compared across processes and shown to people.
double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// SQLite stores NaN as NULL; reading NULL back as NaN keeps "not measured" apart from 0.
double GetFigure(const Statement& s, int column) {
  return s.IsNull(column) ? std::numeric_limits<double>::quiet_NaN() : s.GetDouble(column);
}

bool IsFinal(TrialStatus status) {
  return status != TrialStatus::kQueued && status != TrialStatus::kRunning;
}

// True when `owner` ("host:pid") names a process on this host that no longer exists.
bool IsDeadLocalProcess(const std::string& owner) {
  const size_t colon = owner.rfind(':');
  if (colon == std::string::npos || colon + 1 == owner.size()) return false;
  const std::string pid_text = owner.substr(colon + 1);
  if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) {
    return false;
  }
  const long pid = std::stol(pid_text);
  if (pid <= 0) return false;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return false;
  if (owner.compare(0, colon, host) != 0) return false;
  // EPERM means the process exists under another user: it still runs.
  return kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

constexpr const char* kStudyColumns =
    "id, key, workload_id, machine_id, space_json, settings_json, created_at, lease_owner, "
    "lease_heartbeat, objective, mode, latency_bound_ms, min_speedup, max_accuracy_loss";

std::optional<double> GetOptional(const Statement& s, int column) {
  if (s.IsNull(column)) return std::nullopt;
  return s.GetDouble(column);
}

void BindOptional(Statement& s, int index, const std::optional<double>& value) {
  if (value) {
    s.BindDouble(index, *value);
  } else {
    s.BindNull(index);
  }
}

// An empty text is stored as NULL: "none", as for a trial's infeasible reason.
void BindTextOrNull(Statement& s, int index, const std::string& text) {
  if (text.empty()) {
    s.BindNull(index);
  } else {
    s.BindText(index, text);
  }
}

Study ReadStudy(const Statement& s) {
  Study study;
  study.id = s.GetInt64(0);
  study.key = s.GetText(1);
  study.workload_id = s.GetInt64(2);
  study.machine_id = s.GetInt64(3);
  study.space_json = s.GetText(4);
  study.settings_json = s.GetText(5);
  study.created_at = s.GetDouble(6);
  study.lease_owner = s.GetText(7);
  study.lease_heartbeat = s.GetDouble(8);
  study.goal.objective = s.GetText(9);
  study.goal.mode = s.GetText(10);
  study.goal.latency_bound_ms = GetOptional(s, 11);
  study.goal.min_speedup = GetOptional(s, 12);
  study.goal.max_accuracy_loss = GetOptional(s, 13);
  return study;
}

constexpr const char* kTrialColumns =
    "id, study_id, number, config_json, config_hash, status, error, started_at, finished_at, "
    "setup_s, recipe_yaml, infeasible";

Trial ReadTrial(const Statement& s, const std::string& path) {
  Trial trial;
  trial.id = s.GetInt64(0);
  trial.study_id = s.GetInt64(1);
  trial.number = s.GetInt64(2);
  trial.config_json = s.GetText(3);
  trial.config_hash = s.GetText(4);
  const std::string status = s.GetText(5);
  const std::optional<TrialStatus> parsed = ParseTrialStatus(status);
  if (!parsed) {
    throw Error(ErrorCode::kCorrupt, "database " + Quoted(path) + ": trial " +
                                         std::to_string(trial.id) + " has unknown status " +
                                         Quoted(status));
  }
  trial.status = *parsed;
  trial.error = s.GetText(6);
  trial.started_at = s.GetDouble(7);
  trial.finished_at = s.GetDouble(8);
  trial.setup_s = s.GetDouble(9);
  trial.recipe_yaml = s.GetText(10);
  trial.infeasible = s.GetText(11);
  return trial;
}

}  // namespace

const char* ToString(TrialStatus status) {
  switch (status) {
    case TrialStatus::kQueued:
      return "queued";
    case TrialStatus::kRunning:
      return "running";
    case TrialStatus::kDone:
      return "done";
    case TrialStatus::kFailed:
      return "failed";
    case TrialStatus::kPruned:
      return "pruned";
    case TrialStatus::kTimedOut:
      return "timed_out";
  }
  return "queued";
}

std::optional<TrialStatus> ParseTrialStatus(const std::string& s) {
  for (TrialStatus status : {TrialStatus::kQueued, TrialStatus::kRunning, TrialStatus::kDone,
                             TrialStatus::kFailed, TrialStatus::kPruned, TrialStatus::kTimedOut}) {
    if (s == ToString(status)) return status;
  }
  if (s == "timed-out") return TrialStatus::kTimedOut;
  return std::nullopt;
}

struct Store::Impl {
  Impl(const std::string& path, OpenMode open_mode)
      : connection(path, open_mode == OpenMode::kReadOnly ? sqlite::Access::kReadOnly
                                                          : sqlite::Access::kReadWrite),
        mode(open_mode) {}

  void RequireWritable(const char* operation) const {
    if (mode == OpenMode::kReadOnly) {
      throw Error(
          ErrorCode::kInvalidArgument,
          std::string(operation) + ": store " + Quoted(connection.path()) + " is open read-only");
    }
  }

  bool StudyExists(int64_t study_id) {
    Statement s(connection, "SELECT 1 FROM studies WHERE id = ?");
    s.BindInt64(1, study_id);
    return s.Step();
  }

  void RequireStudy(int64_t study_id) {
    if (!StudyExists(study_id)) {
      throw Error(ErrorCode::kNotFound,
                  "no study " + std::to_string(study_id) + " in " + Quoted(connection.path()));
    }
  }

  // Reads and checks the header fields that say whose file this is and which schema it has.
  int ReadSchemaVersion() {
    const std::string& path = connection.path();
    // The first read of the file: this is where a file that is not SQLite fails (kCorrupt).
    const int64_t application_id = connection.QueryInt64("PRAGMA application_id");
    const int64_t version = connection.QueryInt64("PRAGMA user_version");
    if (application_id != 0 && application_id != kApplicationId) {
      throw Error(ErrorCode::kCorrupt, Quoted(path) +
                                           " is not an ipex-tune store: it belongs to another "
                                           "application (application_id " +
                                           std::to_string(application_id) + ")");
    }
    if (version > kLatestSchemaVersion) {
      throw Error(ErrorCode::kUnsupported,
                  Quoted(path) + " was written by a newer ipex-tune (schema version " +
                      std::to_string(version) + ", this build knows up to " +
                      std::to_string(kLatestSchemaVersion) + "); upgrade ipex-tune to open it");
    }
    if (version < 0 || (version > 0 && application_id != kApplicationId)) {
      throw Error(ErrorCode::kCorrupt, Quoted(path) +
                                           " is not an ipex-tune store: unknown user_version " +
                                           std::to_string(version));
    }
    if (version == 0 && connection.QueryInt64("SELECT count(*) FROM sqlite_master") > 0) {
      throw Error(ErrorCode::kCorrupt,
                  Quoted(path) + " is not an ipex-tune store: it holds tables of another kind");
    }
    return static_cast<int>(version);
  }

  void Migrate() {
    for (;;) {
      Transaction transaction(connection, Transaction::Kind::kImmediate);
      // Read again under the write lock: another process may have migrated meanwhile.
      const int64_t version = connection.QueryInt64("PRAGMA user_version");
      if (version >= kLatestSchemaVersion) return;
      connection.Exec(kMigrations[version]);
      connection.Exec("PRAGMA user_version = " + std::to_string(version + 1));
      transaction.Commit();
    }
  }

  sqlite::Connection connection;
  OpenMode mode;
  int schema_version = 0;
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::Open(const std::string& path, OpenMode mode) {
  return Open(path, mode, StoreOptions{});
}

Store Store::Open(const std::string& path, OpenMode mode, const StoreOptions& options) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, "empty store path");
  if (mode == OpenMode::kReadOnly) {
    struct stat info {};
    if (stat(path.c_str(), &info) != 0) {
      if (errno == ENOENT) {
        throw Error(ErrorCode::kNotFound, "no ipex-tune store at " + Quoted(path));
      }
      throw Error(ErrorCode::kIo,
                  "cannot open database " + Quoted(path) + ": " + std::strerror(errno));
    }
  }
  auto impl = std::make_unique<Impl>(path, mode);
  Connection& connection = impl->connection;
  // Before the first read: even checking the header waits on a writer mid-recovery.
  connection.SetBusyTimeout(options.busy_timeout_ms);
  if (mode == OpenMode::kReadWrite && connection.IsReadOnly()) {
    throw Error(ErrorCode::kIo,
                "cannot open database " + Quoted(path) + " for writing: the file is read-only");
  }
  connection.Exec("PRAGMA foreign_keys = ON");
  int version = impl->ReadSchemaVersion();

  if (mode == OpenMode::kReadOnly) {
    if (version == 0) {
      throw Error(ErrorCode::kCorrupt,
                  Quoted(path) + " is not an ipex-tune store: it was never initialised");
    }
    if (version < kLatestSchemaVersion) {
      throw Error(ErrorCode::kUnsupported,
                  Quoted(path) + " has schema version " + std::to_string(version) +
                      ", older than this build's " + std::to_string(kLatestSchemaVersion) +
                      "; open it read-write once (run the tuner) to upgrade it");
    }
    connection.Exec("PRAGMA query_only = ON");
  } else {
    // WAL lets the GUI's read-only connection read while the tuner writes, without "database
    // is locked" on either side.
    const std::string journal_mode = connection.QueryText("PRAGMA journal_mode = WAL");
    if (journal_mode != "wal" && journal_mode != "memory") {
      throw Error(ErrorCode::kUnsupported, "cannot use WAL for " + Quoted(path) +
                                               " (journal mode stays '" + journal_mode +
                                               "'); put the store on a local filesystem");
    }
    // In WAL, NORMAL loses at most the last commits on power loss, never consistency, and
    // spares an fsync per write.
    connection.Exec("PRAGMA synchronous = NORMAL");
    if (version < kLatestSchemaVersion) {
      impl->Migrate();
      version = static_cast<int>(connection.QueryInt64("PRAGMA user_version"));
    }
  }
  impl->schema_version = version;
  return Store(std::move(impl));
}

const std::string& Store::path() const { return impl_->connection.path(); }

int Store::schema_version() const { return impl_->schema_version; }

int Store::LatestSchemaVersion() { return kLatestSchemaVersion; }

int64_t Store::UpsertMachine(const std::string& fingerprint_key,
                             const std::string& fingerprint_json, const std::string& context_json) {
  impl_->RequireWritable("UpsertMachine");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c,
                "INSERT INTO machines (fingerprint_key, fingerprint_json, context_json, "
                "created_at) VALUES (?, ?, ?, ?) ON CONFLICT (fingerprint_key) DO UPDATE SET "
                "fingerprint_json = excluded.fingerprint_json, "
                "context_json = excluded.context_json");
    s.BindText(1, fingerprint_key).BindText(2, fingerprint_json).BindText(3, context_json);
    s.BindDouble(4, Now());
    s.Run();
  }
  Statement s(c, "SELECT id FROM machines WHERE fingerprint_key = ?");
  s.BindText(1, fingerprint_key);
  s.Step();
  const int64_t id = s.GetInt64(0);
  transaction.Commit();
  return id;
}

int64_t Store::UpsertWorkload(const std::string& name, const std::string& model_hash,
                              double flops_per_item, const std::string& info_json) {
  impl_->RequireWritable("UpsertWorkload");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c,
                "INSERT INTO workloads (name, model_hash, flops_per_item, info_json) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name, model_hash) DO UPDATE SET "
                "flops_per_item = excluded.flops_per_item, info_json = excluded.info_json");
    s.BindText(1, name).BindText(2, model_hash).BindDouble(3, flops_per_item);
    s.BindText(4, info_json);
    s.Run();
  }
  Statement s(c, "SELECT id FROM workloads WHERE name = ? AND model_hash = ?");
  s.BindText(1, name).BindText(2, model_hash);
  s.Step();
  const int64_t id = s.GetInt64(0);
  transaction.Commit();
  return id;
}

Study Store::FindOrCreateStudy(const std::string& key, int64_t workload_id, int64_t machine_id,
                               const std::string& space_json, const std::string& settings_json) {
  impl_->RequireWritable("FindOrCreateStudy");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  if (std::optional<Study> existing = FindStudy(key)) return *existing;
  if (!GetWorkload(workload_id)) {
    throw Error(ErrorCode::kNotFound,
                "no workload " + std::to_string(workload_id) + " in " + Quoted(c.path()));
  }
  if (!GetMachine(machine_id)) {
    throw Error(ErrorCode::kNotFound,
                "no machine " + std::to_string(machine_id) + " in " + Quoted(c.path()));
  }
  Study study;
  study.key = key;
  study.workload_id = workload_id;
  study.machine_id = machine_id;
  study.space_json = space_json;
  study.settings_json = settings_json;
  study.created_at = Now();
  Statement s(c,
              "INSERT INTO studies (key, workload_id, machine_id, space_json, settings_json, "
              "created_at) VALUES (?, ?, ?, ?, ?, ?)");
  s.BindText(1, key).BindInt64(2, workload_id).BindInt64(3, machine_id);
  s.BindText(4, space_json).BindText(5, settings_json).BindDouble(6, study.created_at);
  s.Run();
  study.id = c.LastInsertRowId();
  transaction.Commit();
  return study;
}

void Store::AcquireLease(int64_t study_id, const std::string& owner, double stale_after_s) {
  impl_->RequireWritable("AcquireLease");
  if (owner.empty()) throw Error(ErrorCode::kInvalidArgument, "AcquireLease: empty owner");
  Connection& c = impl_->connection;
  // IMMEDIATE: the check and the take happen under the write lock, so they are atomic.
  Transaction transaction(c, Transaction::Kind::kImmediate);
  std::string holder;
  double heartbeat = 0;
  {
    Statement s(c, "SELECT lease_owner, lease_heartbeat FROM studies WHERE id = ?");
    s.BindInt64(1, study_id);
    if (!s.Step()) {
      throw Error(ErrorCode::kNotFound,
                  "no study " + std::to_string(study_id) + " in " + Quoted(c.path()));
    }
    holder = s.GetText(0);
    heartbeat = s.GetDouble(1);
  }
  const double now = Now();
  const double age = now - heartbeat;
  const bool free =
      holder.empty() || holder == owner || age > stale_after_s || IsDeadLocalProcess(holder);
  if (!free) {
    const long shown_age = std::lround(std::max(0.0, age));
    throw Error(ErrorCode::kBusy, "study " + std::to_string(study_id) + " is being tuned by " +
                                      holder + " (heartbeat " + std::to_string(shown_age) +
                                      " s ago); wait for it or stop it");
  }
  Statement s(c, "UPDATE studies SET lease_owner = ?, lease_heartbeat = ? WHERE id = ?");
  s.BindText(1, owner).BindDouble(2, now).BindInt64(3, study_id);
  s.Run();
  transaction.Commit();
}

void Store::Heartbeat(int64_t study_id, const std::string& owner) {
  impl_->RequireWritable("Heartbeat");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c, "UPDATE studies SET lease_heartbeat = ? WHERE id = ? AND lease_owner = ?");
    s.BindDouble(1, Now()).BindInt64(2, study_id).BindText(3, owner);
    s.Run();
  }
  if (c.Changes() == 0) {
    const std::optional<Study> study = GetStudy(study_id);
    if (!study) {
      throw Error(ErrorCode::kNotFound,
                  "no study " + std::to_string(study_id) + " in " + Quoted(c.path()));
    }
    const std::string holder = study->lease_owner.empty() ? "nobody" : study->lease_owner;
    throw Error(ErrorCode::kBusy, "study " + std::to_string(study_id) + " is no longer leased by " +
                                      owner + " (now held by " + holder + "); stop tuning it");
  }
  transaction.Commit();
}

void Store::ReleaseLease(int64_t study_id, const std::string& owner) {
  impl_->RequireWritable("ReleaseLease");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  Statement s(c,
              "UPDATE studies SET lease_owner = NULL, lease_heartbeat = NULL "
              "WHERE id = ? AND lease_owner = ?");
  s.BindInt64(1, study_id).BindText(2, owner);
  s.Run();
  transaction.Commit();
}

int Store::RequeueRunningTrials(int64_t study_id) {
  impl_->RequireWritable("RequeueRunningTrials");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  Statement s(c,
              "UPDATE trials SET status = 'queued', started_at = NULL "
              "WHERE study_id = ? AND status = 'running'");
  s.BindInt64(1, study_id);
  s.Run();
  const int changed = c.Changes();
  transaction.Commit();
  return changed;
}

Trial Store::AddTrial(int64_t study_id, const std::string& config_json,
                      const std::string& config_hash, std::optional<int64_t> number) {
  impl_->RequireWritable("AddTrial");
  if (number && *number < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "AddTrial: negative trial number " + std::to_string(*number));
  }
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  impl_->RequireStudy(study_id);
  if (std::optional<Trial> existing = FindTrial(study_id, config_hash)) {
    throw Error(ErrorCode::kInvalidArgument,
                "study " + std::to_string(study_id) + " already has trial " +
                    std::to_string(existing->number) + " with config hash " + config_hash);
  }
  Trial trial;
  trial.study_id = study_id;
  trial.config_json = config_json;
  trial.config_hash = config_hash;
  trial.status = TrialStatus::kQueued;
  if (number) {
    Statement s(c, "SELECT 1 FROM trials WHERE study_id = ? AND number = ?");
    s.BindInt64(1, study_id).BindInt64(2, *number);
    if (s.Step()) {
      throw Error(ErrorCode::kInvalidArgument, "study " + std::to_string(study_id) +
                                                   " already has a trial number " +
                                                   std::to_string(*number));
    }
    trial.number = *number;
  } else {
    Statement s(c, "SELECT coalesce(max(number) + 1, 0) FROM trials WHERE study_id = ?");
    s.BindInt64(1, study_id);
    s.Step();
    trial.number = s.GetInt64(0);
  }
  Statement s(c,
              "INSERT INTO trials (study_id, number, config_json, config_hash, status) "
              "VALUES (?, ?, ?, ?, 'queued')");
  s.BindInt64(1, study_id).BindInt64(2, trial.number).BindText(3, config_json);
  s.BindText(4, config_hash);
  s.Run();
  trial.id = c.LastInsertRowId();
  transaction.Commit();
  return trial;
}

void Store::MarkTrialRunning(int64_t trial_id, const std::string& recipe_yaml) {
  impl_->RequireWritable("MarkTrialRunning");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  Statement s(c,
              "UPDATE trials SET status = 'running', started_at = ?, finished_at = NULL, "
              "error = NULL, recipe_yaml = ? WHERE id = ?");
  s.BindDouble(1, Now()).BindText(2, recipe_yaml).BindInt64(3, trial_id);
  s.Run();
  if (c.Changes() == 0) {
    throw Error(ErrorCode::kNotFound,
                "no trial " + std::to_string(trial_id) + " in " + Quoted(c.path()));
  }
  transaction.Commit();
}

namespace {

void InsertMeasurement(Connection& c, int64_t trial_id, const Measurement& m) {
  Statement s(c,
              "INSERT INTO measurements (trial_id, scenario, batch, threads, items_per_s, "
              "median_ms, p90_ms, p99_ms, mean_ms, stddev_ms, cv, samples, noisy, "
              "accuracy_json, applied_json, raw_json, load_before, load_after) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.BindInt64(1, trial_id).BindText(2, m.scenario).BindInt64(3, m.batch);
  s.BindInt64(4, m.threads).BindDouble(5, m.items_per_s).BindDouble(6, m.median_ms);
  s.BindDouble(7, m.p90_ms).BindDouble(8, m.p99_ms).BindDouble(9, m.mean_ms);
  s.BindDouble(10, m.stddev_ms).BindDouble(11, m.cv).BindInt64(12, m.samples);
  s.BindInt64(13, m.noisy ? 1 : 0).BindText(14, m.accuracy_json);
  s.BindText(15, m.applied_json).BindText(16, m.raw_json);
  s.BindDouble(17, m.load_before).BindDouble(18, m.load_after);
  s.Run();
}

}  // namespace

void Store::AddMeasurement(int64_t trial_id, const Measurement& measurement) {
  impl_->RequireWritable("AddMeasurement");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  InsertMeasurement(c, trial_id, measurement);
  transaction.Commit();
}

void Store::FinishTrial(int64_t trial_id, TrialStatus status, const std::string& error,
                        double setup_s, const std::optional<Measurement>& measurement,
                        const std::string& infeasible) {
  impl_->RequireWritable("FinishTrial");
  if (!IsFinal(status)) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("FinishTrial: status '") + ToString(status) + "' is not final");
  }
  if (!infeasible.empty() && status != TrialStatus::kDone) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("FinishTrial: only a done trial can be infeasible, not a ") +
                    ToString(status) + " one");
  }
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c,
                "UPDATE trials SET status = ?, error = ?, finished_at = ?, setup_s = ?, "
                "infeasible = ? WHERE id = ?");
    s.BindText(1, ToString(status)).BindText(2, error).BindDouble(3, Now());
    s.BindDouble(4, setup_s);
    BindTextOrNull(s, 5, infeasible);
    s.BindInt64(6, trial_id);
    s.Run();
    if (c.Changes() == 0) {
      throw Error(ErrorCode::kNotFound,
                  "no trial " + std::to_string(trial_id) + " in " + Quoted(c.path()));
    }
  }
  if (measurement) InsertMeasurement(c, trial_id, *measurement);
  transaction.Commit();
}

void Store::SetTrialInfeasible(int64_t trial_id, const std::string& reason) {
  impl_->RequireWritable("SetTrialInfeasible");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c, "SELECT status FROM trials WHERE id = ?");
    s.BindInt64(1, trial_id);
    if (!s.Step()) {
      throw Error(ErrorCode::kNotFound,
                  "no trial " + std::to_string(trial_id) + " in " + Quoted(c.path()));
    }
    if (!reason.empty() && s.GetText(0) != ToString(TrialStatus::kDone)) {
      throw Error(ErrorCode::kInvalidArgument, "SetTrialInfeasible: trial " +
                                                   std::to_string(trial_id) + " is " +
                                                   s.GetText(0) + ", not done");
    }
  }
  Statement s(c, "UPDATE trials SET infeasible = ? WHERE id = ?");
  BindTextOrNull(s, 1, reason);
  s.BindInt64(2, trial_id);
  s.Run();
  transaction.Commit();
}

void Store::SetStudyGoal(int64_t study_id, const StudyGoal& goal) {
  impl_->RequireWritable("SetStudyGoal");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  Statement s(c,
              "UPDATE studies SET objective = ?, mode = ?, latency_bound_ms = ?, min_speedup = ?, "
              "max_accuracy_loss = ? WHERE id = ?");
  s.BindText(1, goal.objective).BindText(2, goal.mode);
  BindOptional(s, 3, goal.latency_bound_ms);
  BindOptional(s, 4, goal.min_speedup);
  BindOptional(s, 5, goal.max_accuracy_loss);
  s.BindInt64(6, study_id);
  s.Run();
  if (c.Changes() == 0) {
    throw Error(ErrorCode::kNotFound,
                "no study " + std::to_string(study_id) + " in " + Quoted(c.path()));
  }
  transaction.Commit();
}

int64_t Store::AddRecipe(int64_t study_id, int64_t trial_id, const std::string& yaml,
                         const std::string& path) {
  impl_->RequireWritable("AddRecipe");
  Connection& c = impl_->connection;
  Transaction transaction(c, Transaction::Kind::kImmediate);
  {
    Statement s(c, "SELECT 1 FROM trials WHERE id = ? AND study_id = ?");
    s.BindInt64(1, trial_id).BindInt64(2, study_id);
    if (!s.Step()) {
      throw Error(ErrorCode::kNotFound, "study " + std::to_string(study_id) + " has no trial " +
                                            std::to_string(trial_id) + " in " + Quoted(c.path()));
    }
  }
  Statement s(c,
              "INSERT INTO recipes (study_id, trial_id, yaml, path, created_at) "
              "VALUES (?, ?, ?, ?, ?)");
  s.BindInt64(1, study_id).BindInt64(2, trial_id).BindText(3, yaml).BindText(4, path);
  s.BindDouble(5, Now());
  s.Run();
  const int64_t id = c.LastInsertRowId();
  transaction.Commit();
  return id;
}

std::optional<Study> Store::FindStudy(const std::string& key) const {
  Statement s(impl_->connection,
              std::string("SELECT ") + kStudyColumns + " FROM studies WHERE key = ?");
  s.BindText(1, key);
  if (!s.Step()) return std::nullopt;
  return ReadStudy(s);
}

std::optional<Study> Store::GetStudy(int64_t study_id) const {
  Statement s(impl_->connection,
              std::string("SELECT ") + kStudyColumns + " FROM studies WHERE id = ?");
  s.BindInt64(1, study_id);
  if (!s.Step()) return std::nullopt;
  return ReadStudy(s);
}

std::vector<Study> Store::ListStudies() const {
  Statement s(impl_->connection,
              std::string("SELECT ") + kStudyColumns + " FROM studies ORDER BY id");
  std::vector<Study> studies;
  while (s.Step()) studies.push_back(ReadStudy(s));
  return studies;
}

std::optional<Machine> Store::GetMachine(int64_t machine_id) const {
  Statement s(impl_->connection,
              "SELECT id, fingerprint_key, fingerprint_json, context_json FROM machines "
              "WHERE id = ?");
  s.BindInt64(1, machine_id);
  if (!s.Step()) return std::nullopt;
  Machine machine;
  machine.id = s.GetInt64(0);
  machine.fingerprint_key = s.GetText(1);
  machine.fingerprint_json = s.GetText(2);
  machine.context_json = s.GetText(3);
  return machine;
}

std::optional<Workload> Store::GetWorkload(int64_t workload_id) const {
  Statement s(impl_->connection,
              "SELECT id, name, model_hash, flops_per_item, info_json FROM workloads "
              "WHERE id = ?");
  s.BindInt64(1, workload_id);
  if (!s.Step()) return std::nullopt;
  Workload workload;
  workload.id = s.GetInt64(0);
  workload.name = s.GetText(1);
  workload.model_hash = s.GetText(2);
  workload.flops_per_item = GetFigure(s, 3);
  workload.info_json = s.GetText(4);
  return workload;
}

std::optional<Trial> Store::GetTrial(int64_t trial_id) const {
  Statement s(impl_->connection,
              std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?");
  s.BindInt64(1, trial_id);
  if (!s.Step()) return std::nullopt;
  return ReadTrial(s, path());
}

std::vector<Trial> Store::ListTrials(int64_t study_id) const {
  Statement s(impl_->connection, std::string("SELECT ") + kTrialColumns +
                                     " FROM trials WHERE study_id = ? ORDER BY number");
  s.BindInt64(1, study_id);
  std::vector<Trial> trials;
  while (s.Step()) trials.push_back(ReadTrial(s, path()));
  return trials;
}

std::optional<Trial> Store::FindTrial(int64_t study_id, const std::string& config_hash) const {
  Statement s(impl_->connection, std::string("SELECT ") + kTrialColumns +
                                     " FROM trials WHERE study_id = ? AND config_hash = ?");
  s.BindInt64(1, study_id).BindText(2, config_hash);
  if (!s.Step()) return std::nullopt;
  return ReadTrial(s, path());
}

std::vector<Measurement> Store::ListMeasurements(int64_t trial_id) const {
  Statement s(impl_->connection,
              "SELECT id, trial_id, scenario, batch, threads, items_per_s, median_ms, p90_ms, "
              "p99_ms, mean_ms, stddev_ms, cv, samples, noisy, accuracy_json, applied_json, "
              "raw_json, load_before, load_after FROM measurements WHERE trial_id = ? "
              "ORDER BY id");
  s.BindInt64(1, trial_id);
  std::vector<Measurement> measurements;
  while (s.Step()) {
    Measurement m;
    m.id = s.GetInt64(0);
    m.trial_id = s.GetInt64(1);
    m.scenario = s.GetText(2);
    m.batch = s.GetInt64(3);
    m.threads = s.GetInt64(4);
    m.items_per_s = GetFigure(s, 5);
    m.median_ms = GetFigure(s, 6);
    m.p90_ms = GetFigure(s, 7);
    m.p99_ms = GetFigure(s, 8);
    m.mean_ms = GetFigure(s, 9);
    m.stddev_ms = GetFigure(s, 10);
    m.cv = GetFigure(s, 11);
    m.samples = s.GetInt64(12);
    m.noisy = s.GetInt64(13) != 0;
    m.accuracy_json = s.GetText(14);
    m.applied_json = s.GetText(15);
    m.raw_json = s.GetText(16);
    m.load_before = GetFigure(s, 17);
    m.load_after = GetFigure(s, 18);
    measurements.push_back(std::move(m));
  }
  return measurements;
}

std::vector<RecipeRow> Store::ListRecipes(int64_t study_id) const {
  Statement s(impl_->connection,
              "SELECT id, study_id, trial_id, yaml, path, created_at FROM recipes "
              "WHERE study_id = ? ORDER BY id");
  s.BindInt64(1, study_id);
  std::vector<RecipeRow> recipes;
  while (s.Step()) {
    RecipeRow recipe;
    recipe.id = s.GetInt64(0);
    recipe.study_id = s.GetInt64(1);
    recipe.trial_id = s.GetInt64(2);
    recipe.yaml = s.GetText(3);
    recipe.path = s.GetText(4);
    recipe.created_at = s.GetDouble(5);
    recipes.push_back(std::move(recipe));
  }
  return recipes;
}

}  // namespace ipt::db
