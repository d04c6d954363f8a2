#include "db/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "db/sqlite.h"
#include "tests/db/test_util.h"

namespace ipt::db {
namespace {

using testing_util::ExpectError;
using testing_util::ScratchDir;

std::string HostName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// Runs `f` in a forked child and returns its exit status (-1 when it did not exit normally).
// The child never returns into GoogleTest: it leaves with _exit.
template <typename F>
int RunInChild(F&& f) {
  const pid_t pid = fork();
  if (pid == 0) {
    int status = 1;
    try {
      status = f();
    } catch (const std::exception& e) {
      std::cerr << "child: " << e.what() << "\n";
    }
    _exit(status);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class StoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.File("ipex-tune.db"); }

  // A store with one machine, one workload and one study.
  Store OpenPopulated() {
    Store store = Store::Open(DbPath(), OpenMode::kReadWrite);
    machine_id_ = store.UpsertMachine("fp-1", R"({"cpu":"x"})", R"({"governor":"performance"})");
    workload_id_ = store.UpsertWorkload("bert-base", "sha-1", 22.5e9, R"({"seq_len":128})");
    study_ = store.FindOrCreateStudy("study-key", workload_id_, machine_id_, R"({"dims":[]})",
                                     R"({"strategy":"random"})");
    return store;
  }

  void WriteFile(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }

  ScratchDir dir_;
  int64_t machine_id_ = 0;
  int64_t workload_id_ = 0;
  Study study_;
};

TEST(TrialStatusTest, NamesRoundTrip) {
  for (TrialStatus status : {TrialStatus::kQueued, TrialStatus::kRunning, TrialStatus::kDone,
                             TrialStatus::kFailed, TrialStatus::kPruned, TrialStatus::kTimedOut}) {
    EXPECT_EQ(ParseTrialStatus(ToString(status)), status);
  }
  EXPECT_EQ(ParseTrialStatus("timed-out"), TrialStatus::kTimedOut);
  EXPECT_EQ(ParseTrialStatus("finished"), std::nullopt);
}

TEST_F(StoreTest, CreateAndReopenKeepsDataAndSchema) {
  {
    Store store = OpenPopulated();
    EXPECT_EQ(store.path(), DbPath());
    EXPECT_EQ(store.schema_version(), Store::LatestSchemaVersion());
    store.AddTrial(study_.id, "{}", "h0", 0);
  }
  for (OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
    Store store = Store::Open(DbPath(), mode);
    EXPECT_EQ(store.schema_version(), Store::LatestSchemaVersion());
    const std::optional<Study> study = store.FindStudy("study-key");
    ASSERT_TRUE(study.has_value());
    EXPECT_EQ(study->id, study_.id);
    EXPECT_EQ(study->space_json, R"({"dims":[]})");
    EXPECT_EQ(study->settings_json, R"({"strategy":"random"})");
    EXPECT_DOUBLE_EQ(study->created_at, study_.created_at);
    EXPECT_EQ(store.ListTrials(study_.id).size(), 1u);
    const std::optional<Machine> machine = store.GetMachine(machine_id_);
    ASSERT_TRUE(machine.has_value());
    EXPECT_EQ(machine->fingerprint_key, "fp-1");
    EXPECT_EQ(machine->fingerprint_json, R"({"cpu":"x"})");
    EXPECT_EQ(machine->context_json, R"({"governor":"performance"})");
    const std::optional<Workload> workload = store.GetWorkload(workload_id_);
    ASSERT_TRUE(workload.has_value());
    EXPECT_EQ(workload->name, "bert-base");
    EXPECT_EQ(workload->model_hash, "sha-1");
    EXPECT_EQ(workload->flops_per_item, 22.5e9);
    EXPECT_EQ(workload->info_json, R"({"seq_len":128})");
  }
}

TEST_F(StoreTest, TimestampsAreUnixSeconds) {
  const double before = static_cast<double>(time(nullptr)) - 1;
  Store store = OpenPopulated();
  EXPECT_GE(study_.created_at, before);
  EXPECT_LE(study_.created_at, before + 10);
}

TEST_F(StoreTest, MigratesAnEmptyFile) {
  WriteFile(DbPath(), "");
  Store store = Store::Open(DbPath(), OpenMode::kReadWrite);
  EXPECT_EQ(store.schema_version(), Store::LatestSchemaVersion());
  EXPECT_TRUE(store.ListStudies().empty());
  sqlite::Connection raw(DbPath(), sqlite::Access::kReadOnly);
  EXPECT_EQ(raw.QueryInt64("PRAGMA user_version"), Store::LatestSchemaVersion());
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.QueryInt64("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                           "('machines', 'workloads', 'studies', 'trials', 'measurements', "
                           "'recipes')"),
            6);
}

TEST_F(StoreTest, MigratesAnEmptySqliteDatabase) {
  {
    sqlite::Connection raw(DbPath(), sqlite::Access::kReadWrite);
    raw.Exec("PRAGMA user_version = 0");
  }
  EXPECT_EQ(Store::Open(DbPath(), OpenMode::kReadWrite).schema_version(),
            Store::LatestSchemaVersion());
}

TEST_F(StoreTest, NewerSchemaIsUnsupported) {
  OpenPopulated();
  {
    sqlite::Connection raw(DbPath(), sqlite::Access::kReadWrite);
    raw.Exec("PRAGMA user_version = " + std::to_string(Store::LatestSchemaVersion() + 1));
  }
  for (OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
    ExpectError([&] { Store::Open(DbPath(), mode); }, ErrorCode::kUnsupported, DbPath());
  }
}

TEST_F(StoreTest, RandomBytesAreCorrupt) {
  std::mt19937 random(42);
  std::string bytes(8192, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  WriteFile(DbPath(), bytes);
  for (OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
    ExpectError([&] { Store::Open(DbPath(), mode); }, ErrorCode::kCorrupt,
                "'" + DbPath() + "' is not an ipex-tune store: file is not a database");
  }
  std::ifstream in(DbPath(), std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(after, bytes) << "opening must not modify a file that is not ours";
}

TEST_F(StoreTest, TextFileIsCorrupt) {
  WriteFile(DbPath(),
            "schema: ipex-tune/recipe/v1\nworkload: {name: bert-base}\n" + std::string(600, '#'));
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadWrite); }, ErrorCode::kCorrupt,
              "is not an ipex-tune store");
}

TEST_F(StoreTest, OtherApplicationsDatabaseIsCorrupt) {
  {
    sqlite::Connection raw(DbPath(), sqlite::Access::kReadWrite);
    raw.Exec("CREATE TABLE notes (body TEXT)");
  }
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadWrite); }, ErrorCode::kCorrupt,
              "is not an ipex-tune store");
}

