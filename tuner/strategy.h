// Search strategies: which candidate to measure next, given the results so far. A strategy works
// over the finite, ordered candidate list of a space (Enumerate() in space_model.h) and knows
// nothing of workers, stores or time; the study drives it with Propose and Tell.
//
// Contract shared by every strategy:
// - Propose never returns a candidate it proposed before or was told about (identity is
//   ConfigHash), and returns nullopt once it has nothing left to propose: the list is exhausted,
//   or, for coordinate descent, the search has converged.
// - The objective is higher-is-better (items/s, or minus a latency: objective.h's Score); nullopt
//   is a failed trial, or one over the study's latency bound.
// - Tell accepts candidates proposed earlier and results resumed from the store, which a resumed
//   study tells before its first Propose; candidates not in the list (the stock baseline, trials
//   of an earlier space) are ignored. Telling a candidate again replaces its result.
// - Use is sequential: tell each proposal before the next Propose. A proposal never told counts
//   as a failed trial.
// - Deterministic: the same candidates, seed and results give the same proposals on every
//   platform (draws go through stats::UniformIndex). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ipt::tuner {

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::optional<nlohmann::json> Propose() = 0;
  virtual void Tell(const nlohmann::json& candidate, std::optional<double> objective) = 0;
  virtual std::string name() const = 0;
};

// "grid", "random", "coordinate", "tpe": the names MakeStrategy knows, for --help and errors.
const std::vector<std::string>& StrategyNames();

// The strategy called `name`, with default options. Duplicate candidates (by ConfigHash) are
// searched once. Throws ipt::Error(kInvalidArgument) listing the known names for another name.
std::unique_ptr<Strategy> MakeStrategy(const std::string& name,
                                       std::vector<nlohmann::json> candidates, uint64_t seed);

// Every candidate in list order.
std::unique_ptr<Strategy> MakeGridStrategy(std::vector<nlohmann::json> candidates);

// Every candidate once, in a permutation drawn from std::mt19937_64(seed).
std::unique_ptr<Strategy> MakeRandomStrategy(std::vector<nlohmann::json> candidates, uint64_t seed);

// Starts from the first candidate; then, one dimension at a time, measures every candidate that
// differs from the best so far only in that dimension (and in dimensions that exist on one side
// only, such as calibration when dtype changes) and moves to the best of them. Stops once a
// round of every dimension moves nowhere: on a separable objective that is about the sum of the
// dimension sizes instead of their product, but it can stop at a local optimum when dimensions
// interact. Dimensions are the candidates' keys in sorted order.
std::unique_ptr<Strategy> MakeCoordinateDescentStrategy(std::vector<nlohmann::json> candidates);

struct TpeOptions {
  // Results (resumed ones included) gathered by random proposals before the model is used.
  // Default: 5, or a tenth of the list when that is smaller, but at least 2. Fewer make the first
  // model guesses rest on noise; more spend the budget like random search.
  std::optional<int64_t> n_startup;
  // Share of the results (best first) that form the "good" density. Smaller is greedier.
  double gamma = 0.25;
  // Pseudo-count added to every value of every dimension in both densities, so a value never
  // seen keeps a chance. Larger flattens the model towards random search.
  double prior_weight = 1.0;
};

// Tree-structured Parzen Estimator over categorical dimensions (a dimension's absence, for a
// conditional one, is a category of its own): after the startup proposals, the results split into
// the best gamma share (good) and the rest with the failures (bad); each dimension gets a
// smoothed frequency of its values in each part, l and g, and the proposal is the untried
// candidate with the highest product over dimensions of l/g, ties drawn from the seeded engine.
std::unique_ptr<Strategy> MakeTpeStrategy(std::vector<nlohmann::json> candidates, uint64_t seed,
                                          const TpeOptions& options = {});

}  // namespace ipt::tuner
