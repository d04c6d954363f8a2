// Objectives and targets: how a measurement is ranked, which trials are infeasible (latency
// bound, accuracy target), and that every strategy, told the score of a latency objective, searches
// for that objective's optimum rather than throughput's.
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

TEST(ObjectiveTest, ThroughputIsMeasuredWithEveryStreamBusyLatencyOneCallAtATime) {
  EXPECT_STREQ(Scenario(Objective::kThroughput), "throughput");
  for (Objective o : {Objective::kP50, Objective::kP90, Objective::kP99}) {
    EXPECT_STREQ(Scenario(o), "latency");
  }
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
  // Two streams in the throughput scenario: a timed call is a batch on each stream.
  json two_streams = measurement;
  two_streams["items_per_call"] = 8;
  EXPECT_EQ(BlockValues(Objective::kThroughput, two_streams, 4), (std::vector<double>{80, 80}));
}

TEST(GoalTest, TheBoundAppliesToTheObjectivePercentileOrP99) {
  Goal goal;
  goal.latency_bound_ms = 20;
  EXPECT_EQ(goal.BoundPercentile(), Objective::kP99);
  EXPECT_EQ(goal.OverLatencyBound(kBigBatch), "p99 30.00 ms exceeds the latency bound of 20 ms");
  EXPECT_FALSE(goal.OverLatencyBound(kSmall).has_value());
  goal.objective = Objective::kP90;
  EXPECT_EQ(goal.BoundPercentile(), Objective::kP90);
  EXPECT_FALSE(goal.OverLatencyBound(kBigBatch).has_value())
      << "p90 is 20 ms: on the bound is within";
  goal.latency_bound_ms = 19.5;
  EXPECT_EQ(goal.OverLatencyBound(kBigBatch), "p90 20.00 ms exceeds the latency bound of 19.5 ms");
  Figures unmeasured = kSmall;
  unmeasured.p90_ms = std::nan("");
  EXPECT_TRUE(goal.OverLatencyBound(unmeasured).has_value())
      << "NaN cannot be shown to meet a bound";
  EXPECT_FALSE(Goal{}.OverLatencyBound(kBigBatch).has_value()) << "no bound, nothing infeasible";
}

TEST(GoalTest, AccuracyLossParsesAsAFractionOrAPercentageOrNone) {
  EXPECT_EQ(ParseAccuracyLoss("0.01"), 0.01);
  EXPECT_EQ(ParseAccuracyLoss("1%"), 0.01);
  EXPECT_EQ(ParseAccuracyLoss("0.5%"), 0.005);
  EXPECT_EQ(ParseAccuracyLoss("1e-3"), 0.001);
  EXPECT_EQ(ParseAccuracyLoss("0"), 0.0);
  EXPECT_EQ(ParseAccuracyLoss("0%"), 0.0);
  EXPECT_EQ(ParseAccuracyLoss("1"), 1.0);
  EXPECT_EQ(ParseAccuracyLoss("100%"), 1.0);
  EXPECT_FALSE(std::signbit(*ParseAccuracyLoss("-0")));
  EXPECT_FALSE(ParseAccuracyLoss("none").has_value());
  auto rejects = [](const std::string& text, const std::string& fragment) {
    try {
      ParseAccuracyLoss(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("got '" + text + "'"), std::string::npos) << e.what();
    }
  };
  rejects("-0.1", "between 0 and 1");
  rejects("1.5", "between 0 and 1 (a fraction of the metric: 1% is 0.01)");
  rejects("101%", "between 0% and 100%");
  rejects("-1%", "between 0% and 100%");
  for (const char* garbage :
       {"nan", "inf", "-inf", "", "%", "abc", "0.01x", " 0.01", "1%%", "None", "0.01 "}) {
    rejects(garbage, "expected a tolerable accuracy loss");
  }
}

// The worker's accuracy object (docs/accuracy.md) for `loss`, with the agreement it came from.
json Accuracy(const std::string& metric, double loss) {
  json a = {{"metric", metric},          {"loss", loss}, {"distance_ok", true},
            {"max_relative_l2", 0.25},   {"items", 16},  {"relative_l2", 0.02},
            {"top1_agreement", 1 - loss}};
  if (metric == "classes") a["class_agreement"] = 1 - loss;
  if (metric == "probability") {
    a["top1_agreement"] = 1;
    a["agreement_at_0_5"] = 1 - loss;
  }
  return a;
}