TEST_F(StoreTest, MissingDirectoryIsIo) {
  const std::string path = dir_.File("no/such/dir/a.db");
  ExpectError([&] { Store::Open(path, OpenMode::kReadWrite); }, ErrorCode::kIo,
              "cannot open database '" + path + "': unable to open database file");
}

TEST_F(StoreTest, UnwritableDirectoryIsIo) {
  const std::string locked = dir_.File("locked");
  ASSERT_EQ(mkdir(locked.c_str(), 0555), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  const std::string path = locked + "/a.db";
  auto attempt = [&]() -> int {
    try {
      Store::Open(path, OpenMode::kReadWrite);
    } catch (const Error& e) {
      const bool names_path = std::string(e.what()).find(path) != std::string::npos;
      return e.code() == ErrorCode::kIo && names_path ? 0 : 1;
    }
    return 2;
  };
  if (geteuid() != 0) {
    EXPECT_EQ(attempt(), 0);
    return;
  }
  // Root writes anywhere: drop to nobody in a child so the directory permissions apply.
  const int status = RunInChild([&] {
    if (setgid(65534) != 0 || setuid(65534) != 0) return 3;
    return attempt();
  });
  if (status == 3) GTEST_SKIP() << "cannot drop root privileges to test directory permissions";
  EXPECT_EQ(status, 0) << "1: wrong error, 2: no error";
}

TEST_F(StoreTest, ReadOnlyOpenOfMissingFileIsNotFound) {
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadOnly); }, ErrorCode::kNotFound, DbPath());
  EXPECT_FALSE(std::ifstream(DbPath()).good()) << "a read-only open must not create the file";
}

TEST_F(StoreTest, ReadOnlyOpenOfUninitialisedFileIsCorrupt) {
  WriteFile(DbPath(), "");
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadOnly); }, ErrorCode::kCorrupt,
              "not an ipex-tune store");
}

TEST_F(StoreTest, ReadOnlyStoreRefusesWrites) {
  OpenPopulated();
  Store reader = Store::Open(DbPath(), OpenMode::kReadOnly);
  const auto refused = [](auto&& f) { ExpectError(f, ErrorCode::kInvalidArgument, "read-only"); };
  refused([&] { reader.UpsertMachine("fp-2", "{}", "{}"); });
  refused([&] { reader.UpsertWorkload("w", "h", 1, "{}"); });
  refused([&] { reader.FindOrCreateStudy("other", workload_id_, machine_id_, "{}", "{}"); });
  refused([&] { reader.AcquireLease(study_.id, "h:1", 60); });
  refused([&] { reader.Heartbeat(study_.id, "h:1"); });
  refused([&] { reader.ReleaseLease(study_.id, "h:1"); });
  refused([&] { reader.RequeueRunningTrials(study_.id); });
  refused([&] { reader.AddTrial(study_.id, "{}", "h"); });
  refused([&] { reader.MarkTrialRunning(1, ""); });
  refused([&] { reader.FinishTrial(1, TrialStatus::kDone, "", 0, std::nullopt); });
  refused([&] { reader.AddRecipe(study_.id, 1, "", ""); });
  refused([&] { reader.SetStudyGoal(study_.id, StudyGoal{}); });
  refused([&] { reader.SetTrialInfeasible(1, ""); });
  EXPECT_EQ(reader.ListStudies().size(), 1u);
}

