// The SQLite store of every study, trial and measurement, keyed by machine fingerprint.
//
// Contract:
// - One writer per study: the tuner holds a lease (owner + heartbeat) on its study; a second
//   tuner gets ipt::Error(kBusy) naming the holder. Readers (the GUI, `ipex-tune report`) open
//   the file with OpenMode::kReadOnly and never block the writer (WAL mode).
// - Every write is one short transaction; a crash loses at most the write in flight.
// - Schema changes are ordered migrations recorded in `PRAGMA user_version`; opening a file
//   written by a newer ipex-tune throws kUnsupported rather than guessing.
// - Errors: a path that cannot be opened or created throws kIo, a file that is not an ipex-tune
//   store (or is damaged) throws kCorrupt, both naming the path.
// - A Store is used from one thread at a time (it owns one connection).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ipt::db {

enum class OpenMode { kReadWrite, kReadOnly };

enum class TrialStatus { kQueued, kRunning, kDone, kFailed, kPruned, kTimedOut };
// "queued", "running", "done", "failed", "pruned", "timed_out": the values stored in the file.
const char* ToString(TrialStatus status);
// Accepts the names ToString gives, and "timed-out" as well.
std::optional<TrialStatus> ParseTrialStatus(const std::string& s);

struct Machine {
  int64_t id = 0;
  std::string fingerprint_key;   // hash of what changes results (CPU, ISA, topology, versions)
  std::string fingerprint_json;  // the fields behind the key
  std::string context_json;      // memory, kernel, governor: stored, not part of the key
};

struct Workload {
  int64_t id = 0;
  std::string name;
  std::string model_hash;
  double flops_per_item = 0;
  std::string info_json;
};

// What a study optimises and the targets it must meet, as its latest run asked. The tuner owns
// the vocabulary; the store keeps the spellings it is given.
struct StudyGoal {
  std::string objective = "throughput";  // throughput, p50, p90, p99
  // optimise: use the whole budget; satisfice: stop at the first trial that meets the targets.
  std::string mode = "optimise";
  std::optional<double> latency_bound_ms;
  std::optional<double> min_speedup;        // on the objective, against the stock baseline
  std::optional<double> max_accuracy_loss;  // tolerable loss against the fp32 reference, [0, 1]
};

struct Study {
  int64_t id = 0;
  std::string key;  // identifies (workload, model hash, inputs, space, fingerprint key)
  int64_t workload_id = 0;
  int64_t machine_id = 0;
  std::string space_json;
  std::string settings_json;  // strategy, objective, budget: what the command asked for
  double created_at = 0;      // Unix seconds
  std::string lease_owner;    // empty when nobody holds the study
  double lease_heartbeat = 0;
  StudyGoal goal;  // of the latest run (SetStudyGoal); a new study has the defaults
};

struct Trial {
  int64_t id = 0;
  int64_t study_id = 0;
  int64_t number = 0;  // 0 is the stock baseline, then 1, 2, ... in the order proposed
  std::string config_json;
  std::string config_hash;
  TrialStatus status = TrialStatus::kQueued;
  std::string error;  // why a failed, pruned or timed-out trial did not give a result
  double started_at = 0;
  double finished_at = 0;
  double setup_s = 0;       // process start, model build and optimise, apart from measuring
  std::string recipe_yaml;  // the recipe the worker ran
  // A done trial that misses a hard target (the latency bound): why. Empty for every other.
  std::string infeasible;
};

struct Measurement {
  int64_t id = 0;
  int64_t trial_id = 0;
  std::string scenario;  // "latency" or "throughput"
  int64_t batch = 0;
  int64_t threads = 0;
  double items_per_s = 0;
  double median_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double mean_ms = 0;
  double stddev_ms = 0;
  double cv = 0;  // coefficient of variation of the block throughputs
  // A figure that was not measured may be NaN: it is stored as NULL and reads back as NaN.
  int64_t samples = 0;
  bool noisy = false;
  std::string accuracy_json;
  std::string applied_json;  // what the core really did
  std::string raw_json;      // per-block figures and latency samples
  // The machine's 1-minute load average when the measurement's worker started and ended; NaN
  // (NULL in the file) when it was not read.
  double load_before = std::numeric_limits<double>::quiet_NaN();
  double load_after = std::numeric_limits<double>::quiet_NaN();
};

struct RecipeRow {
  int64_t id = 0;
  int64_t study_id = 0;
  int64_t trial_id = 0;
  std::string yaml;
  std::string path;
  double created_at = 0;
};

struct StoreOptions {
  // How long a statement waits for a lock held by another connection (another writer, or a
  // checkpoint) before throwing kBusy. Longer rides out more contention; shorter reports a
  // stuck writer sooner.
  int busy_timeout_ms = 5000;
};

