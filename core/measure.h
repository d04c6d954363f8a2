// The measuring protocol: warm-up excluded, then repeated timed blocks of calls until both a
// minimum duration and a minimum count are met. Several candidates are measured interleaved
// (one block of each in turn), so drift of the machine hits them all alike.
//
// No libtorch here: a candidate is any callable that runs one batch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ipt::core {

struct MeasureOptions {
  double warmup_s = 0.5;  // per candidate, excluded; at least `warmup_calls` calls
  int64_t warmup_calls = 2;
  double block_s = 0.3;      // a block runs calls until it lasts this long
  int64_t min_blocks = 5;    // statistics are over blocks, not autocorrelated single calls
  double min_total_s = 2.0;  // per candidate, over all blocks
  int64_t min_calls = 10;    // per candidate
  double max_total_s = 120;  // per candidate: a ceiling on slow models, reported when reached
  // Called once between the warm-up and the first timed block: processes measured side by side
  // (the tuner's instances) meet here, so their timed blocks overlap.
  std::function<void()> before_timing;
};

struct Block {
  int64_t calls = 0;
  double seconds = 0;
};

struct MeasureResult {
  int64_t items_per_call = 0;
  std::vector<double> latencies_ms;  // every timed call
  std::vector<Block> blocks;
  bool hit_time_ceiling = false;

  double ItemsPerSecond() const;  // median over blocks of items / second
  double MedianMs() const;
  double QuantileMs(double q) const;
  double MeanMs() const;
  double StddevMs() const;
  double BlockCv() const;  // coefficient of variation of block throughputs
  // True when the measurement should not be trusted as is (block CV above 5%).
  bool Noisy() const;
};

// The timed seconds that make `share` of a candidate's wall time measuring when `overhead_s` of it
// is not (process start, model build, optimisation, accuracy check, warm-up): overhead * share /
// (1 - share). 0 when `share` is not in (0, 1).
double MeasuringForShare(double overhead_s, double share);

using Candidate = std::function<void()>;
// Called after each block: candidate index, blocks done for it, seconds spent measuring so far.
using MeasureProgress = std::function<void(size_t candidate, size_t blocks, double elapsed_s)>;

// Measures every candidate, interleaved block by block. `items_per_call[i]` is the batch of i.
std::vector<MeasureResult> MeasureInterleaved(const std::vector<Candidate>& candidates,
                                              const std::vector<int64_t>& items_per_call,
                                              const MeasureOptions& options,
                                              const MeasureProgress& progress = {});

}  // namespace ipt::core
