// The search space as a user declares it (schema ipex-tune/space/v1, read by space_yaml.h):
// dimensions with their values, dimensions that only apply under a condition, and constraints
// across dimensions. From it come the pruned space for one machine and the finite, ordered list
// of candidates a strategy searches. The syntax and semantics are documented in
// docs/search-space.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ipt::tuner {

inline constexpr const char* kSpaceSchema = "ipex-tune/space/v1";

struct SpaceDimension {
  std::string name;
  std::vector<nlohmann::json> values;
  // The dimension applies only when the named dimension is present in the candidate with one of
  // these values; otherwise the candidate has no key for it. ParseSpace only accepts a `when`
  // on a dimension declared earlier, which makes conditions acyclic and cheap to evaluate.
  std::optional<std::pair<std::string, std::vector<nlohmann::json>>> when;
};

struct SpaceDefinition {
  std::vector<SpaceDimension> dimensions;
  // Constraint expressions (see Constraint below); a candidate must satisfy all of them.
  std::vector<std::string> constraints;
  // Stable: the same definition always gives the same JSON, so it can key a study.
  nlohmann::json ToJson() const;
  // The inverse of ToJson, for the space a study stored. Throws ipt::Error(kCorrupt) naming
  // what is missing or mistyped.
  static SpaceDefinition FromJson(const nlohmann::json& j);
};

// The dimension names a space may use, in the order docs/search-space.md lists them.
const std::vector<std::string>& SpaceDimensionNames();

// A constraint expression over integer dimensions and the variable `cpus` (the CPUs the study
// may use): integers, + - * / (integer division), parentheses, one comparison (<= < >= > == !=)
// per operand of `and` / `or` (`and` binds tighter). A small recursive-descent parser: nothing
// is ever evaluated as code.
class Constraint {
 public:
  // `integer_dimensions` are the names an expression may use besides `cpus`. Throws
  // ipt::Error(kInvalidArgument) with the problem and its 1-based column ("expected an operand
  // at column 9") for text that does not parse, names another variable, or is not a comparison
  // at the top (`streams * 2` alone says nothing).
  static Constraint Parse(const std::string& text,
                          const std::vector<std::string>& integer_dimensions);

  // A constraint naming a dimension the candidate lacks (a conditional dimension whose `when`
  // does not hold) does not apply to it and holds. Division by zero and int64 overflow make it
  // false: such a candidate is rejected rather than measured under a meaningless rule.
  bool Holds(const nlohmann::json& candidate, int64_t cpus) const;

 private:
  struct Node {
    enum class Kind { kNumber, kVariable, kBinary } kind = Kind::kNumber;
    int64_t number = 0;
    std::string variable;
    std::string op;  // "+", "<=", "and", ...
    int lhs = -1;    // indices into nodes_
    int rhs = -1;
  };
  class Parser;

  std::vector<Node> nodes_;
  int root_ = -1;
};

// What pruning needs to know about the machine the study runs on.
struct MachineFacts {
  int64_t cpus = 1;  // CPUs the study may use (its allowed CPU set)
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
};

// One value pruning removed or kept with a warning, and why, for the user to read.
struct PruneNote {
  std::string dimension;
  nlohmann::json value;
  std::string reason;
  bool dropped = true;  // false: kept, but the user should know it may disappoint
};

// The space this machine can serve. Drops bf16 without avx512_bf16 (unless keep_unsupported:
// measuring the emulated path is sometimes the point), and threads, streams, cores_per_stream
// and instances values above `facts.cpus` (always: they would oversubscribe the CPU set and measure
// the scheduler). Keeps int8 and int8-dynamic without avx512_vnni, with a note. Each drop or
// warning appends a PruneNote when `notes` is not null. Throws ipt::Error(kUnsupported) naming the
// dimension when pruning leaves a dimension with no value.
SpaceDefinition Prune(const SpaceDefinition& space, const MachineFacts& facts,
                      bool keep_unsupported, std::vector<PruneNote>* notes);

// Every valid candidate (a JSON object {dimension: value}) in grid order: the last dimension
// varies fastest. A conditional dimension is absent from a candidate whose `when` does not hold;
// candidates that fail a constraint are left out, and so are those whose instances times threads
// (each instance's threads) exceed `cpus`; duplicates are removed, the first kept.
// Throws ipt::Error(kInvalidArgument) for a constraint that does not parse, a `when` naming a
// dimension not declared before its own, and a grid whose product of dimension sizes exceeds
// kMaxGrid: a study measures each candidate for seconds, so that many is a typo, not a plan.
inline constexpr size_t kMaxGrid = 1'000'000;
std::vector<nlohmann::json> Enumerate(const SpaceDefinition& space, int64_t cpus);

}  // namespace ipt::tuner