TEST_F(StoreTest, UpsertsAreIdempotentAndRefreshDetails) {
  Store store = OpenPopulated();
  EXPECT_EQ(store.UpsertMachine("fp-1", R"({"cpu":"x"})", R"({"governor":"powersave"})"),
            machine_id_);
  EXPECT_EQ(store.GetMachine(machine_id_)->context_json, R"({"governor":"powersave"})");
  EXPECT_NE(store.UpsertMachine("fp-2", "{}", "{}"), machine_id_);
  EXPECT_EQ(store.UpsertWorkload("bert-base", "sha-1", 23e9, "{}"), workload_id_);
  EXPECT_EQ(store.GetWorkload(workload_id_)->flops_per_item, 23e9);
  EXPECT_NE(store.UpsertWorkload("bert-base", "sha-2", 23e9, "{}"), workload_id_);
  EXPECT_FALSE(store.GetMachine(999).has_value());
  EXPECT_FALSE(store.GetWorkload(999).has_value());
}

TEST_F(StoreTest, FindOrCreateStudyIsIdempotent) {
  Store store = OpenPopulated();
  const Study again =
      store.FindOrCreateStudy("study-key", workload_id_, machine_id_, "{changed}", "{changed}");
  EXPECT_EQ(again.id, study_.id);
  EXPECT_EQ(again.space_json, study_.space_json);
  EXPECT_EQ(store.ListStudies().size(), 1u);
  const Study other = store.FindOrCreateStudy("key-2", workload_id_, machine_id_, "{}", "{}");
  EXPECT_NE(other.id, study_.id);
  const std::vector<Study> studies = store.ListStudies();
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_EQ(studies[0].id, study_.id);
  EXPECT_EQ(studies[1].id, other.id);
  EXPECT_EQ(store.GetStudy(other.id)->key, "key-2");
  EXPECT_FALSE(store.FindStudy("nope").has_value());
  ExpectError([&] { store.FindOrCreateStudy("key-3", 999, machine_id_, "{}", "{}"); },
              ErrorCode::kNotFound, "workload 999");
  ExpectError([&] { store.FindOrCreateStudy("key-3", workload_id_, 999, "{}", "{}"); },
              ErrorCode::kNotFound, "machine 999");
}

TEST_F(StoreTest, TrialsAreNumberedAndHashesAreUnique) {
  Store store = OpenPopulated();
  const Trial stock = store.AddTrial(study_.id, R"({"stock":true})", "stock", 0);
  EXPECT_EQ(stock.number, 0);
  EXPECT_EQ(stock.status, TrialStatus::kQueued);
  EXPECT_EQ(store.AddTrial(study_.id, "{}", "a").number, 1);
  EXPECT_EQ(store.AddTrial(study_.id, "{}", "b").number, 2);
  EXPECT_EQ(store.AddTrial(study_.id, "{}", "c", 10).number, 10);
  EXPECT_EQ(store.AddTrial(study_.id, "{}", "d").number, 11);
  ExpectError([&] { store.AddTrial(study_.id, "{}", "a"); }, ErrorCode::kInvalidArgument,
              "already has trial 1 with config hash a");
  ExpectError([&] { store.AddTrial(study_.id, "{}", "e", 2); }, ErrorCode::kInvalidArgument,
              "number 2");
  ExpectError([&] { store.AddTrial(999, "{}", "x"); }, ErrorCode::kNotFound, "study 999");

  // Numbering and hashes are per study.
  const Study other = store.FindOrCreateStudy("key-2", workload_id_, machine_id_, "{}", "{}");
  EXPECT_EQ(store.AddTrial(other.id, "{}", "a").number, 0);

  const std::vector<Trial> trials = store.ListTrials(study_.id);
  std::vector<int64_t> numbers;
  for (const Trial& t : trials) numbers.push_back(t.number);
  EXPECT_EQ(numbers, (std::vector<int64_t>{0, 1, 2, 10, 11}));
  const std::optional<Trial> found = store.FindTrial(study_.id, "stock");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, stock.id);
  EXPECT_EQ(found->config_json, R"({"stock":true})");
  EXPECT_EQ(store.GetTrial(stock.id)->config_hash, "stock");
  EXPECT_FALSE(store.FindTrial(study_.id, "zzz").has_value());
  EXPECT_FALSE(store.GetTrial(999).has_value());
}

