// `ipex-tune bench`: recipes and a baseline measured side by side in one worker, interleaved,
// each reported with its ratio to the baseline. Human table by default, `--json` for CI.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tuner/worker_client.h"

namespace ipt::app {

inline constexpr int kBenchJsonSchemaVersion = 1;

struct BenchOptions {
  tuner::WorkloadSource source;
  std::vector<std::string> recipes;
  std::string baseline = "stock";
  int64_t batch = 0;    // 0: the first recipe's
  int64_t threads = 0;  // CPUs given to the run; 0: every allowed CPU
  bool json = false;
  // latency: a multi-stream recipe cuts each batch over its streams; throughput: every stream
  // runs a batch of its own at once (items/s of all streams busy).
  std::string scenario = "latency";
  tuner::MeasureSettings measure;
};

// Returns the process exit status.
int RunBench(const BenchOptions& options, const std::atomic<bool>& cancel);

}  // namespace ipt::app
