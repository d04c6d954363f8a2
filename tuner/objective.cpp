#include "tuner/objective.h"

#include <fmt/format.h>

#include <cmath>

#include "base/error.h"
#include "base/stats.h"

namespace ipt::tuner {
namespace {

double Quantile(Objective objective) {
  switch (objective) {
    case Objective::kP50:
      return 0.5;
    case Objective::kP90:
      return 0.9;
    case Objective::kP99:
      return 0.99;
    case Objective::kThroughput:
      break;
  }
  throw Error(ErrorCode::kInternal, "throughput has no latency percentile");
}

}  // namespace

const std::vector<std::string>& ObjectiveNames() {
  static const std::vector<std::string> names = {
      recipes::ToString(Objective::kThroughput), recipes::ToString(Objective::kP50),
      recipes::ToString(Objective::kP90), recipes::ToString(Objective::kP99)};
  return names;
}

bool IsLatency(Objective objective) { return objective != Objective::kThroughput; }

double ObjectiveValue(Objective objective, const Figures& figures) {
  switch (objective) {
    case Objective::kThroughput:
      return figures.items_per_s;
    case Objective::kP50:
      return figures.p50_ms;
    case Objective::kP90:
      return figures.p90_ms;
    case Objective::kP99:
      return figures.p99_ms;
  }
  return figures.items_per_s;
}

double Score(Objective objective, const Figures& figures) {
  const double value = ObjectiveValue(objective, figures);
  return IsLatency(objective) ? -value : value;
}

std::string ObjectiveUnit(Objective objective) {
  return IsLatency(objective) ? std::string(recipes::ToString(objective)) + " ms" : "items/s";
}

std::string DescribeObjective(Objective objective) {
  if (!IsLatency(objective)) return "throughput (items/s, higher is better)";
  return std::string(recipes::ToString(objective)) + " latency (ms per call, lower is better)";
}

std::optional<double> Speedup(Objective objective, const Figures& candidate, const Figures& stock) {
  const double ours = ObjectiveValue(objective, candidate);
  const double theirs = ObjectiveValue(objective, stock);
  const double denominator = IsLatency(objective) ? ours : theirs;
  if (!(denominator > 0)) return std::nullopt;
  return IsLatency(objective) ? theirs / ours : ours / theirs;
}

std::vector<double> BlockValues(Objective objective, const nlohmann::json& measurement,
                                int64_t batch) {
  const nlohmann::json blocks = measurement.value("blocks", nlohmann::json::array());
  const nlohmann::json latencies = measurement.value("latencies_ms", nlohmann::json::array());
  std::vector<double> values;
  size_t first_call = 0;
  for (const auto& b : blocks) {
    const auto calls = static_cast<size_t>(std::max<int64_t>(0, b.value("calls", int64_t{0})));
    const double seconds = b.value("seconds", 0.0);
    if (!IsLatency(objective)) {
      if (seconds > 0) values.push_back(static_cast<double>(calls * batch) / seconds);
      continue;
    }
    // The worker records every call of every block in order, so block i's calls follow block
    // i-1's.
    if (calls > 0 && first_call + calls <= latencies.size()) {
      std::vector<double> block(
          latencies.begin() + static_cast<std::ptrdiff_t>(first_call),
          latencies.begin() + static_cast<std::ptrdiff_t>(first_call + calls));
      values.push_back(stats::Quantile(std::move(block), Quantile(objective)));
    }
    first_call += calls;
  }
  return values;
}

void Goal::Validate() const {
  auto positive = [](const std::optional<double>& v) {
    return !v || (std::isfinite(*v) && *v > 0);
  };
  if (!positive(latency_bound_ms)) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the latency bound must be a positive number of ms, got {}",
                            *latency_bound_ms));
  }
  if (!positive(min_speedup)) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the minimum speedup must be a positive ratio, got {}", *min_speedup));
  }
  if (stop_when_met && !HasTargets()) {
    throw Error(ErrorCode::kInvalidArgument,
                "stopping when the targets are met needs a target: a latency bound or a minimum "
                "speedup");
  }
}

Objective Goal::BoundPercentile() const {
  return IsLatency(objective) ? objective : Objective::kP99;
}

std::optional<std::string> Goal::Infeasible(const Figures& figures) const {
  if (!latency_bound_ms) return std::nullopt;
  const double value = ObjectiveValue(BoundPercentile(), figures);
  // A latency that was not measured (NaN) cannot be shown to meet the bound.
  if (value <= *latency_bound_ms) return std::nullopt;
  return fmt::format("{} {:.2f} ms exceeds the latency bound of {:g} ms",
                     recipes::ToString(BoundPercentile()), value, *latency_bound_ms);
}

bool Goal::FastEnough(const Figures& figures, const std::optional<Figures>& stock) const {
  if (!min_speedup) return true;
  if (!stock) return false;
  const std::optional<double> speedup = Speedup(objective, figures, *stock);
  return speedup && *speedup >= *min_speedup;
}

std::string Goal::Mode() const { return stop_when_met ? "satisfice" : "optimise"; }

std::string Goal::Describe() const {
  std::string text = DescribeObjective(objective);
  if (latency_bound_ms) {
    text += fmt::format("; latency bound {:g} ms on {}", *latency_bound_ms,
                        recipes::ToString(BoundPercentile()));
  }
  if (min_speedup) text += fmt::format("; min speedup {:g}x against stock", *min_speedup);
  text += stop_when_met ? "; stop at the first trial that meets the targets"
                        : "; optimise within the budget";
  return text;
}

db::StudyGoal Goal::ToStore() const {
  return {recipes::ToString(objective), Mode(), latency_bound_ms, min_speedup};
}

}  // namespace ipt::tuner
