// Search strategies on synthetic objectives: coverage, determinism, resume, and how many trials
// coordinate descent and TPE need compared with grid and random search. No worker, no model:
// every trial is a table lookup, so the comparisons run in milliseconds.
#include "tuner/strategy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "base/error.h"
#include "tuner/space.h"
#include "tuner/space_model.h"

namespace ipt::tuner {
namespace {

using nlohmann::json;

// 4 x 4 x 3 = 48 candidates.
SpaceDefinition Space4x4x3() {
  SpaceDefinition space;
  space.dimensions = {{"dtype", {"fp32", "bf16", "int8", "int8-dynamic"}, std::nullopt},
                      {"threads", {1, 2, 3, 4}, std::nullopt},
                      {"streams", {1, 2, 3}, std::nullopt}};
  return space;
}

// Separable and multiplicative, like throughput: each dimension scales it independently. The
// optimum (int8, 3 threads, 2 streams) is the only candidate within 5% of the best: the runner-up
// in each dimension costs 10%.
double Objective(const json& c) {
  static const std::map<std::string, double> dtype = {
      {"fp32", 0.7}, {"bf16", 0.8}, {"int8", 1.0}, {"int8-dynamic", 0.9}};
  static const std::map<int, double> threads = {{1, 0.7}, {2, 0.8}, {3, 1.0}, {4, 0.9}};
  static const std::map<int, double> streams = {{1, 0.85}, {2, 1.0}, {3, 0.9}};
  return dtype.at(c["dtype"].get<std::string>()) * threads.at(c["threads"].get<int>()) *
         streams.at(c["streams"].get<int>());
}

// Proposals until the strategy has none left, telling each its objective.
std::vector<json> Drain(Strategy& strategy, const std::function<double(const json&)>& objective) {
  std::vector<json> proposed;
  while (std::optional<json> c = strategy.Propose()) {
    proposed.push_back(*c);
    strategy.Tell(*c, objective(*c));
  }
  return proposed;
}

std::set<std::string> Hashes(const std::vector<json>& candidates) {
  std::set<std::string> hashes;
  for (const json& c : candidates) hashes.insert(ConfigHash(c));
  return hashes;
}

// Trials until one within 5% of the optimum is measured, told a noisy objective (uniform
// +-1%, seeded), as a worker would measure it.
int TrialsToNearBest(Strategy& strategy, uint64_t noise_seed) {
  std::mt19937_64 noise(noise_seed);
  int trials = 0;
  while (std::optional<json> c = strategy.Propose()) {
    ++trials;
    if (Objective(*c) >= 0.95) return trials;
    const double u = static_cast<double>(noise() >> 11) * 0x1.0p-53;  // [0, 1)
    strategy.Tell(*c, Objective(*c) * (1 + 0.02 * (u - 0.5)));
  }
  return trials + 1;  // never found: worse than any count that did
}

double Median(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2.0;
}

TEST(StrategyTest, GridAndRandomCoverTheSpaceExactlyOnce) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  ASSERT_EQ(all.size(), 48u);

  const std::vector<json> grid = Drain(*MakeStrategy("grid", all, 1), Objective);
  EXPECT_EQ(grid, all);  // in list order

  const std::vector<json> random = Drain(*MakeStrategy("random", all, 1), Objective);
  EXPECT_EQ(random.size(), 48u);
  EXPECT_EQ(Hashes(random), Hashes(all));
  EXPECT_NE(random, all);
}

TEST(StrategyTest, RandomIsDeterministicPerSeed) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  const auto order = [&](uint64_t seed) {
    return Drain(*MakeRandomStrategy(all, seed), Objective);
  };
  EXPECT_EQ(order(7), order(7));
  EXPECT_NE(order(7), order(8));
  const auto tpe = [&](uint64_t seed) { return Drain(*MakeTpeStrategy(all, seed), Objective); };
  EXPECT_EQ(tpe(7), tpe(7));
}

TEST(StrategyTest, DuplicateCandidatesAreSearchedOnce) {
  std::vector<json> all = Enumerate(Space4x4x3(), 4);
  all.push_back(all[3]);
  for (const std::string& name : StrategyNames()) {
    const std::vector<json> proposed = Drain(*MakeStrategy(name, all, 3), Objective);
    EXPECT_EQ(Hashes(proposed).size(), proposed.size()) << name;
  }
}

TEST(StrategyTest, CoordinateDescentFindsASeparableOptimumWithFewTrials) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  const std::vector<json> proposed = Drain(*MakeStrategy("coordinate", all, 0), Objective);
  EXPECT_EQ(Hashes(proposed).size(), proposed.size());
  double best = 0;
  for (const json& c : proposed) best = std::max(best, Objective(c));
  EXPECT_DOUBLE_EQ(best, 1.0);
  // Dimensions in key order (dtype, streams, threads): one round reaches the optimum in
  // 1 + 3 + 2 + 3 trials; a second confirms it, where only the threads line is already measured.
  EXPECT_EQ(proposed.size(), 9u + 3 + 2);
  EXPECT_LT(proposed.size(), all.size());
}

TEST(StrategyTest, CoordinateDescentMovesAcrossConditionalDimensions) {
  SpaceDefinition space;
  space.dimensions = {
      {"dtype", {"fp32", "int8"}, std::nullopt},
      {"calibration", {"minmax", "histogram"}, std::make_pair("dtype", std::vector<json>{"int8"})},
      {"threads", {1, 2}, std::nullopt}};
  const std::vector<json> all = Enumerate(space, 2);  // 2 fp32 + 4 int8
  const auto objective = [](const json& c) {
    double v = c["threads"] == 2 ? 2 : 1;
    if (c["dtype"] == "int8") v *= c["calibration"] == "histogram" ? 3 : 2;
    return v;
  };
  const std::vector<json> proposed = Drain(*MakeCoordinateDescentStrategy(all), objective);
  double best = 0;
  for (const json& c : proposed) best = std::max(best, objective(c));
  EXPECT_DOUBLE_EQ(best, 6);
  EXPECT_EQ(Hashes(proposed).size(), proposed.size());
}

