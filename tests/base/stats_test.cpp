#include "base/stats.h"

#include <gtest/gtest.h>

#include "base/error.h"

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

// scipy is not installed here, so the expected values come from this independent reference
// (ranks by counting, the exact p-value by enumerating every split of the pooled values), which
// follows scipy.stats.mannwhitneyu(a, b, alternative='two-sided'):
//
//   import itertools, math
//   def mwu(a, b):
//       pooled = a + b
//       rank = lambda v: sum(x < v for x in pooled) + (sum(x == v for x in pooled) + 1) / 2
//       u = sum(rank(v) for v in a) - len(a) * (len(a) + 1) / 2
//       n1, n2, n = len(a), len(b), len(a) + len(b)
//       ties = sum(t**3 - t for t in (pooled.count(v) for v in set(pooled)))
//       sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
//       d = u - n1 * n2 / 2
//       z = math.copysign(max(abs(d) - 0.5, 0) / sd, d)
//       p = min(1, math.erfc(abs(z) / math.sqrt(2)))
//       if n1 < 8 and n2 < 8 and ties == 0:
//           s = sorted(pooled)
//           us = [sum(sum(x > y for y in s if y not in c) for x in c)
//                 for c in itertools.combinations(s, n1)]
//           p = min(1, 2 * sum(v >= n1 * n2 / 2 + abs(d) for v in us) / len(us))
//       return u, z, p
TEST(StatsTest, MannWhitneySmallSamplesWithoutTiesAreExact) {
  // 4 of the C(11, 5) = 462 splits have U <= 2: p = 2 * 4 / 462.
  MannWhitneyResult r = MannWhitneyU({1.1, 2.3, 3.5, 4.2, 5.9}, {6.1, 7.4, 8.8, 3.9, 10.2, 9.5});
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 2);
  EXPECT_NEAR(r.z, -2.282177322938192, 1e-12);
  EXPECT_NEAR(r.p_value, 0.017316017316017316, 1e-12);

  r = MannWhitneyU({3, 1, 2}, {4, 5});
  EXPECT_TRUE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 0);
  EXPECT_NEAR(r.p_value, 0.2, 1e-12);

  // The test is symmetric: swapping the samples mirrors U and z and keeps p.
  r = MannWhitneyU({4, 5}, {3, 1, 2});
  EXPECT_DOUBLE_EQ(r.u, 6);
  EXPECT_NEAR(r.p_value, 0.2, 1e-12);
}

TEST(StatsTest, MannWhitneyWithTiesUsesTheCorrectedNormalApproximation) {
  MannWhitneyResult r =
      MannWhitneyU({1, 2, 2, 3, 3, 3, 4, 5, 6, 6}, {3, 4, 4, 5, 5, 6, 7, 7, 8, 8, 9, 9});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 18.5);
  EXPECT_NEAR(r.z, -2.7235258624087213, 1e-12);
  EXPECT_NEAR(r.p_value, 0.006458915835856495, 1e-12);

  // Small, but a tie rules out the exact distribution.
  r = MannWhitneyU({1, 2, 2}, {2, 3, 4});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 1);
  EXPECT_NEAR(r.z, -1.3912166872805047, 1e-12);
  EXPECT_NEAR(r.p_value, 0.16415972847851523, 1e-12);
}

TEST(StatsTest, MannWhitneyLargeSamplesWithoutTiesAreAsymptotic) {
  MannWhitneyResult r =
      MannWhitneyU({10.2, 10.4, 10.1, 10.3, 10.5, 10.0, 10.6, 10.7, 10.8},
                   {10.25, 10.45, 10.15, 10.35, 10.55, 10.05, 10.65, 10.75, 10.85});
  EXPECT_FALSE(r.exact);
  EXPECT_DOUBLE_EQ(r.u, 36);
  EXPECT_NEAR(r.z, -0.35320862855067836, 1e-12);
  EXPECT_NEAR(r.p_value, 0.7239320396139757, 1e-12);
}