TEST_F(StoreTest, RequeueRunningTrials) {
  Store store = OpenPopulated();
  const Trial a = store.AddTrial(study_.id, "{}", "a");
  const Trial b = store.AddTrial(study_.id, "{}", "b");
  const Trial c = store.AddTrial(study_.id, "{}", "c");
  store.AddTrial(study_.id, "{}", "d");
  store.MarkTrialRunning(a.id, "yaml-a");
  store.MarkTrialRunning(b.id, "yaml-b");
  store.MarkTrialRunning(c.id, "yaml-c");
  store.FinishTrial(c.id, TrialStatus::kFailed, "worker crashed", 1.5, std::nullopt);
  EXPECT_EQ(store.RequeueRunningTrials(study_.id), 2);
  EXPECT_EQ(store.RequeueRunningTrials(study_.id), 0);
  const std::vector<Trial> trials = store.ListTrials(study_.id);
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[0].status, TrialStatus::kQueued);
  EXPECT_EQ(trials[0].started_at, 0);
  EXPECT_EQ(trials[1].status, TrialStatus::kQueued);
  EXPECT_EQ(trials[2].status, TrialStatus::kFailed);
  EXPECT_EQ(trials[2].error, "worker crashed");
  EXPECT_EQ(trials[3].status, TrialStatus::kQueued);
  ExpectError([&] { store.MarkTrialRunning(999, ""); }, ErrorCode::kNotFound, "trial 999");
}

TEST_F(StoreTest, FinishTrialWithMeasurementRoundTripsEveryField) {
  Store store = OpenPopulated();
  const Trial trial = store.AddTrial(study_.id, R"({"dtype":"int8"})", "h1");
  store.MarkTrialRunning(trial.id, "schema: ipex-tune/recipe/v1\n");
  Measurement m;
  m.id = 777;        // ignored
  m.trial_id = 888;  // ignored
  m.scenario = "throughput";
  m.batch = 8;
  m.threads = 2;
  m.items_per_s = 1234.5;
  m.median_ms = 6.25;
  m.p90_ms = 7.5;
  m.p99_ms = std::numeric_limits<double>::quiet_NaN();  // not measured
  m.mean_ms = 6.5;
  m.stddev_ms = 0.125;
  m.cv = 0.03;
  m.samples = 90;
  m.noisy = true;
  m.accuracy_json = R"({"top1":0.76})";
  m.applied_json = R"({"fusions":["conv_relu"]})";
  m.raw_json = R"({"blocks":[1,2,3]})";
  m.load_before = 0.25;
  m.load_after = 1.5;
  store.FinishTrial(trial.id, TrialStatus::kDone, "", 3.25, m);

  const Trial done = *store.GetTrial(trial.id);
  EXPECT_EQ(done.status, TrialStatus::kDone);
  EXPECT_EQ(done.study_id, study_.id);
  EXPECT_EQ(done.number, trial.number);
  EXPECT_EQ(done.config_json, R"({"dtype":"int8"})");
  EXPECT_EQ(done.error, "");
  EXPECT_EQ(done.setup_s, 3.25);
  EXPECT_EQ(done.recipe_yaml, "schema: ipex-tune/recipe/v1\n");
  EXPECT_GT(done.started_at, 0);
  EXPECT_GE(done.finished_at, done.started_at);

  const std::vector<Measurement> stored = store.ListMeasurements(trial.id);
  ASSERT_EQ(stored.size(), 1u);
  const Measurement& s = stored[0];
  EXPECT_GT(s.id, 0);
  EXPECT_EQ(s.trial_id, trial.id);
  EXPECT_EQ(s.scenario, m.scenario);
  EXPECT_EQ(s.batch, m.batch);
  EXPECT_EQ(s.threads, m.threads);
  EXPECT_EQ(s.items_per_s, m.items_per_s);
  EXPECT_EQ(s.median_ms, m.median_ms);
  EXPECT_EQ(s.p90_ms, m.p90_ms);
  EXPECT_TRUE(std::isnan(s.p99_ms));
  EXPECT_EQ(s.mean_ms, m.mean_ms);
  EXPECT_EQ(s.stddev_ms, m.stddev_ms);
  EXPECT_EQ(s.cv, m.cv);
  EXPECT_EQ(s.samples, m.samples);
  EXPECT_EQ(s.noisy, m.noisy);
  EXPECT_EQ(s.accuracy_json, m.accuracy_json);
  EXPECT_EQ(s.applied_json, m.applied_json);
  EXPECT_EQ(s.raw_json, m.raw_json);
  EXPECT_EQ(s.load_before, 0.25);
  EXPECT_EQ(s.load_after, 1.5);
  EXPECT_EQ(done.infeasible, "");
}