TEST(GoalTest, AnAccuracyLossOverTheTargetIsInfeasibleWithItsFigures) {
  Goal goal;
  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("top_k", 0.5)).has_value()) << "no target";
  EXPECT_FALSE(goal.OverAccuracyLoss(json()).has_value()) << "no target, nothing required";
  goal.accuracy_loss = 0.01;
  EXPECT_EQ(goal.OverAccuracyLoss(Accuracy("top_k", 0.0625)),
            "accuracy loss 0.0625 exceeds the tolerable 0.01 (top-1 agreement 0.9375 over 16 "
            "items)");
  EXPECT_EQ(goal.OverAccuracyLoss(Accuracy("classes", 0.125)),
            "accuracy loss 0.125 exceeds the tolerable 0.01 (class agreement 0.875 over 16 items)");
  EXPECT_EQ(goal.OverAccuracyLoss(Accuracy("probability", 0.1)),
            "accuracy loss 0.1 exceeds the tolerable 0.01 (agreement at 0.5 0.9 over 16 items)");
  EXPECT_EQ(goal.OverAccuracyLoss(Accuracy("generic", 0.25)),
            "accuracy loss 0.25 exceeds the tolerable 0.01 (top-1 agreement 0.75 over 16 items)");
  // A generic model of one output per item: the loss is its relative L2 distance.
  json distance = Accuracy("generic", 0.034);
  distance["top1_agreement"] = 1;
  distance["relative_l2"] = 0.034;
  EXPECT_EQ(goal.OverAccuracyLoss(distance),
            "accuracy loss 0.034 exceeds the tolerable 0.01 (relative L2 0.034 over 16 items)");

  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("top_k", 0)).has_value());
  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("top_k", 0.01)).has_value()) << "on it is within";
  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("probability", 1 - 0.99)).has_value())
      << "1 - 99/100 is 0.010000000000000009, still a loss of 1%";
  EXPECT_TRUE(goal.OverAccuracyLoss(Accuracy("top_k", 0.0101)).has_value());
  goal.accuracy_loss = 0;
  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("top_k", 0)).has_value());
  EXPECT_EQ(goal.OverAccuracyLoss(Accuracy("top_k", 1.0 / 32)),
            "accuracy loss 0.03125 exceeds the tolerable 0 (top-1 agreement 0.9688 over 16 items)");
}

TEST(GoalTest, UnmeasuredNonFiniteOrDistantAccuracyIsInfeasibleUnderAnyTarget) {
  Goal goal;
  goal.accuracy_loss = 1;  // tolerates any change of predictions, not broken outputs
  EXPECT_FALSE(goal.OverAccuracyLoss(Accuracy("top_k", 1)).has_value());
  const std::string unmeasured =
      "no accuracy measured against the fp32 reference (tolerable loss 1)";
  EXPECT_EQ(goal.OverAccuracyLoss(json::object()), unmeasured) << "stored before accuracy existed";
  EXPECT_EQ(goal.OverAccuracyLoss(json()), unmeasured);
  EXPECT_EQ(goal.OverAccuracyLoss(json{{"cosine", 1.0}}), unmeasured);
  json null_loss = Accuracy("top_k", 0);
  null_loss["loss"] = nullptr;
  EXPECT_EQ(goal.OverAccuracyLoss(null_loss),
            "accuracy loss against the fp32 reference is not a finite number");
  json distant = Accuracy("probability", 1);
  distant["distance_ok"] = false;
  distant["relative_l2"] = 0.41;
  distant["agreement_at_0_5"] = 1;  // agreement alone is blind: 0.51 agrees with 0.9 at 0.5
  EXPECT_EQ(goal.OverAccuracyLoss(distant),
            "outputs too far from the fp32 reference: relative L2 0.41 over the 0.25 allowed "
            "(accuracy loss 1)");
  json non_finite = distant;
  non_finite["relative_l2"] = nullptr;
  EXPECT_EQ(goal.OverAccuracyLoss(non_finite),
            "non-finite outputs: the distance check against the fp32 reference fails (accuracy "
            "loss 1)");
  // Both targets missed: both reasons.
  goal.latency_bound_ms = 20;
  EXPECT_EQ(goal.Infeasible(kBigBatch, distant),
            "p99 30.00 ms exceeds the latency bound of 20 ms; outputs too far from the fp32 "
            "reference: relative L2 0.41 over the 0.25 allowed (accuracy loss 1)");
  EXPECT_EQ(goal.Infeasible(kSmall, distant), goal.OverAccuracyLoss(distant));
  EXPECT_EQ(goal.Infeasible(kBigBatch, Accuracy("top_k", 0)), goal.OverLatencyBound(kBigBatch));
  EXPECT_FALSE(goal.Infeasible(kSmall, Accuracy("top_k", 0)).has_value());
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
  goal.accuracy_loss = 0.005;
  goal.min_speedup = 2;
  goal.stop_when_met = true;
  EXPECT_EQ(goal.Mode(), "satisfice");
  EXPECT_EQ(goal.Describe(),
            "p99 latency (ms per call, lower is better); latency bound 12.5 ms on p99; accuracy "
            "loss at most 0.005 (0.5%) against fp32; min speedup 2x against stock; stop at the "
            "first trial that meets the targets");
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
  for (double loss : {-0.01, 1.5, std::nan("")}) {
    goal.accuracy_loss = loss;
    rejects(goal, "accuracy loss must be between 0 and 1");
  }
  goal.accuracy_loss = 0;
  goal.Validate();
  goal = Goal{};
  goal.stop_when_met = true;
  rejects(goal, "needs a target");
  goal.min_speedup = 1.1;
  goal.Validate();
  goal.min_speedup.reset();
  goal.accuracy_loss = 0.01;
  EXPECT_TRUE(goal.HasTargets());
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