TEST(StatsTest, MannWhitneyOfIdenticalValuesFindsNoDifference) {
  const MannWhitneyResult r =
      MannWhitneyU(std::vector<double>(9, 5.0), std::vector<double>(9, 5.0));
  EXPECT_DOUBLE_EQ(r.u, 40.5);
  EXPECT_DOUBLE_EQ(r.z, 0);
  EXPECT_DOUBLE_EQ(r.p_value, 1);
}

TEST(StatsTest, MannWhitneyNeedsTwoSamples) {
  try {
    MannWhitneyU({}, {1.0});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(StatsTest, BootstrapIsDeterministicPerSeed) {
  const std::vector<double> a = {10.1, 10.4, 9.8, 10.0, 10.6, 9.9, 10.2, 10.3, 10.1};
  const std::vector<double> b = {8.0, 8.3, 7.9, 8.1, 8.4, 7.7, 8.2, 8.0, 8.1};
  const BootstrapInterval first = BootstrapRatioOfMedians(a, b, 0.95, 2000, 7);
  const BootstrapInterval again = BootstrapRatioOfMedians(a, b, 0.95, 2000, 7);
  const BootstrapInterval other = BootstrapRatioOfMedians(a, b, 0.95, 2000, 8);
  EXPECT_EQ(first.low, again.low);
  EXPECT_EQ(first.high, again.high);
  EXPECT_TRUE(first.low != other.low || first.high != other.high);

  EXPECT_DOUBLE_EQ(first.estimate, 10.1 / 8.1);
  EXPECT_LE(first.low, first.estimate);
  EXPECT_GE(first.high, first.estimate);
  // 25% apart with about 2% spread: the interval must exclude "no difference".
  EXPECT_GT(first.low, 1.15);
  EXPECT_LT(first.high, 1.35);
}

TEST(StatsTest, BootstrapOfOverlappingSamplesContainsOne) {
  const std::vector<double> a = {10.1, 10.4, 9.8, 10.0, 10.6, 9.9, 10.2, 10.3, 10.1};
  const std::vector<double> b = {10.0, 10.5, 9.9, 10.2, 10.3, 9.7, 10.1, 10.4, 10.0};
  const BootstrapInterval i = BootstrapRatioOfMedians(a, b, 0.95, 2000, 1);
  EXPECT_LT(i.low, 1);
  EXPECT_GT(i.high, 1);
  // A wider confidence never gives a narrower interval for the same draws.
  const BootstrapInterval wide = BootstrapRatioOfMedians(a, b, 0.99, 2000, 1);
  EXPECT_LE(wide.low, i.low);
  EXPECT_GE(wide.high, i.high);
}

TEST(StatsTest, BootstrapOfConstantSamplesIsAPoint) {
  const BootstrapInterval i = BootstrapRatioOfMedians({6, 6, 6}, {3, 3}, 0.9, 100, 1);
  EXPECT_DOUBLE_EQ(i.estimate, 2);
  EXPECT_DOUBLE_EQ(i.low, 2);
  EXPECT_DOUBLE_EQ(i.high, 2);
}

TEST(StatsTest, BootstrapRejectsWhatHasNoRatio) {
  const auto code_of = [](auto call) {
    try {
      call();
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code_of([] { BootstrapRatioOfMedians({}, {1}, 0.95, 10, 1); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([] {
              BootstrapRatioOfMedians({1}, {0, 1}, 0.95, 10, 1);
            }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([] { BootstrapRatioOfMedians({1}, {1}, 1.0, 10, 1); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([] { BootstrapRatioOfMedians({1}, {1}, 0.95, 0, 1); }),
            ErrorCode::kInvalidArgument);
}

TEST(StatsTest, UniformIndexStaysInRangeAndCoversIt) {
  std::mt19937_64 engine(3);
  std::vector<int> seen(5, 0);
  for (int i = 0; i < 1000; ++i) ++seen[UniformIndex(engine, 5)];
  for (int count : seen) EXPECT_GT(count, 150);
  EXPECT_EQ(UniformIndex(engine, 1), 0u);
}

}  // namespace
}  // namespace ipt::stats