TEST_F(StoreTest, LoadNotReadIsStoredAsNull) {
  Store store = OpenPopulated();
  const Trial trial = store.AddTrial(study_.id, "{}", "h1");
  store.FinishTrial(trial.id, TrialStatus::kDone, "", 1, Measurement{});
  const Measurement m = store.ListMeasurements(trial.id).at(0);
  EXPECT_TRUE(std::isnan(m.load_before));
  EXPECT_TRUE(std::isnan(m.load_after));
  sqlite::Connection raw(DbPath(), sqlite::Access::kReadOnly);
  EXPECT_EQ(raw.QueryInt64("SELECT count(*) FROM measurements WHERE load_before IS NULL AND "
                           "load_after IS NULL"),
            1);
}

TEST_F(StoreTest, StudyGoalIsTheLatestRunsAndRoundTrips) {
  {
    Store store = OpenPopulated();
    // A new study has the defaults: throughput, optimised within the budget, no targets.
    EXPECT_EQ(study_.goal.objective, "throughput");
    EXPECT_EQ(study_.goal.mode, "optimise");
    EXPECT_FALSE(study_.goal.latency_bound_ms.has_value());
    EXPECT_FALSE(study_.goal.min_speedup.has_value());
    EXPECT_EQ(store.GetStudy(study_.id)->goal.objective, "throughput");
    EXPECT_FALSE(study_.goal.max_accuracy_loss.has_value());
    store.SetStudyGoal(study_.id, StudyGoal{"p99", "satisfice", 12.5, 1.5, 0.01});
  }
  {
    Store reader = Store::Open(DbPath(), OpenMode::kReadOnly);
    const StudyGoal goal = reader.GetStudy(study_.id)->goal;
    EXPECT_EQ(goal.objective, "p99");
    EXPECT_EQ(goal.mode, "satisfice");
    EXPECT_EQ(goal.latency_bound_ms, 12.5);
    EXPECT_EQ(goal.min_speedup, 1.5);
    EXPECT_EQ(goal.max_accuracy_loss, 0.01);
  }
  Store store = Store::Open(DbPath(), OpenMode::kReadWrite);
  store.SetStudyGoal(study_.id,
                     StudyGoal{"p50", "optimise", std::nullopt, std::nullopt, std::nullopt});
  const StudyGoal goal = store.FindStudy("study-key")->goal;
  EXPECT_EQ(goal.objective, "p50");
  EXPECT_EQ(goal.mode, "optimise");
  EXPECT_FALSE(goal.latency_bound_ms.has_value());
  EXPECT_FALSE(goal.min_speedup.has_value());
  EXPECT_FALSE(goal.max_accuracy_loss.has_value());
  ExpectError([&] { store.SetStudyGoal(999, StudyGoal{}); }, ErrorCode::kNotFound, "study 999");
}

TEST_F(StoreTest, InfeasibleIsADoneTrialWithItsReason) {
  Store store = OpenPopulated();
  const Trial fast = store.AddTrial(study_.id, R"({"threads":2})", "h1");
  store.FinishTrial(fast.id, TrialStatus::kDone, "", 1, Measurement{},
                    "p99 25.00 ms exceeds the latency bound of 20 ms");
  Trial read = *store.GetTrial(fast.id);
  EXPECT_EQ(read.status, TrialStatus::kDone);
  EXPECT_EQ(read.error, "");
  EXPECT_EQ(read.infeasible, "p99 25.00 ms exceeds the latency bound of 20 ms");
  // A later run with another bound judges it again.
  store.SetTrialInfeasible(fast.id, "");
  EXPECT_EQ(store.GetTrial(fast.id)->infeasible, "");
  store.SetTrialInfeasible(fast.id, "p99 over 10 ms");
  EXPECT_EQ(store.ListTrials(study_.id).at(0).infeasible, "p99 over 10 ms");

  const Trial crashed = store.AddTrial(study_.id, R"({"threads":1})", "h2");
  ExpectError(
      [&] {
        store.FinishTrial(crashed.id, TrialStatus::kFailed, "crashed", 1, std::nullopt, "slow");
      },
      ErrorCode::kInvalidArgument, "only a done trial can be infeasible");
  EXPECT_EQ(store.GetTrial(crashed.id)->status, TrialStatus::kQueued);
  ExpectError([&] { store.SetTrialInfeasible(crashed.id, "slow"); }, ErrorCode::kInvalidArgument,
              "is queued, not done");
  ExpectError([&] { store.SetTrialInfeasible(999, ""); }, ErrorCode::kNotFound, "trial 999");
}

