// Candidates of a study: what a configuration drawn from the search space (space_model.h) means
// as a recipe, its identity in the store, and the default space of each workload.
// A candidate is a JSON object {dimension: value}; its hash identifies a trial in the store, so
// the same configuration is never measured twice in a study.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "recipes/recipe.h"
#include "tuner/space_model.h"

namespace ipt::tuner {

using Candidate = nlohmann::json;

// The default search space of a workload, as YAML (schema ipex-tune/space/v1): what `--space`
// replaces. Dimensions the core cannot apply yet are not in it.
std::string DefaultSpaceYaml(const std::string& workload);
SpaceDefinition DefaultSpace(const std::string& workload);

// The stock baseline's configuration (trial 0 of every study).
Candidate StockCandidate(int64_t threads);
bool IsStock(const Candidate& candidate);

// Stable: keys are sorted by nlohmann::json, so equal configurations hash equally.
std::string ConfigHash(const Candidate& candidate);

// The recipe a candidate stands for: every dimension of SpaceDimensionNames() maps to a recipe
// field; a dimension absent from the candidate keeps the recipe's default. Throws
// ipt::Error(kInvalidArgument) for a dimension or value it does not know.
recipes::Recipe CandidateToRecipe(const Candidate& candidate, const recipes::WorkloadRef& workload);

// "dtype=bf16 threads=2", for tables and logs.
std::string Describe(const Candidate& candidate);

}  // namespace ipt::tuner
