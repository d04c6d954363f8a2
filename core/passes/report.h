// What a fusion pass did to a graph: how many of each fused pattern it made, and each candidate
// it looked at and left alone, with the reason. The core's `Applied` report collects these.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ipt::core::passes {

struct NotFused {
  std::string pattern;  // "conv+relu"
  std::string where;    // the graph value, e.g. "%input.7"
  std::string reason;
};

struct FusionReport {
  std::map<std::string, int64_t> fused;  // pattern -> count, e.g. {"conv+add+relu": 16}
  std::vector<NotFused> not_fused;
  bool changed() const { return !fused.empty(); }
  void Merge(const FusionReport& other);
};

}  // namespace ipt::core::passes