// A store written before objectives existed (schema 1) opens, migrates and keeps its data.
TEST_F(StoreTest, MigratesAVersion1StoreKeepingItsData) {
  {
    Store store = OpenPopulated();
    const Trial trial = store.AddTrial(study_.id, "{}", "h1");
    Measurement m;
    m.items_per_s = 42;
    store.FinishTrial(trial.id, TrialStatus::kDone, "", 1, m);
  }
  {
    // Back to the schema-1 layout: what an older ipex-tune left on disk.
    sqlite::Connection raw(DbPath(), sqlite::Access::kReadWrite);
    for (const char* column :
         {"objective", "mode", "latency_bound_ms", "min_speedup", "max_accuracy_loss"}) {
      raw.Exec(std::string("ALTER TABLE studies DROP COLUMN ") + column);
    }
    raw.Exec("ALTER TABLE trials DROP COLUMN infeasible");
    raw.Exec("ALTER TABLE measurements DROP COLUMN load_before");
    raw.Exec("ALTER TABLE measurements DROP COLUMN load_after");
    raw.Exec("PRAGMA user_version = 1");
  }
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadOnly); }, ErrorCode::kUnsupported,
              DbPath());
  Store store = Store::Open(DbPath(), OpenMode::kReadWrite);
  EXPECT_EQ(store.schema_version(), 3);
  const Study study = *store.FindStudy("study-key");
  EXPECT_EQ(study.goal.objective, "throughput");
  EXPECT_EQ(study.goal.mode, "optimise");
  EXPECT_FALSE(study.goal.latency_bound_ms.has_value());
  EXPECT_FALSE(study.goal.max_accuracy_loss.has_value());
  const Trial trial = store.ListTrials(study.id).at(0);
  EXPECT_EQ(trial.status, TrialStatus::kDone);
  EXPECT_EQ(trial.infeasible, "");
  const Measurement m = store.ListMeasurements(trial.id).at(0);
  EXPECT_EQ(m.items_per_s, 42);
  EXPECT_TRUE(std::isnan(m.load_before));
}

TEST_F(StoreTest, FinishTrialIsAllOrNothing) {
  Store store = OpenPopulated();
  const Trial trial = store.AddTrial(study_.id, "{}", "h1");
  ExpectError([&] { store.FinishTrial(trial.id, TrialStatus::kRunning, "", 0, std::nullopt); },
              ErrorCode::kInvalidArgument, "not final");
  ExpectError([&] { store.FinishTrial(999, TrialStatus::kDone, "", 0, Measurement{}); },
              ErrorCode::kNotFound, "trial 999");
  store.FinishTrial(trial.id, TrialStatus::kTimedOut, "timed out after 60 s", 0, std::nullopt);
  EXPECT_EQ(store.GetTrial(trial.id)->status, TrialStatus::kTimedOut);
  EXPECT_TRUE(store.ListMeasurements(trial.id).empty());
}

TEST_F(StoreTest, RecipesRoundTrip) {
  Store store = OpenPopulated();
  const Trial trial = store.AddTrial(study_.id, "{}", "h1");
  const int64_t first = store.AddRecipe(study_.id, trial.id, "yaml: 1\n", "out/r1.yaml");
  const int64_t second = store.AddRecipe(study_.id, trial.id, "yaml: 2\n", "out/r2.yaml");
  const std::vector<RecipeRow> recipes = store.ListRecipes(study_.id);
  ASSERT_EQ(recipes.size(), 2u);
  EXPECT_EQ(recipes[0].id, first);
  EXPECT_EQ(recipes[1].id, second);
  EXPECT_EQ(recipes[0].study_id, study_.id);
  EXPECT_EQ(recipes[0].trial_id, trial.id);
  EXPECT_EQ(recipes[0].yaml, "yaml: 1\n");
  EXPECT_EQ(recipes[0].path, "out/r1.yaml");
  EXPECT_GT(recipes[0].created_at, 0);
  ExpectError([&] { store.AddRecipe(study_.id, 999, "", ""); }, ErrorCode::kNotFound,
              "no trial 999");
}

