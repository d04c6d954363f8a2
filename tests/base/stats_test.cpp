#include "base/stats.h"

#include <gtest/gtest.h>

namespace ipt::stats {
namespace {

TEST(StatsTest, QuantilesInterpolateLikeNumpy) {
  std::vector<double> s = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(Median(s), 2.5);
  EXPECT_DOUBLE_EQ(Quantile(s, 0.0), 1);
  EXPECT_DOUBLE_EQ(Quantile(s, 1.0), 4);
  EXPECT_DOUBLE_EQ(Quantile(s, 0.9), 3.7);  // numpy.percentile([1,2,3,4], 90)
}

TEST(StatsTest, SpreadUsesSampleStddev) {
  std::vector<double> s = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(Mean(s), 5);
  EXPECT_NEAR(Stddev(s), 2.138089935, 1e-9);
  EXPECT_NEAR(CoefficientOfVariation(s), 2.138089935 / 5, 1e-9);
  EXPECT_EQ(Stddev({3.0}), 0);
}

TEST(StatsTest, QuantileOfNothingIsAnError) { EXPECT_ANY_THROW(Quantile({}, 0.5)); }

}  // namespace
}  // namespace ipt::stats
