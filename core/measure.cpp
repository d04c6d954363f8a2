#include "core/measure.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "base/stats.h"

namespace ipt::core {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

double MeasureResult::ItemsPerSecond() const {
  std::vector<double> rates;
  for (const Block& b : blocks)
    rates.push_back(static_cast<double>(b.calls * items_per_call) / b.seconds);
  return rates.empty() ? 0 : stats::Median(rates);
}

double MeasureResult::MedianMs() const { return stats::Median(latencies_ms); }
double MeasureResult::QuantileMs(double q) const { return stats::Quantile(latencies_ms, q); }
double MeasureResult::MeanMs() const { return stats::Mean(latencies_ms); }
double MeasureResult::StddevMs() const { return stats::Stddev(latencies_ms); }

double MeasureResult::BlockCv() const {
  std::vector<double> rates;
  for (const Block& b : blocks) rates.push_back(static_cast<double>(b.calls) / b.seconds);
  return stats::CoefficientOfVariation(rates);
}

bool MeasureResult::Noisy() const { return BlockCv() > 0.05; }

double MeasuringForShare(double overhead_s, double share) {
  if (!(share > 0 && share < 1) || !(overhead_s > 0)) return 0;
  return overhead_s * share / (1 - share);
}

std::vector<MeasureResult> MeasureInterleaved(const std::vector<Candidate>& candidates,
                                              const std::vector<int64_t>& items_per_call,
                                              const MeasureOptions& options,
                                              const MeasureProgress& progress) {
  if (candidates.size() != items_per_call.size() || candidates.empty()) {
    throw Error(ErrorCode::kInternal, "MeasureInterleaved needs one batch size per candidate");
  }
  for (const Candidate& run : candidates) {
    auto start = Clock::now();
    for (int64_t calls = 0;
         calls < options.warmup_calls || Seconds(start, Clock::now()) < options.warmup_s; ++calls) {
      run();
    }
  }
  if (options.before_timing) options.before_timing();
  std::vector<MeasureResult> results(candidates.size());
  std::vector<double> measured_s(candidates.size(), 0.0);
  for (size_t i = 0; i < candidates.size(); ++i) results[i].items_per_call = items_per_call[i];
  auto met_minimums = [&](size_t i) {
    const MeasureResult& r = results[i];
    return static_cast<int64_t>(r.blocks.size()) >= options.min_blocks &&
           measured_s[i] >= options.min_total_s &&
           static_cast<int64_t>(r.latencies_ms.size()) >= options.min_calls;
  };
  auto satisfied = [&](size_t i) {
    return measured_s[i] >= options.max_total_s || met_minimums(i);
  };
  auto all_satisfied = [&] {
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (!satisfied(i)) return false;
    }
    return true;
  };
  double elapsed = 0;
  while (!all_satisfied()) {
    // Every candidate gets a block each round, even one already satisfied, so that all of
    // them see the same machine conditions and end with comparable block counts.
    for (size_t i = 0; i < candidates.size(); ++i) {
      MeasureResult& r = results[i];
      if (measured_s[i] >= options.max_total_s) continue;
      Block block;
      auto block_start = Clock::now();
      do {
        auto call_start = Clock::now();
        candidates[i]();
        auto call_end = Clock::now();
        r.latencies_ms.push_back(Seconds(call_start, call_end) * 1e3);
        ++block.calls;
        block.seconds = Seconds(block_start, call_end);
      } while (block.seconds < options.block_s);
      r.blocks.push_back(block);
      measured_s[i] += block.seconds;
      elapsed += block.seconds;
      if (progress) progress(i, r.blocks.size(), elapsed);
    }
  }
  for (size_t i = 0; i < candidates.size(); ++i) results[i].hit_time_ceiling = !met_minimums(i);
  return results;
}

}  // namespace ipt::core
