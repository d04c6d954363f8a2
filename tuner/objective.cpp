#include "tuner/objective.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

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

// A number of `accuracy`, or nullopt when absent or null (non-finite figures are written null).
std::optional<double> Number(const nlohmann::json& accuracy, const char* key) {
  auto it = accuracy.find(key);
  if (it == accuracy.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// The agreement a loss was computed from, as the metric names it (docs/accuracy.md):
// "top-1 agreement 0.9375 over 16 items".
std::string LossSource(const nlohmann::json& accuracy, double loss) {
  auto it = accuracy.find("metric");
  const std::string metric = it != accuracy.end() && it->is_string() ? it->get<std::string>() : "";
  std::string text;
  auto figure = [&](const char* label, const char* key) {
    if (std::optional<double> v = Number(accuracy, key)) text = fmt::format("{} {:.4g}", label, *v);
  };
  if (metric == "top_k") {
    figure("top-1 agreement", "top1_agreement");
  } else if (metric == "classes") {
    figure("class agreement", "class_agreement");
  } else if (metric == "probability") {
    figure("agreement at 0.5", "agreement_at_0_5");
  } else {
    // generic: 1 - top-1 agreement for outputs of several columns, else the relative L2.
    std::optional<double> top1 = Number(accuracy, "top1_agreement");
    if (top1 && std::abs(1 - *top1 - loss) < 1e-12) {
      figure("top-1 agreement", "top1_agreement");
    } else {
      figure("relative L2", "relative_l2");
    }
  }
  if (std::optional<double> items = Number(accuracy, "items"); items && !text.empty()) {
    text += fmt::format(" over {:g} items", *items);
  }
  return text;
}

}  // namespace

std::optional<double> ParseAccuracyLoss(const std::string& text) {
  if (text == "none") return std::nullopt;
  auto invalid = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("{}, got '{}'", why, text));
  };
  std::string number = text;
  const bool percent = !number.empty() && number.back() == '%';
  if (percent) number.pop_back();
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  const bool parsed = !number.empty() && std::isspace(static_cast<unsigned char>(number[0])) == 0 &&
                      end == number.c_str() + number.size();
  if (!parsed || !std::isfinite(value)) {
    throw invalid(
        "expected a tolerable accuracy loss: a fraction in [0, 1] (0.01), a percentage "
        "(1%) or none");
  }
  if (percent) value /= 100;
  if (value < 0 || value > 1) {
    throw invalid(percent ? "the tolerable accuracy loss must be between 0% and 100%"
                          : "the tolerable accuracy loss must be between 0 and 1 (a fraction of "
                            "the metric: 1% is 0.01)");
  }
  return value + 0.0;  // -0 is 0
}

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

const char* Scenario(Objective objective) {
  return IsLatency(objective) ? "latency" : "throughput";
}

