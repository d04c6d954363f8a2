// The search space: named dimensions, each a list of values, and the candidates drawn from it.
// A candidate is a JSON object {dimension: value}; its hash identifies a trial in the store, so
// the same configuration is never measured twice in a study.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recipes/recipe.h"

namespace ipt::tuner {

using Candidate = nlohmann::json;

struct Dimension {
  std::string name;
  std::vector<nlohmann::json> values;
};

struct SearchSpace {
  std::vector<Dimension> dimensions;
  nlohmann::json ToJson() const;
  size_t GridSize() const;
};

// What the machine allows, for pruning the default space.
struct MachineLimits {
  int64_t allowed_cpus = 1;
  bool has_avx512_bf16 = false;
};

// The default space of a workload on this machine: dtype x threads. Dimensions the machine
// cannot serve well (bf16 without avx512_bf16) are left out.
SearchSpace DefaultSpace(const std::string& workload, const MachineLimits& limits);

// Every candidate, in grid order (the last dimension varies fastest).
std::vector<Candidate> GridCandidates(const SearchSpace& space);

// The stock baseline's configuration (trial 0 of every study).
Candidate StockCandidate(int64_t threads);
bool IsStock(const Candidate& candidate);

// Stable: keys are sorted by nlohmann::json, so equal configurations hash equally.
std::string ConfigHash(const Candidate& candidate);

// The recipe a candidate stands for. Throws ipt::Error(kInvalidArgument) for a dimension or a
// value the tuner does not know.
recipes::Recipe CandidateToRecipe(const Candidate& candidate, const recipes::WorkloadRef& workload);

// "dtype=bf16 threads=2", for tables and logs.
std::string Describe(const Candidate& candidate);

}  // namespace ipt::tuner
