// What a study optimises and the targets its winner must meet: how a measurement becomes the
// one number that strategies and the final comparison rank, which trials are infeasible (over
// the latency bound, or losing more accuracy against the fp32 reference than tolerated), and
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
// How the worker measures for this objective: "throughput" keeps every stream of a
// multi-stream candidate busy with a batch of its own (items/s of the whole pool), "latency"
// cuts each batch over the streams (the time of one call). One-stream candidates, stock among
// them, are measured alike either way.
const char* Scenario(Objective objective);
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
// block's slowest call. Blocks whose calls are missing from "latencies_ms" are skipped. A call
// holds the measurement's "items_per_call" items when it says (a batch on each stream in the
// throughput scenario), else `batch`.
std::vector<double> BlockValues(Objective objective, const nlohmann::json& measurement,
                                int64_t batch);

// Sets a measurement's "latencies_ms", "samples" and the call figures a worker derives from
// them ("median_ms", "p90_ms", "p99_ms", "mean_ms", "stddev_ms"), for a measurement put
// together from several (instances side by side, rounds of workers). No figures for no calls.
void SetCallFigures(nlohmann::json& measurement, const std::vector<double>& latencies_ms);

// The accuracy target a front end sets when the user gives none: a candidate may change at most
// 1% of the reference's predictions (docs/accuracy.md). The usual tolerance for reduced
// precision (Intel Neural Compressor's default criterion is a 1% relative loss); on an
// evaluation set of fewer than 100 items it allows no changed prediction at all. Goal{} itself
// has no accuracy target.
inline constexpr double kDefaultAccuracyLoss = 0.01;
// A loss this close above the target still meets it: 1 - agreement is not exact in binary
// (1 - 99/100 is 0.010000000000000009).
inline constexpr double kAccuracyLossSlack = 1e-9;

// The spelling --accuracy-loss takes: a fraction of the metric in [0, 1] ("0.01", "0", "1e-3"),
// a percentage in [0%, 100%] ("1%", "0.5%"), or "none" (no target: nullopt). Our loss is already
// relative to the fp32 reference, whose own score on it is 1 (it makes every prediction it
// makes), so a relative and an absolute tolerance are the same number: there is one spelling.
// Throws ipt::Error(kInvalidArgument) naming the text for anything else: negative, above 1 (or
// 100%), NaN, infinite, empty or not a number.
std::optional<double> ParseAccuracyLoss(const std::string& text);

struct Goal {
  Objective objective = Objective::kThroughput;
  // A hard target: a trial over it is stored as done but infeasible and never wins. It applies
  // to the objective percentile, or to p99 when the objective is throughput.
  std::optional<double> latency_bound_ms;
  // A target on the speedup against the stock baseline (Speedup on the objective).
  std::optional<double> min_speedup;
  // A hard target on accuracy: the largest tolerable `loss` against the fp32 reference, in
  // [0, 1] (the worker's `accuracy.loss`, docs/accuracy.md). A trial over it, or whose accuracy
  // is unmeasured, not finite or fails the distance check, is stored as done but infeasible and
  // never wins. 1 rejects only broken outputs. The stock baseline is never judged by it.
  std::optional<double> accuracy_loss;
  // Satisfice: stop the search at the first trial that meets every target. Otherwise optimise
  // within the budget. Needs a target.
  bool stop_when_met = false;

  // Throws ipt::Error(kInvalidArgument) for a bound or speedup that is not a positive finite
  // number, an accuracy loss outside [0, 1], or stop_when_met without a target.
  void Validate() const;
  bool HasTargets() const { return latency_bound_ms || min_speedup || accuracy_loss; }
  // The percentile the latency bound applies to: the objective's, or p99.
  Objective BoundPercentile() const;
  // Why a measurement misses the latency bound ("p99 25.10 ms exceeds the latency bound of
  // 20 ms"), or nullopt when it meets it or there is no bound.
  std::optional<std::string> OverLatencyBound(const Figures& figures) const;
  // Why a trial's `accuracy` object (the worker's, docs/accuracy.md) misses the accuracy target
  // ("accuracy loss 0.0625 exceeds the tolerable 0.01 (top-1 agreement 0.9375)"; or it has no
  // finite loss, or fails the distance check), or nullopt when it meets it or there is no
  // target. A loss within kAccuracyLossSlack above the target meets it.
  std::optional<std::string> OverAccuracyLoss(const nlohmann::json& accuracy) const;
  // Every reason a candidate's search measurement is infeasible, joined by "; ", or nullopt.
  // The stock baseline is judged by OverLatencyBound alone: it is libtorch's own fp32 path,
  // the baseline every ratio is taken against, not a candidate.
  std::optional<std::string> Infeasible(const Figures& figures,
                                        const nlohmann::json& accuracy) const;
  // Whether a feasible trial reaches min_speedup against `stock` (true without the target;
  // false when stock has no figures to divide by).
  bool FastEnough(const Figures& figures, const std::optional<Figures>& stock) const;
  // "optimise" or "satisfice".
  std::string Mode() const;
  // One line for a person: "p99 latency (ms per call, lower is better); latency bound 20 ms on
  // p99; accuracy loss at most 0.01 against fp32; min speedup 1.5x against stock; stop at the
  // first trial that meets the targets".
  std::string Describe() const;
  // As the store records it (the store has no column for the accuracy target yet).
  db::StudyGoal ToStore() const;
};

}  // namespace ipt::tuner