TEST_F(StoreTest, LeaseHeldByAnotherOwnerIsBusy) {
  Store store = OpenPopulated();
  store.AcquireLease(study_.id, "host1:4242", 60);
  EXPECT_EQ(store.GetStudy(study_.id)->lease_owner, "host1:4242");
  ExpectError([&] { store.AcquireLease(study_.id, "host2:1", 60); }, ErrorCode::kBusy,
              "study " + std::to_string(study_.id) +
                  " is being tuned by host1:4242 (heartbeat 0 s ago); wait for it or stop it");
  // A live process on this host (this one) keeps its lease too.
  const std::string me = HostName() + ":" + std::to_string(getpid());
  const Study other = store.FindOrCreateStudy("key-2", workload_id_, machine_id_, "{}", "{}");
  store.AcquireLease(other.id, me, 60);
  ExpectError([&] { store.AcquireLease(other.id, "host2:1", 60); }, ErrorCode::kBusy, me);
  // The holder may take it again.
  store.AcquireLease(other.id, me, 60);
  ExpectError([&] { store.AcquireLease(999, me, 60); }, ErrorCode::kNotFound, "study 999");
}

TEST_F(StoreTest, StaleLeaseIsTakenOver) {
  Store store = OpenPopulated();
  store.AcquireLease(study_.id, "host1:4242", 60);
  const double first_heartbeat = store.GetStudy(study_.id)->lease_heartbeat;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  store.Heartbeat(study_.id, "host1:4242");
  EXPECT_GT(store.GetStudy(study_.id)->lease_heartbeat, first_heartbeat);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  store.AcquireLease(study_.id, "host2:7", 0.01);
  EXPECT_EQ(store.GetStudy(study_.id)->lease_owner, "host2:7");
  // The old holder learns it lost the study at its next heartbeat.
  ExpectError([&] { store.Heartbeat(study_.id, "host1:4242"); }, ErrorCode::kBusy, "host2:7");
}

TEST_F(StoreTest, LeaseOfDeadProcessOnThisHostIsTakenOver) {
  Store store = OpenPopulated();
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);  // reaped: the pid no longer exists
  const std::string dead = HostName() + ":" + std::to_string(child);
  store.AcquireLease(study_.id, dead, 3600);
  store.AcquireLease(study_.id, "host2:7", 3600);
  EXPECT_EQ(store.GetStudy(study_.id)->lease_owner, "host2:7");
}

TEST_F(StoreTest, ReleasedLeaseIsFree) {
  Store store = OpenPopulated();
  store.AcquireLease(study_.id, "host1:4242", 3600);
  store.ReleaseLease(study_.id, "host2:7");  // not the holder: no effect
  EXPECT_EQ(store.GetStudy(study_.id)->lease_owner, "host1:4242");
  store.ReleaseLease(study_.id, "host1:4242");
  const Study released = *store.GetStudy(study_.id);
  EXPECT_EQ(released.lease_owner, "");
  EXPECT_EQ(released.lease_heartbeat, 0);
  store.AcquireLease(study_.id, "host2:7", 3600);
  EXPECT_EQ(store.GetStudy(study_.id)->lease_owner, "host2:7");
  ExpectError([&] { store.Heartbeat(study_.id, "host1:4242"); }, ErrorCode::kBusy,
              "no longer leased");
}

TEST_F(StoreTest, WriteLockHeldBeyondTimeoutIsBusy) {
  OpenPopulated();
  sqlite::Connection other(DbPath(), sqlite::Access::kReadWrite);
  sqlite::Transaction holding(other, sqlite::Transaction::Kind::kImmediate);
  Store store = Store::Open(DbPath(), OpenMode::kReadWrite, StoreOptions{100});
  ExpectError([&] { store.AddTrial(study_.id, "{}", "h"); }, ErrorCode::kBusy,
              "'" + DbPath() + "' is locked");
  // Readers are not blocked by the writer.
  EXPECT_EQ(store.ListStudies().size(), 1u);
  EXPECT_EQ(Store::Open(DbPath(), OpenMode::kReadOnly).ListStudies().size(), 1u);
}

TEST_F(StoreTest, ExclusiveLockAtOpenIsBusy) {
  OpenPopulated();
  sqlite::Connection other(DbPath(), sqlite::Access::kReadWrite);
  // Outside WAL an exclusive transaction shuts readers out too: what a foreign tool could do.
  other.Exec("PRAGMA journal_mode = DELETE");
  other.Exec("BEGIN EXCLUSIVE");  // rolled back when `other` closes
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadOnly, StoreOptions{100}); },
              ErrorCode::kBusy, DbPath());
  ExpectError([&] { Store::Open(DbPath(), OpenMode::kReadWrite, StoreOptions{100}); },
              ErrorCode::kBusy, DbPath());
}

