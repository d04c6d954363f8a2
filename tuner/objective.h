// What a study optimises and the targets its winner must meet: how a measurement becomes the
// one number that strategies and the final comparison rank, which trials are infeasible, and
// when a satisficing study may stop.
//
// Latencies are those of one call (a batch of `batch` items), as the worker measures them: the
// time each item of that batch waits for its result. Throughput is items/s.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/store.h"
#include "recipes/recipe.h"

namespace ipt::tuner {

using recipes::Objective;

// The figures of one measurement that objectives and targets read.
struct Figures {
  double items_per_s = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
};

// "throughput", "p50", "p90", "p99": the spellings --objective takes.
const std::vector<std::string>& ObjectiveNames();
bool IsLatency(Objective objective);
// The objective's figure: items/s, or the percentile in ms.
double ObjectiveValue(Objective objective, const Figures& figures);
// Higher is better, as strategies want it: items/s, or minus the percentile.
double Score(Objective objective, const Figures& figures);
// "items/s", "p99 ms": the unit of ObjectiveValue.
std::string ObjectiveUnit(Objective objective);
// "throughput (items/s, higher is better)", "p99 latency (ms per call, lower is better)".
std::string DescribeObjective(Objective objective);
// The ratio of `candidate` to `stock` on the objective, above 1 when the candidate is better:
// items/s over stock's, or stock's percentile over the candidate's. nullopt when a figure it
// divides by is not positive.
std::optional<double> Speedup(Objective objective, const Figures& candidate, const Figures& stock);

// One value per timed block of a worker's measurement (its "blocks" and "latencies_ms"), for
// comparing candidates over blocks rather than over autocorrelated single calls: the block's
// items/s, or the objective percentile of the calls in that block. A block has as many calls
// as fit in its duration, so with a few calls per block a high percentile is close to the
// block's slowest call. Blocks whose calls are missing from "latencies_ms" are skipped.
std::vector<double> BlockValues(Objective objective, const nlohmann::json& measurement,
                                int64_t batch);

struct Goal {
  Objective objective = Objective::kThroughput;
  // A hard target: a trial over it is stored as done but infeasible and never wins. It applies
  // to the objective percentile, or to p99 when the objective is throughput.
  std::optional<double> latency_bound_ms;
  // A target on the speedup against the stock baseline (Speedup on the objective).
  std::optional<double> min_speedup;
  // Satisfice: stop the search at the first trial that meets every target. Otherwise optimise
  // within the budget. Needs a target.
  bool stop_when_met = false;

  // Throws ipt::Error(kInvalidArgument) for a bound or speedup that is not a positive finite
  // number, or stop_when_met without a target.
  void Validate() const;
  bool HasTargets() const { return latency_bound_ms || min_speedup; }
  // The percentile the latency bound applies to: the objective's, or p99.
  Objective BoundPercentile() const;
  // Why a measurement misses the latency bound ("p99 25.10 ms exceeds the latency bound of
  // 20 ms"), or nullopt when it meets it or there is no bound.
  std::optional<std::string> Infeasible(const Figures& figures) const;
  // Whether a feasible trial reaches min_speedup against `stock` (true without the target;
  // false when stock has no figures to divide by).
  bool FastEnough(const Figures& figures, const std::optional<Figures>& stock) const;
  // "optimise" or "satisfice".
  std::string Mode() const;
  // One line for a person: "p99 latency (ms per call, lower is better); latency bound 20 ms on
  // p99; min speedup 1.5x against stock; stop at the first trial that meets the targets".
  std::string Describe() const;
  // As the store records it.
  db::StudyGoal ToStore() const;
};

}  // namespace ipt::tuner
