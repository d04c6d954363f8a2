// Typed questions to ipex-tune-worker: the tuner's and the front end's only way to reach
// libtorch. Each call starts one worker process and reads its JSON lines.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tuner/worker_process.h"

namespace ipt::tuner {

struct WorkerInfo {
  std::string libtorch;
  std::string onednn;
  std::string onednn_isa;
  std::string aten_cpu_capability;
};

// Which model a worker builds: a registered workload, or a user's TorchScript file with its
// declared inputs (NAME:SHAPE[:DTYPE]).
struct WorkloadSource {
  std::string workload;
  std::string model_path;
  std::vector<std::string> inputs;
  // The worker arguments that select it: --workload W, or --model F --input I...
  std::vector<std::string> ToArgs() const;
};

struct WorkloadInfo {
  std::string name;  // "resnet50", or "model:<file stem>"
  std::string model_hash;
  double flops_per_item = 0;  // 0 when unknown (user models)
  nlohmann::json inputs;      // ["input:1x3x224x224:float32", ...]
};

// Settings passed to the worker: the timing protocol (see core/measure.h for their meaning) and
// the size of the evaluation set accuracy is judged on.
struct MeasureSettings {
  double warmup_s = 0.5;
  double block_s = 0.3;
  int64_t min_blocks = 5;
  double min_time_s = 2.0;
  int64_t min_calls = 10;
  double max_time_s = 120;
  // Items of the evaluation set at least (workloads::EvalSetOfAtLeast); 0: the default set.
  int64_t eval_items = 0;
  // Trials only: the least share of a trial's worker time spent measuring. The worker measures
  // at least its set-up time x share / (1 - share), so a model that is slow to start, build or
  // check is measured longer rather than costing more than it measures. 0: min_time_s alone.
  // 0.75 rather than 0.7: the worker cannot see its own exit nor the tuner's work per trial
  // (0.4 s on ResNet-50), which count in a study's time too.
  double measure_share = 0.75;
  // The options of every measuring mode (bench, trial).
  std::vector<std::string> ToArgs() const;
  // ToArgs() and the options only `trial` takes.
  std::vector<std::string> TrialArgs() const;
  // Settings for a measuring budget of `seconds` per candidate: blocks shrink so that the
  // minimum block count still fits, and warm-up stays at most half the budget.
  static MeasureSettings ForBudget(double seconds);
};

// What one worker run produced: its "result" line, or why there is none.
struct WorkerReply {
  bool ok = false;
  nlohmann::json result;   // the "result" line when ok
  std::string error_code;  // the worker's error code, or "crashed", "timed_out", "cancelled"
  std::string error;       // one line for a person
  WorkerOutcome outcome;
};

class WorkerClient {
 public:
  // `executable`: the worker binary. `env` and `unset_env` apply to every worker started.
  explicit WorkerClient(std::string executable);

  // The worker beside the running program, or $IPT_WORKER when set.
  static std::string DefaultExecutable();

  const std::string& executable() const { return executable_; }

  // Throws ipt::Error (kWorkerFailed, or the worker's own code) when the worker cannot answer.
  WorkerInfo Info() const;
  // Builds the model and runs one batch in a worker: a missing file, a bad archive, an unknown
  // workload or a wrong input shape is an ipt::Error here, before any trial.
  WorkloadInfo DryRun(const WorkloadSource& source, int64_t batch) const;

  // Runs one worker mode to completion; progress lines go to `on_progress`.
  WorkerReply Run(const std::vector<std::string>& args, const std::string& stdin_text,
                  const std::vector<int>& cpus, const std::map<std::string, std::string>& env,
                  std::chrono::milliseconds timeout,
                  const std::function<void(const nlohmann::json&)>& on_progress,
                  const std::atomic<bool>* cancel) const;

 private:
  nlohmann::json Ask(const std::vector<std::string>& args, const std::string& type) const;
  std::string executable_;
};

}  // namespace ipt::tuner