// One writer process adds and finishes trials in short transactions while two read-only
// connections in this process read without pause: no reader may ever see an error (the
// "database is locked" of Optuna's dashboard), and every snapshot must be consistent.
TEST_F(StoreTest, ReadersNeverFailWhileAWriterWorks) {
  OpenPopulated();
  const int64_t study_id = study_.id;
  const std::string path = DbPath();

  const pid_t writer = fork();
  if (writer == 0) {
    int status = 0;
    try {
      Store store = Store::Open(path, OpenMode::kReadWrite);
      const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
      for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
        const Trial trial = store.AddTrial(study_id, "{}", "hash-" + std::to_string(i));
        store.MarkTrialRunning(trial.id, "yaml");
        Measurement m;
        m.scenario = "latency";
        m.samples = i;
        store.FinishTrial(trial.id, TrialStatus::kDone, "", 0.5, m);
      }
    } catch (const std::exception& e) {
      std::cerr << "writer: " << e.what() << "\n";
      status = 1;
    }
    _exit(status);
  }
  ASSERT_GT(writer, 0);

  std::atomic<bool> writer_done{false};
  struct ReaderResult {
    int reads = 0;
    std::string error;
  };
  std::vector<ReaderResult> results(2);
  auto read_loop = [&](ReaderResult& result) {
    try {
      Store reader = Store::Open(path, OpenMode::kReadOnly);
      size_t seen = 0;
      // One more pass after the writer ends, so the last pass sees everything.
      for (bool last = false; !last;) {
        last = writer_done.load();
        const std::vector<Trial> trials = reader.ListTrials(study_id);
        if (trials.size() < seen) result.error = "trial count went backwards";
        seen = trials.size();
        for (size_t i = 0; i < trials.size(); ++i) {
          if (trials[i].number != static_cast<int64_t>(i)) result.error = "gap in numbers";
        }
        // A done trial has its measurement: both were written in one transaction.
        for (auto it = trials.rbegin(); it != trials.rend(); ++it) {
          if (it->status != TrialStatus::kDone) continue;
          if (reader.ListMeasurements(it->id).size() != 1) result.error = "done, no measurement";
          break;
        }
        ++result.reads;
      }
    } catch (const std::exception& e) {
      result.error = e.what();
    }
  };
  std::thread first(read_loop, std::ref(results[0]));
  std::thread second(read_loop, std::ref(results[1]));
  int status = 0;
  waitpid(writer, &status, 0);
  writer_done = true;
  first.join();
  second.join();

  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the writer failed";
  for (const ReaderResult& result : results) {
    EXPECT_EQ(result.error, "");
    EXPECT_GT(result.reads, 1);
  }
  Store store = Store::Open(path, OpenMode::kReadOnly);
  const std::vector<Trial> trials = store.ListTrials(study_id);
  ASSERT_GT(trials.size(), 10u);
  for (const Trial& trial : trials) {
    ASSERT_EQ(trial.status, TrialStatus::kDone);
    const std::vector<Measurement> measurements = store.ListMeasurements(trial.id);
    ASSERT_EQ(measurements.size(), 1u);
    EXPECT_EQ(measurements[0].samples, trial.number);
  }
  std::cout << "writer: " << trials.size() << " trials; reads: " << results[0].reads << " + "
            << results[1].reads << "\n";
}

}  // namespace
}  // namespace ipt::db

namespace ipt::db {
namespace {

TEST(StoreMeasurementTest, FinalMeasurementsAddToAFinishedTrial) {
  testing_util::ScratchDir dir;
  Store store = Store::Open(dir.File("m.db"), OpenMode::kReadWrite);
  int64_t machine = store.UpsertMachine("fp", "{}", "{}");
  int64_t workload = store.UpsertWorkload("resnet50", "h", 8e9, "{}");
  Study study = store.FindOrCreateStudy("k", workload, machine, "{}", "{}");
  Trial trial = store.AddTrial(study.id, R"({"dtype":"fp32"})", "hash");
  Measurement search;
  search.scenario = "latency";
  search.items_per_s = 10;
  store.FinishTrial(trial.id, TrialStatus::kDone, "", 1.0, search);
  Measurement final_measurement;
  final_measurement.scenario = "final";
  final_measurement.items_per_s = 11;
  final_measurement.raw_json = R"({"blocks":[]})";
  store.AddMeasurement(trial.id, final_measurement);
  auto measurements = store.ListMeasurements(trial.id);
  ASSERT_EQ(measurements.size(), 2u);
  EXPECT_EQ(measurements[0].scenario, "latency");
  EXPECT_EQ(measurements[1].scenario, "final");
  EXPECT_EQ(measurements[1].items_per_s, 11);
  EXPECT_EQ(measurements[1].raw_json, R"({"blocks":[]})");
  Store reader = Store::Open(dir.File("m.db"), OpenMode::kReadOnly);
  testing_util::ExpectError([&] { reader.AddMeasurement(trial.id, final_measurement); },
                            ErrorCode::kInvalidArgument, "AddMeasurement");
}

}  // namespace
}  // namespace ipt::db
