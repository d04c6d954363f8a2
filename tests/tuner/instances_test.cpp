#include "tuner/instances.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "tuner/objective.h"

namespace ipt::tuner {
namespace {

using nlohmann::json;

json Instance(const std::string& cpus, double items_per_s, json blocks, json latencies,
              json warnings = json::array()) {
  return {{"name", "recipe"},
          {"batch", 1},
          {"items_per_call", 1},
          {"cpus", cpus},
          {"threads", 1},
          {"items_per_s", items_per_s},
          {"median_ms", 1.0},
          {"cv", 0.01},
          {"noisy", false},
          {"blocks", blocks},
          {"latencies_ms", latencies},
          {"setup_s", 2.0},
          {"accuracy", {{"loss", 0}}},
          {"warnings", warnings},
          {"memory", {{"node", 0}, {"bound", true}}}};
}

TEST(MergeInstanceResultsTest, SumsThroughputAndBlocksAndKeepsCallsInBlockOrder) {
  // Instance 0: blocks of 2 and 1 calls; instance 1: 1, 2 and one extra block of 1 call.
  json a = Instance(
      "0", 100, json::array({{{"calls", 2}, {"seconds", 0.2}}, {{"calls", 1}, {"seconds", 0.1}}}),
      json::array({1.0, 2.0, 3.0}), json::array({"memory not bound: x"}));
  json b = Instance("1", 50,
                    json::array({{{"calls", 1}, {"seconds", 0.2}},
                                 {{"calls", 2}, {"seconds", 0.3}},
                                 {{"calls", 1}, {"seconds", 0.1}}}),
                    json::array({10.0, 20.0, 30.0, 40.0}), json::array({"memory not bound: x"}));
  b["setup_s"] = 5.0;
  b["cv"] = 0.2;
  json m = MergeInstanceResults({a, b});
  EXPECT_DOUBLE_EQ(m.at("items_per_s").get<double>(), 150);
  EXPECT_EQ(m.at("threads"), 2);
  EXPECT_EQ(m.at("cpus"), "0,1");
  EXPECT_DOUBLE_EQ(m.at("setup_s").get<double>(), 5.0) << "the slowest instance's";
  EXPECT_DOUBLE_EQ(m.at("cv").get<double>(), 0.2) << "the worst";
  EXPECT_EQ(m.at("blocks"),
            json::array({{{"calls", 3}, {"seconds", 0.2}}, {{"calls", 3}, {"seconds", 0.2}}}));
  // Block 0: a's first two calls, b's first; block 1: a's third, b's second and third. b's
  // fourth call is in a block a does not have.
  EXPECT_EQ(m.at("latencies_ms"), json::array({1.0, 2.0, 10.0, 3.0, 20.0, 30.0}));
  EXPECT_EQ(m.at("samples"), 6);
  EXPECT_DOUBLE_EQ(m.at("median_ms").get<double>(), 6.5);
  EXPECT_EQ(m.at("warnings"), json::array({"memory not bound: x"})) << "each warning once";
  EXPECT_FALSE(m.contains("memory"));
  ASSERT_EQ(m.at("instances").size(), 2u);
  EXPECT_EQ(m.at("instances")[1].at("cpus"), "1");
  EXPECT_EQ(m.at("instances")[1].at("items_per_s"), 50);
  EXPECT_TRUE(m.at("instances")[0].at("memory").at("bound").get<bool>());
  EXPECT_EQ(m.at("accuracy"), a.at("accuracy"));

  // The comparison after the search reads the merged blocks like any candidate's.
  const std::vector<double> rates = BlockValues(Objective::kThroughput, m, 1);
  ASSERT_EQ(rates.size(), 2u);
  EXPECT_DOUBLE_EQ(rates[0], 15.0);
  const std::vector<double> medians = BlockValues(Objective::kP50, m, 1);
  EXPECT_EQ(medians, (std::vector<double>{2.0, 20.0}));
}

TEST(MergeInstanceResultsTest, NothingToMergeIsABug) {
  EXPECT_THROW(MergeInstanceResults({}), Error);
}

}  // namespace
}  // namespace ipt::tuner
