// Candidates of a study: what a configuration drawn from the search space (space_model.h) means
// as a recipe, its identity in the store, and the default space of each workload.
// A candidate is a JSON object {dimension: value}; its hash identifies a trial in the store, so
// the same configuration is never measured twice in a study.
#pragma once

#include <cstdint>
#include <optional>
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

// The MALLOC_CONF of a candidate with `allocator: jemalloc`, written into its recipe's
// runtime.env: large allocations in their own extents, purging on a background thread, and
// freed pages kept (never decayed) rather than returned and faulted in again on the next call.
// Untuned jemalloc made stock ResNet-50 slower here; with this it took bs16 fp32 from 1.2-1.3 s
// to 0.44-0.47 s (issue 4's measurement of stock libtorch on this machine; docs/benchmarks.md
// has the commands of the tuned environment). The price is memory: what a model once used stays
// mapped.
inline constexpr const char* kJemallocConf =
    "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:9000000000,"
    "muzzy_decay_ms:9000000000";

// The recipe a candidate stands for: every dimension of SpaceDimensionNames() maps to a recipe
// field; a dimension absent from the candidate keeps the recipe's default. `auto_fallback:
// target` takes the study's accuracy target `accuracy_loss` (off without one). Throws
// ipt::Error(kInvalidArgument) for a dimension or value it does not know.
recipes::Recipe CandidateToRecipe(const Candidate& candidate, const recipes::WorkloadRef& workload,
                                  std::optional<double> accuracy_loss = std::nullopt);

// "dtype=bf16 threads=2", for tables and logs.
std::string Describe(const Candidate& candidate);

}  // namespace ipt::tuner
