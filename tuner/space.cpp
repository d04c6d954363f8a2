#include "tuner/space.h"

#include <fmt/format.h>

#include "base/error.h"
#include "base/sha256.h"

namespace ipt::tuner {

nlohmann::json SearchSpace::ToJson() const {
  nlohmann::json dims = nlohmann::json::array();
  for (const Dimension& d : dimensions) dims.push_back({{"name", d.name}, {"values", d.values}});
  return {{"dimensions", dims}};
}

size_t SearchSpace::GridSize() const {
  size_t size = 1;
  for (const Dimension& d : dimensions) size *= d.values.size();
  return size;
}

SearchSpace DefaultSpace(const std::string& workload, const MachineLimits& limits) {
  SearchSpace space;
  Dimension dtype{"dtype", {"fp32"}};
  if (limits.has_avx512_bf16) dtype.values.push_back("bf16");
  Dimension threads{"threads", {1}};
  if (limits.allowed_cpus > 1) threads.values.push_back(limits.allowed_cpus);
  space.dimensions = {dtype, threads};
  return space;
}

std::vector<Candidate> GridCandidates(const SearchSpace& space) {
  std::vector<Candidate> out;
  if (space.dimensions.empty()) return out;
  std::vector<size_t> index(space.dimensions.size(), 0);
  while (true) {
    Candidate c = nlohmann::json::object();
    for (size_t d = 0; d < index.size(); ++d) {
      c[space.dimensions[d].name] = space.dimensions[d].values[index[d]];
    }
    out.push_back(std::move(c));
    size_t d = index.size();
    while (d > 0) {
      --d;
      if (++index[d] < space.dimensions[d].values.size()) break;
      index[d] = 0;
      if (d == 0) return out;
    }
  }
}

Candidate StockCandidate(int64_t threads) { return {{"baseline", "stock"}, {"threads", threads}}; }

bool IsStock(const Candidate& candidate) {
  return candidate.is_object() && candidate.value("baseline", "") == "stock";
}

std::string ConfigHash(const Candidate& candidate) { return Sha256Hex(candidate.dump()); }

recipes::Recipe CandidateToRecipe(const Candidate& candidate,
                                  const recipes::WorkloadRef& workload) {
  recipes::Recipe recipe;
  recipe.workload = workload;
  for (const auto& [key, value] : candidate.items()) {
    if (key == "dtype") {
      auto dtype = recipes::ParseDtype(value.get<std::string>());
      if (!dtype) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("dtype: unknown value {}", value.dump()));
      }
      recipe.precision.dtype = *dtype;
    } else if (key == "threads") {
      recipe.runtime.threads = value.get<int64_t>();
    } else {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("unknown dimension '{}'", key));
    }
  }
  return recipe;
}

std::string Describe(const Candidate& candidate) {
  std::string text;
  for (const auto& [key, value] : candidate.items()) {
    if (!text.empty()) text += ' ';
    text += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return text;
}

}  // namespace ipt::tuner