TEST(StrategyTest, CoordinateDescentStepsOverFailures) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  std::unique_ptr<Strategy> s = MakeCoordinateDescentStrategy(all);
  double best = 0;
  while (std::optional<json> c = s->Propose()) {
    // bf16 crashes the worker: a failed trial is data, never the best.
    const bool fails = (*c)["dtype"] == "bf16";
    if (!fails) best = std::max(best, Objective(*c));
    s->Tell(*c, fails ? std::nullopt : std::optional<double>(Objective(*c)));
  }
  EXPECT_DOUBLE_EQ(best, 1.0);
}

TEST(StrategyTest, TpeBeatsRandomToTheNeighbourhoodOfTheOptimum) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  std::vector<int> tpe;
  std::vector<int> random;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    tpe.push_back(TrialsToNearBest(*MakeTpeStrategy(all, seed), seed + 100));
    random.push_back(TrialsToNearBest(*MakeRandomStrategy(all, seed), seed + 100));
  }
  std::string report = "trials to within 5% of the best of 48, seeds 1-10:\n  tpe:   ";
  for (int t : tpe) report += std::to_string(t) + " ";
  report += " median " + std::to_string(Median(tpe)) + "\n  random: ";
  for (int t : random) report += std::to_string(t) + " ";
  report += " median " + std::to_string(Median(random));
  std::cout << report << "\n";
  RecordProperty("tpe_median_trials", std::to_string(Median(tpe)));
  RecordProperty("random_median_trials", std::to_string(Median(random)));

  EXPECT_LE(Median(tpe), 0.25 * static_cast<double>(all.size())) << report;
  EXPECT_LT(Median(tpe), Median(random)) << report;
}

TEST(StrategyTest, ResumedResultsAreNeverProposedAgain) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  // A study interrupted after ten trials, one of which failed, and the stock baseline, which is
  // not a candidate of the space.
  std::vector<json> done(all.begin() + 10, all.begin() + 20);
  for (const std::string& name : StrategyNames()) {
    std::unique_ptr<Strategy> s = MakeStrategy(name, all, 5);
    s->Tell(StockCandidate(4), 0.5);
    for (size_t i = 0; i < done.size(); ++i) {
      s->Tell(done[i], i == 3 ? std::nullopt : std::optional<double>(Objective(done[i])));
    }
    const std::vector<json> proposed = Drain(*s, Objective);
    const std::set<std::string> resumed = Hashes(done);
    for (const json& c : proposed) EXPECT_FALSE(resumed.count(ConfigHash(c))) << name << c;
    EXPECT_EQ(Hashes(proposed).size(), proposed.size()) << name;
    if (name != "coordinate") {
      EXPECT_EQ(proposed.size(), all.size() - done.size()) << name;
    }
  }
}

TEST(StrategyTest, CoordinateDescentResumesOnTheSamePath) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  const std::vector<json> uninterrupted = Drain(*MakeCoordinateDescentStrategy(all), Objective);
  ASSERT_GT(uninterrupted.size(), 5u);
  std::unique_ptr<Strategy> resumed = MakeCoordinateDescentStrategy(all);
  for (size_t i = 0; i < 5; ++i) resumed->Tell(uninterrupted[i], Objective(uninterrupted[i]));
  const std::vector<json> rest = Drain(*resumed, Objective);
  EXPECT_EQ(rest, std::vector<json>(uninterrupted.begin() + 5, uninterrupted.end()));
}

TEST(StrategyTest, UntoldProposalsCountAsFailedAndAreNotRepeated) {
  const std::vector<json> all = Enumerate(Space4x4x3(), 4);
  for (const std::string& name : StrategyNames()) {
    std::unique_ptr<Strategy> s = MakeStrategy(name, all, 2);
    std::vector<json> proposed;
    while (std::optional<json> c = s->Propose()) proposed.push_back(*c);
    EXPECT_EQ(Hashes(proposed).size(), proposed.size()) << name;
    EXPECT_FALSE(s->Propose()) << name;
  }
}

TEST(StrategyTest, EmptyListProposesNothing) {
  for (const std::string& name : StrategyNames()) {
    EXPECT_FALSE(MakeStrategy(name, {}, 1)->Propose()) << name;
    EXPECT_EQ(MakeStrategy(name, {}, 1)->name(), name);
  }
}

TEST(StrategyTest, UnknownNameListsTheKnownOnes) {
  try {
    MakeStrategy("bayes", {}, 1);
    FAIL() << "made an unknown strategy";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "unknown strategy 'bayes'; known: grid, random, coordinate, tpe");
  }
}

TEST(StrategyTest, TpeRejectsMeaninglessOptions) {
  TpeOptions options;
  options.gamma = 1;
  EXPECT_THROW(MakeTpeStrategy({}, 1, options), Error);
  options = {};
  options.prior_weight = 0;
  EXPECT_THROW(MakeTpeStrategy({}, 1, options), Error);
  options = {};
  options.n_startup = 0;
  EXPECT_THROW(MakeTpeStrategy({}, 1, options), Error);
}

}  // namespace
}  // namespace ipt::tuner