class Store {
 public:
  // Opens (kReadWrite: creates and migrates) the store at `path`. kReadOnly needs an existing,
  // initialised store (kNotFound when the file is missing, kCorrupt when it was never
  // initialised) and never changes the file, so a store with an older schema throws
  // kUnsupported until a read-write open migrates it. A file whose schema is newer than this
  // build's throws kUnsupported; one that is not a database, or not ours, throws kCorrupt; a lock
  // held by another connection beyond the busy timeout throws kBusy. Every error names the path.
  static Store Open(const std::string& path, OpenMode mode);
  static Store Open(const std::string& path, OpenMode mode, const StoreOptions& options);
  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::string& path() const;
  int schema_version() const;
  static int LatestSchemaVersion();

  // Writes (kReadWrite only; a read-only store throws kInvalidArgument).
  int64_t UpsertMachine(const std::string& fingerprint_key, const std::string& fingerprint_json,
                        const std::string& context_json);
  int64_t UpsertWorkload(const std::string& name, const std::string& model_hash,
                         double flops_per_item, const std::string& info_json);
  // Returns the study with `key`, creating it with the other fields when there is none (an
  // existing study keeps its fields). Throws kNotFound for an unknown workload or machine.
  Study FindOrCreateStudy(const std::string& key, int64_t workload_id, int64_t machine_id,
                          const std::string& space_json, const std::string& settings_json);

  // Takes the study's lease for `owner` ("host:pid"). The lease is free when nobody holds it,
  // when its heartbeat is older than `stale_after_s`, or when its holder is a process on this
  // host that no longer runs. Otherwise throws kBusy naming the holder.
  // The owner that already holds the lease may take it again. The check and the take are one
  // transaction, so two tuners racing for a free study cannot both win.
  void AcquireLease(int64_t study_id, const std::string& owner, double stale_after_s);
  // Refreshes the heartbeat. Throws kBusy when `owner` no longer holds the lease (it went stale
  // and another tuner took it over): the caller must stop writing to the study.
  void Heartbeat(int64_t study_id, const std::string& owner);
  // Frees the lease if `owner` holds it; does nothing otherwise.
  void ReleaseLease(int64_t study_id, const std::string& owner);

  // Trials left `running` by a tuner that died go back to `queued`; returns how many.
  int RequeueRunningTrials(int64_t study_id);
  // Inserts a queued trial with the next number (or `number` when given). Throws
  // kInvalidArgument if the study already has a trial with this config hash or this number.
  // The next number is one more than the study's largest, or 0 for a study with no trial yet
  // (the tuner adds the stock baseline first, explicitly as number 0).
  Trial AddTrial(int64_t study_id, const std::string& config_json, const std::string& config_hash,
                 std::optional<int64_t> number = std::nullopt);
  void MarkTrialRunning(int64_t trial_id, const std::string& recipe_yaml);
  // Records the end of a trial and, when given, its measurement, in one transaction. `status`
  // must be a final one (done, failed, pruned, timed-out), else kInvalidArgument. The
  // measurement's id and trial_id are ignored: it is stored under `trial_id`.
  // `infeasible`, when not empty, marks a done trial that misses a hard target, with the reason
  // (kInvalidArgument for another status).
  void FinishTrial(int64_t trial_id, TrialStatus status, const std::string& error, double setup_s,
                   const std::optional<Measurement>& measurement,
                   const std::string& infeasible = "");
  // Marks a done trial infeasible with `reason`, or feasible again with an empty reason: a
  // resumed study judges its trials by the targets of the run that resumes it. kNotFound for an
  // unknown trial, kInvalidArgument for a reason on a trial that is not done.
  void SetTrialInfeasible(int64_t trial_id, const std::string& reason);
  // Records the goal of the run that tuned the study now. kNotFound for an unknown study.
  void SetStudyGoal(int64_t study_id, const StudyGoal& goal);
  // Throws kNotFound unless `trial_id` is a trial of `study_id`.
  // A further measurement of a trial (the final interleaved comparison, scenario "final").
  void AddMeasurement(int64_t trial_id, const Measurement& measurement);
  int64_t AddRecipe(int64_t study_id, int64_t trial_id, const std::string& yaml,
                    const std::string& path);

  // Reads.
  std::optional<Study> FindStudy(const std::string& key) const;
  std::optional<Study> GetStudy(int64_t study_id) const;
  std::vector<Study> ListStudies() const;  // by id
  std::optional<Machine> GetMachine(int64_t machine_id) const;
  std::optional<Workload> GetWorkload(int64_t workload_id) const;
  std::optional<Trial> GetTrial(int64_t trial_id) const;
  std::vector<Trial> ListTrials(int64_t study_id) const;  // by number
  std::optional<Trial> FindTrial(int64_t study_id, const std::string& config_hash) const;
  std::vector<Measurement> ListMeasurements(int64_t trial_id) const;  // by id
  std::vector<RecipeRow> ListRecipes(int64_t study_id) const;         // by id

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipt::db