std::vector<double> BlockValues(Objective objective, const nlohmann::json& measurement,
                                int64_t batch) {
  const nlohmann::json blocks = measurement.value("blocks", nlohmann::json::array());
  const nlohmann::json latencies = measurement.value("latencies_ms", nlohmann::json::array());
  // A multi-stream candidate in the throughput scenario runs a batch on every stream per call.
  const int64_t items = measurement.value("items_per_call", batch);
  std::vector<double> values;
  size_t first_call = 0;
  for (const auto& b : blocks) {
    const auto calls = static_cast<size_t>(std::max<int64_t>(0, b.value("calls", int64_t{0})));
    const double seconds = b.value("seconds", 0.0);
    if (!IsLatency(objective)) {
      if (seconds > 0) values.push_back(static_cast<double>(calls * items) / seconds);
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

void SetCallFigures(nlohmann::json& measurement, const std::vector<double>& latencies_ms) {
  measurement["latencies_ms"] = latencies_ms;
  measurement["samples"] = static_cast<int64_t>(latencies_ms.size());
  if (latencies_ms.empty()) return;
  measurement["median_ms"] = stats::Median(latencies_ms);
  measurement["p90_ms"] = stats::Quantile(latencies_ms, 0.9);
  measurement["p99_ms"] = stats::Quantile(latencies_ms, 0.99);
  measurement["mean_ms"] = stats::Mean(latencies_ms);
  measurement["stddev_ms"] = stats::Stddev(latencies_ms);
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
  if (accuracy_loss && !(*accuracy_loss >= 0 && *accuracy_loss <= 1)) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("the tolerable accuracy loss must be between 0 and 1, got {}", *accuracy_loss));
  }
  if (stop_when_met && !HasTargets()) {
    throw Error(ErrorCode::kInvalidArgument,
                "stopping when the targets are met needs a target: a latency bound, a minimum "
                "speedup or an accuracy loss");
  }
}

Objective Goal::BoundPercentile() const {
  return IsLatency(objective) ? objective : Objective::kP99;
}

std::optional<std::string> Goal::OverLatencyBound(const Figures& figures) const {
  if (!latency_bound_ms) return std::nullopt;
  const double value = ObjectiveValue(BoundPercentile(), figures);
  // A latency that was not measured (NaN) cannot be shown to meet the bound.
  if (value <= *latency_bound_ms) return std::nullopt;
  return fmt::format("{} {:.2f} ms exceeds the latency bound of {:g} ms",
                     recipes::ToString(BoundPercentile()), value, *latency_bound_ms);
}

std::optional<std::string> Goal::OverAccuracyLoss(const nlohmann::json& accuracy) const {
  if (!accuracy_loss) return std::nullopt;
  const double target = *accuracy_loss;
  if (!accuracy.is_object() || !accuracy.contains("loss")) {
    return fmt::format("no accuracy measured against the fp32 reference (tolerable loss {:g})",
                       target);
  }
  auto distance_ok = accuracy.find("distance_ok");
  if (distance_ok != accuracy.end() && distance_ok->is_boolean() && !distance_ok->get<bool>()) {
    const std::optional<double> l2 = Number(accuracy, "relative_l2");
    const double most = Number(accuracy, "max_relative_l2").value_or(0.25);
    if (l2 && *l2 > most) {
      return fmt::format(
          "outputs too far from the fp32 reference: relative L2 {:.4g} over the {:g} allowed "
          "(accuracy loss 1)",
          *l2, most);
    }
    return "non-finite outputs: the distance check against the fp32 reference fails (accuracy "
           "loss 1)";
  }
  const std::optional<double> loss = Number(accuracy, "loss");
  if (!loss) return "accuracy loss against the fp32 reference is not a finite number";
  if (*loss <= target + kAccuracyLossSlack) return std::nullopt;
  const std::string source = LossSource(accuracy, *loss);
  return fmt::format("accuracy loss {:.4g} exceeds the tolerable {:g}{}", *loss, target,
                     source.empty() ? "" : " (" + source + ")");
}

std::optional<std::string> Goal::Infeasible(const Figures& figures,
                                            const nlohmann::json& accuracy) const {
  std::optional<std::string> slow = OverLatencyBound(figures);
  std::optional<std::string> inaccurate = OverAccuracyLoss(accuracy);
  if (slow && inaccurate) return *slow + "; " + *inaccurate;
  return slow ? slow : inaccurate;
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
  if (accuracy_loss) {
    text += fmt::format("; accuracy loss at most {:g} ({:g}%) against fp32", *accuracy_loss,
                        *accuracy_loss * 100);
  }
  if (min_speedup) text += fmt::format("; min speedup {:g}x against stock", *min_speedup);
  text += stop_when_met ? "; stop at the first trial that meets the targets"
                        : "; optimise within the budget";
  return text;
}

db::StudyGoal Goal::ToStore() const {
  return {recipes::ToString(objective), Mode(), latency_bound_ms, min_speedup, accuracy_loss};
}

}  // namespace ipt::tuner
