// Objectives and targets: how a measurement is ranked, which trials are infeasible, and that
// every strategy, told the score of a latency objective, searches for that objective's optimum
// rather than throughput's.
#include "tuner/objective.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "base/error.h"
#include "tuner/space.h"
#include "tuner/space_model.h"
#include "tuner/strategy.h"

namespace ipt::tuner {
namespace {

using nlohmann::json;

// A throughput-heavy configuration against a latency-friendly one.
const Figures kBigBatch{400, 18, 20, 30};
const Figures kSmall{250, 3, 3.5, 4};

TEST(ObjectiveTest, NamesAreTheRecipeSpellings) {
  EXPECT_EQ(ObjectiveNames(), (std::vector<std::string>{"throughput", "p50", "p90", "p99"}));
  for (const std::string& name : ObjectiveNames()) {
    EXPECT_EQ(recipes::ToString(*recipes::ParseObjective(name)), name);
  }
  EXPECT_FALSE(recipes::ParseObjective("p95").has_value());
}

TEST(ObjectiveTest, LatencyObjectivesRankLowerFirst) {
  EXPECT_GT(Score(Objective::kThroughput, kBigBatch), Score(Objective::kThroughput, kSmall));
  for (Objective o : {Objective::kP50, Objective::kP90, Objective::kP99}) {
    EXPECT_TRUE(IsLatency(o));
    EXPECT_GT(Score(o, kSmall), Score(o, kBigBatch)) << recipes::ToString(o);
  }
  EXPECT_EQ(ObjectiveValue(Objective::kP50, kBigBatch), 18);
  EXPECT_EQ(ObjectiveValue(Objective::kP90, kBigBatch), 20);
  EXPECT_EQ(ObjectiveValue(Objective::kP99, kBigBatch), 30);
  EXPECT_EQ(ObjectiveValue(Objective::kThroughput, kBigBatch), 400);
  EXPECT_EQ(ObjectiveUnit(Objective::kP90), "p90 ms");
  EXPECT_EQ(DescribeObjective(Objective::kP99), "p99 latency (ms per call, lower is better)");
}

TEST(ObjectiveTest, SpeedupAgainstStockIsAboveOneWhenBetter) {
  EXPECT_DOUBLE_EQ(*Speedup(Objective::kThroughput, kBigBatch, kSmall), 1.6);
  EXPECT_DOUBLE_EQ(*Speedup(Objective::kP99, kSmall, kBigBatch), 7.5);
  EXPECT_DOUBLE_EQ(*Speedup(Objective::kP99, kBigBatch, kSmall), 4.0 / 30);
  EXPECT_FALSE(Speedup(Objective::kThroughput, kSmall, Figures{}).has_value());
  EXPECT_FALSE(Speedup(Objective::kP50, Figures{}, kSmall).has_value());
}

TEST(ObjectiveTest, BlockValuesAreBlockRatesOrBlockPercentiles) {
  const json measurement = {
      {"blocks", {{{"calls", 3}, {"seconds", 0.3}}, {{"calls", 2}, {"seconds", 0.2}}}},
      {"latencies_ms", {1.0, 2.0, 3.0, 10.0, 20.0}}};
  EXPECT_EQ(BlockValues(Objective::kThroughput, measurement, 4), (std::vector<double>{40, 40}));
  EXPECT_EQ(BlockValues(Objective::kP50, measurement, 4), (std::vector<double>{2, 15}));
  const std::vector<double> p99 = BlockValues(Objective::kP99, measurement, 4);
  ASSERT_EQ(p99.size(), 2u);
  EXPECT_NEAR(p99[0], 2.98, 1e-12);
  EXPECT_NEAR(p99[1], 19.9, 1e-12);
  // A block whose calls are not all recorded has no percentile.
  json truncated = measurement;
  truncated["latencies_ms"] = {1.0, 2.0, 3.0, 10.0};
  EXPECT_EQ(BlockValues(Objective::kP50, truncated, 4), (std::vector<double>{2}));
  EXPECT_TRUE(BlockValues(Objective::kP50, json::object(), 1).empty());
}

TEST(GoalTest, TheBoundAppliesToTheObjectivePercentileOrP99) {
  Goal goal;
  goal.latency_bound_ms = 20;
  EXPECT_EQ(goal.BoundPercentile(), Objective::kP99);
  EXPECT_EQ(goal.Infeasible(kBigBatch), "p99 30.00 ms exceeds the latency bound of 20 ms");
  EXPECT_FALSE(goal.Infeasible(kSmall).has_value());
  goal.objective = Objective::kP90;
  EXPECT_EQ(goal.BoundPercentile(), Objective::kP90);
  EXPECT_FALSE(goal.Infeasible(kBigBatch).has_value()) << "p90 is 20 ms: on the bound is within";
  goal.latency_bound_ms = 19.5;
  EXPECT_EQ(goal.Infeasible(kBigBatch), "p90 20.00 ms exceeds the latency bound of 19.5 ms");
  Figures unmeasured = kSmall;
  unmeasured.p90_ms = std::nan("");
  EXPECT_TRUE(goal.Infeasible(unmeasured).has_value()) << "NaN cannot be shown to meet a bound";
  EXPECT_FALSE(Goal{}.Infeasible(kBigBatch).has_value()) << "no bound, nothing infeasible";
}

TEST(GoalTest, MinSpeedupIsJudgedOnTheObjectiveAgainstStock) {
  Goal goal;
  EXPECT_TRUE(goal.FastEnough(kSmall, std::nullopt)) << "no target";
  goal.min_speedup = 1.5;
  EXPECT_TRUE(goal.FastEnough(kBigBatch, kSmall));   // 1.6x items/s
  EXPECT_FALSE(goal.FastEnough(kSmall, kBigBatch));  // 0.625x
  EXPECT_FALSE(goal.FastEnough(kBigBatch, std::nullopt)) << "no stock, no speedup";
  goal.objective = Objective::kP99;
  EXPECT_TRUE(goal.FastEnough(kSmall, kBigBatch));  // 30 ms / 4 ms
  EXPECT_FALSE(goal.FastEnough(kBigBatch, kSmall));
}

TEST(GoalTest, ModeDescriptionAndStoredForm) {
  Goal goal;
  EXPECT_EQ(goal.Mode(), "optimise");
  EXPECT_EQ(goal.Describe(), "throughput (items/s, higher is better); optimise within the budget");
  goal.objective = Objective::kP99;
  goal.latency_bound_ms = 12.5;
  goal.min_speedup = 2;
  goal.stop_when_met = true;
  EXPECT_EQ(goal.Mode(), "satisfice");
  EXPECT_EQ(goal.Describe(),
            "p99 latency (ms per call, lower is better); latency bound 12.5 ms on p99; min "
            "speedup 2x against stock; stop at the first trial that meets the targets");
  const db::StudyGoal stored = goal.ToStore();
  EXPECT_EQ(stored.objective, "p99");
  EXPECT_EQ(stored.mode, "satisfice");
  EXPECT_EQ(stored.latency_bound_ms, 12.5);
  EXPECT_EQ(stored.min_speedup, 2);
}

TEST(GoalTest, ValidateRejectsMeaninglessTargets) {
  auto rejects = [](Goal goal, const std::string& fragment) {
    try {
      goal.Validate();
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  Goal goal;
  goal.Validate();
  goal.latency_bound_ms = 0;
  rejects(goal, "latency bound");
  goal.latency_bound_ms = std::numeric_limits<double>::infinity();
  rejects(goal, "latency bound");
  goal.latency_bound_ms = 5;
  goal.min_speedup = -1;
  rejects(goal, "minimum speedup");
  goal = Goal{};
  goal.stop_when_met = true;
  rejects(goal, "needs a target");
  goal.min_speedup = 1.1;
  goal.Validate();
}

// Threads and streams where throughput and latency pull apart: throughput grows with both, p99
// is best with one stream on two threads.
Figures Measure(const json& c) {
  const double threads = c["threads"].get<double>();
  const double streams = c["streams"].get<double>();
  Figures f;
  f.items_per_s = threads * streams * 10;
  f.p99_ms = 10 * streams / std::min(threads, 2.0) + threads;
  f.p50_ms = f.p90_ms = f.p99_ms / 2;
  return f;
}

TEST(ObjectiveTest, EveryStrategyFindsTheOptimumOfTheObjectiveItIsTold) {
  SpaceDefinition space;
  space.dimensions = {{"threads", {1, 2, 3, 4}, std::nullopt},
                      {"streams", {1, 2, 3}, std::nullopt}};
  const std::vector<json> all = Enumerate(space, 12);
  for (const std::string& name : StrategyNames()) {
    for (Objective objective : {Objective::kThroughput, Objective::kP99}) {
      SCOPED_TRACE(name + " " + recipes::ToString(objective));
      std::unique_ptr<Strategy> strategy = MakeStrategy(name, all, 7);
      std::optional<json> best;
      size_t trials = 0;
      while (std::optional<json> c = strategy->Propose()) {
        ++trials;
        const double score = Score(objective, Measure(*c));
        if (!best || score > Score(objective, Measure(*best))) best = c;
        strategy->Tell(*c, score);
      }
      ASSERT_TRUE(best.has_value());
      if (objective == Objective::kP99) {
        EXPECT_EQ(*best, (json{{"threads", 2}, {"streams", 1}}));
      } else {
        EXPECT_EQ(*best, (json{{"threads", 4}, {"streams", 3}}));
      }
      if (name == "coordinate") {
        EXPECT_LT(trials, all.size());
      }
    }
  }
}

}  // namespace
}  // namespace ipt::tuner
