// A tuning study, end to end: fingerprint the machine, find or create the study in the store,
// measure the stock baseline and each candidate in its own worker process, store every result,
// pick the winner and export its recipe. Running the same study again resumes it: finished
// trials are neither lost nor run again.
//
// Contract: the study's store is written only from the thread that calls RunStudy (the lease
// makes that one writer per study across processes). Observers are called on that thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/store.h"
#include "tuner/objective.h"
#include "tuner/worker_client.h"

namespace ipt::tuner {

struct StudyOptions {
  WorkloadSource source;
  int64_t batch = 1;
  std::string db_path = "ipex-tune.db";
  std::string export_path;  // empty: "<workload>-recipe.yaml" in the working directory
  int64_t max_trials = 0;   // finished trials other than the baseline; 0 means the whole space
  std::string space_path;   // YAML search space; empty: the workload's default
  std::string strategy = "grid";  // grid, random, coordinate, tpe
  uint64_t seed = 0;              // for random and tpe
  // What to optimise and the targets to meet (objective.h). The goal is not part of the study's
  // identity: a study resumed with another goal judges its stored trials by the new one.
  Goal goal;
  bool keep_unsupported = false;  // keep bf16 on CPUs without avx512_bf16
  // Leading candidates re-measured interleaved with stock at the end; 0 skips the comparison.
  int64_t finalists = 3;
  // Wall-time budget of this run in seconds, counted from its start (0: none). Checked between
  // trials: a trial that started runs to its end, and the final comparison still runs.
  double time_limit_s = 0;
  MeasureSettings measure;
  std::chrono::seconds trial_timeout{600};
  std::string worker = WorkerClient::DefaultExecutable();
};

// One trial as a table shows it: typed, read back from the store.
struct TrialSummary {
  int64_t number = 0;
  std::string config;       // Describe(candidate)
  std::string config_json;  // the candidate itself
  std::string status;       // store status: done, failed, timed_out, ...
  db::TrialStatus status_value = db::TrialStatus::kQueued;
  std::string error;
  double items_per_s = 0;
  double median_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double cv = 0;
  bool noisy = false;
  std::string noise;       // why it is noisy: block CV, other load on the machine
  std::string infeasible;  // a done trial that misses the latency bound or accuracy target: why
  double setup_s = 0;
  double measure_s = 0;
  // The ratio to the baseline on the study's objective (Speedup), above 1 when better.
  std::optional<double> vs_stock;
  // The search measurement's accuracy against the fp32 reference, as the worker wrote it
  // (docs/accuracy.md); an empty object for results stored before it existed.
  nlohmann::json accuracy;

  bool done() const { return status_value == db::TrialStatus::kDone; }
  Figures figures() const { return {items_per_s, median_ms, p90_ms, p99_ms}; }
};

struct StudyResult {
  int64_t study_id = 0;
  Goal goal;  // what this run optimised and its targets
  bool interrupted = false;
  int64_t trials_resumed = 0;  // finished before this run and kept
  std::vector<TrialSummary> trials;
  std::optional<int64_t> best_trial;  // number of the winner
  std::string recipe_path;            // empty when nothing was exported
  // The final interleaved comparison: the winner against stock with its interval, and which
  // differences between finalists are significant.
  std::vector<std::string> final_report;
  // When the winner runs in an environment of its own (allocator, OpenMP variables): stock in
  // the default environment, stock in the winner's, and the winner, so that a reader sees how
  // much of the gain came from the environment and how much from the core.
  std::vector<std::string> environment_report;
  // Satisfice mode: the first trial found to meet every target, where the search stopped.
  std::optional<int64_t> met_by;
  // Whether the exported winner meets every target: the latency bound and the accuracy target
  // (always, since an infeasible trial never wins) and min_speedup on its reported ratio to stock
  // (the final comparison's when it ran). Without targets: true. Without a winner: false.
  bool targets_met = false;
  // Lines for a person about the targets: which were met, and why not.
  std::vector<std::string> target_report;
};

// The trial numbers OnTrialProgress gives for work after the search that measures several
// candidates at once.
inline constexpr int64_t kFinalComparisonProgress = -1;
inline constexpr int64_t kEnvironmentSplitProgress = -2;

class StudyObserver {
 public:
  virtual ~StudyObserver() = default;
  virtual void OnMessage(const std::string& text) {}
  // `index` counts candidates from 1 over the study's `total` budget; 0 is the stock baseline.
  virtual void OnTrialStarted(int64_t number, const std::string& config, size_t index,
                              size_t total) {}
  // `number` is kFinalComparisonProgress or kEnvironmentSplitProgress after the search.
  virtual void OnTrialProgress(int64_t number, const nlohmann::json& progress) {}
  virtual void OnTrialFinished(const TrialSummary& trial) {}
};

// Throws ipt::Error for what stops a study before it starts (store unwritable or corrupt,
// unknown workload, study leased by another tuner). A failed trial is a stored result.
StudyResult RunStudy(const StudyOptions& options, StudyObserver& observer,
                     const std::atomic<bool>& cancel);

}  // namespace ipt::tuner
