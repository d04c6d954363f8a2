#include "core/calibration/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "base/error.h"
#include "tests/core/calibration/test_data.h"

namespace ipt::calibration {
namespace {

using testing_util::Normal;
using testing_util::Uniform;

Histogram Filled(const std::vector<float>& data, int64_t bins = 2048) {
  Histogram histogram(bins);
  const auto [low, high] = std::minmax_element(data.begin(), data.end());
  histogram.Add(data.data(), static_cast<int64_t>(data.size()), *low, *high, false);
  return histogram;
}

double Total(const Histogram& histogram) {
  return std::accumulate(histogram.counts().begin(), histogram.counts().end(), 0.0);
}

TEST(HistogramTest, FirstBatchBinsLikeTorchHistc) {
  const std::vector<float> data = {0.0f, 0.5f, 1.0f, 0.2499f};
  const Histogram histogram = Filled(data, 4);
  EXPECT_EQ(histogram.counts(), (std::vector<float>{2, 0, 1, 1}));  // 1.0 is in the last bin
  EXPECT_EQ(histogram.min(), 0.0f);
  EXPECT_EQ(histogram.max(), 1.0f);
  EXPECT_EQ(histogram.Edge(2), 0.5f);
}

TEST(HistogramTest, AbsoluteModeBinsMagnitudes) {
  const std::vector<float> data = {-3.0f, 1.0f, -0.1f};
  Histogram histogram(4);
  histogram.Add(data.data(), 3, 0.0f, 3.0f, /*absolute=*/true);
  EXPECT_EQ(histogram.counts(), (std::vector<float>{1, 1, 0, 1}));
}

TEST(HistogramTest, KeepsEveryCountAsTheRangeGrows) {
  Histogram histogram(2048);
  double observed = 0;
  float low = 0.0f;
  float high = 0.0f;
  uint32_t seed = 1;
  for (const float stddev : {1.0f, 2.0f, 0.5f, 7.0f, 3.0f}) {
    const std::vector<float> batch = Normal(20000, stddev, seed++, stddev / 3);
    const auto [batch_low, batch_high] = std::minmax_element(batch.begin(), batch.end());
    histogram.Add(batch.data(), 20000, *batch_low, *batch_high, false);
    observed += 20000;
    low = std::min(low, *batch_low);
    high = std::max(high, *batch_high);
    EXPECT_NEAR(Total(histogram), observed, observed * 1e-6);
  }
  EXPECT_LE(histogram.min(), low);
  EXPECT_GE(histogram.max(), high);
}

TEST(HistogramTest, GrowthBeyondTheSubBinGridCollapsesOldCounts) {
  Histogram histogram(2048);
  const std::vector<float> small = Uniform(1000, 0.0f, 1.0f, 3);
  histogram.Add(small.data(), 1000, 0.0f, 1.0f, false);
  const std::vector<float> huge = {0.0f, 1e30f};
  histogram.Add(huge.data(), 2, 0.0f, 1e30f, false);
  EXPECT_EQ(histogram.min(), 0.0f);
  EXPECT_GE(histogram.max(), 1e30f);
  EXPECT_TRUE(std::isfinite(histogram.max()));
  EXPECT_NEAR(Total(histogram), 1002, 1e-3);
  EXPECT_EQ(histogram.counts()[0], 1001.0f);
}

TEST(HistogramTest, SpansBeyondFloatArithmeticAreBinnedInDouble) {
  const std::vector<float> data = {-3e38f, 0.0f, 3e38f};
  const Histogram histogram = Filled(data, 256);
  EXPECT_EQ(histogram.counts()[0], 1.0f);
  EXPECT_EQ(histogram.counts()[128], 1.0f);
  EXPECT_EQ(histogram.counts()[255], 1.0f);
  const Range range = L2OptimalRange(histogram, 256);
  EXPECT_TRUE(std::isfinite(range.min) && std::isfinite(range.max));
}

TEST(HistogramTest, HistoryOfOneValueIsReplacedLikePyTorch) {
  Histogram histogram(256);
  const std::vector<float> constant(10, 2.0f);
  histogram.Add(constant.data(), 10, 2.0f, 2.0f, false);
  EXPECT_EQ(Total(histogram), 10);
  const std::vector<float> batch = Uniform(100, -1.0f, 1.0f, 5);
  const auto [low, high] = std::minmax_element(batch.begin(), batch.end());
  histogram.Add(batch.data(), 100, *low, *high, false);
  EXPECT_EQ(Total(histogram), 100);
  EXPECT_EQ(histogram.max(), *high);
}

TEST(HistogramTest, RejectsBadBinCounts) {
  EXPECT_THROW(Histogram(0), Error);
  EXPECT_THROW(Histogram(Histogram::kMaxBins + 1), Error);
}

TEST(L2OptimalRangeTest, KeepsAUniformRange) {
  const Range range = L2OptimalRange(Filled(Uniform(100000, -1.0f, 1.0f, 7)), 256);
  EXPECT_NEAR(range.min, -1.0f, 0.01f);
  EXPECT_NEAR(range.max, 1.0f, 0.01f);
}

TEST(L2OptimalRangeTest, TrimsHeavyTails) {
  const std::vector<float> data = testing_util::HeavyTailed(100000, 1.0f, 9);
  const auto [low, high] = std::minmax_element(data.begin(), data.end());
  const Range range = L2OptimalRange(Filled(data), 256);
  EXPECT_LT(range.max - range.min, 0.95f * (*high - *low));
  EXPECT_LT(range.min, -5.0f);
  EXPECT_GT(range.max, 5.0f);
}

TEST(L2OptimalRangeTest, DegenerateHistogramReturnsItsValue) {
  const Range range = L2OptimalRange(Filled({4.0f, 4.0f}), 256);
  EXPECT_EQ(range.min, 4.0f);
  EXPECT_EQ(range.max, 4.0f);
  EXPECT_THROW(L2OptimalRange(Histogram(256), 256), Error);
}

// The GTC 2017 slide's example histogram, quantized to 2 levels.
const std::vector<double> kSlideCounts = {1, 0, 2, 3, 5, 3, 1, 7};

double Term(double p, double q) { return p * std::log(p / q); }

TEST(EntropyTest, DivergencesMatchTheDefinitionByHand) {
  const std::vector<double> divergences = EntropyDivergences(kSlideCounts, 2);
  ASSERT_EQ(divergences.size(), 7u);  // i = 2 .. 8
  // i = 2: P = [1, 21] / 22; Q = [1, 0] / 1, its empty clip bin smoothed to kEmptyBinCount.
  EXPECT_NEAR(divergences[0], Term(1.0 / 22, 1.0) + Term(21.0 / 22, kEmptyBinCount), 1e-12);
  // i = 4: P = [1, 0, 2, 19] / 22; levels [1, 0] and [2, 3] give Q = [1, 0, 2.5, 2.5] / 6.
  EXPECT_NEAR(divergences[2],
              Term(1.0 / 22, 1.0 / 6) + Term(2.0 / 22, 2.5 / 6) + Term(19.0 / 22, 2.5 / 6), 1e-12);
  // i = 5: P = [1, 0, 2, 3, 16] / 22; the last level takes the remainder: [2, 3, 5] -> 10/3 each.
  const double third = 10.0 / 3 / 11;
  EXPECT_NEAR(divergences[3],
              Term(1.0 / 22, 1.0 / 11) + Term(2.0 / 22, third) + Term(3.0 / 22, third) +
                  Term(16.0 / 22, third),
              1e-12);
  // i = 8: nothing clipped; Q = [2, 0, 2, 2, 4, 4, 4, 4] / 22 (the slide's expansion).
  EXPECT_NEAR(divergences[6],
              Term(1.0 / 22, 2.0 / 22) + Term(2.0 / 22, 2.0 / 22) + Term(3.0 / 22, 2.0 / 22) +
                  Term(5.0 / 22, 4.0 / 22) + Term(3.0 / 22, 4.0 / 22) + Term(1.0 / 22, 4.0 / 22) +
                  Term(7.0 / 22, 4.0 / 22),
              1e-12);
  const auto best = std::min_element(divergences.begin(), divergences.end()) - divergences.begin();
  EXPECT_EQ(EntropyOptimalBins(kSlideCounts, 2), 2 + best);
}

TEST(EntropyTest, ClipBinSharesItsLevelMassWhereItHoldsClippedValues) {
  // i = 3 of {2, 2, 0, 0, 0, 4}: P = [2, 2, 4] / 8; the last level (bins 1-2, counts 2 and 0)
  // spreads its 2 over both bins because P is nonzero in both: Q = [2, 1, 1] / 4.
  const std::vector<double> divergences = EntropyDivergences({2, 2, 0, 0, 0, 4}, 2);
  EXPECT_NEAR(divergences[1],
              Term(2.0 / 8, 2.0 / 4) + Term(2.0 / 8, 1.0 / 4) + Term(4.0 / 8, 1.0 / 4), 1e-12);
}

TEST(EntropyTest, UniformDataKeepsEveryBin) {
  EXPECT_EQ(EntropyOptimalBins(std::vector<double>(2048, 5.0), 128), 2048);
}

TEST(EntropyTest, TiesGoToTheSmallestThreshold) {
  // Bins 0-1 hold the bulk, 1 outlier sits in the last bin. For i in [3, 5] each bulk bin is a
  // level of its own and the outlier costs the same: a tie, below every wider candidate.
  const std::vector<double> counts = {5000, 2000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const std::vector<double> divergences = EntropyDivergences(counts, 3);
  EXPECT_EQ(divergences[0], divergences[1]);
  EXPECT_EQ(divergences[0], divergences[2]);
  EXPECT_LT(divergences[0], divergences.back());
  EXPECT_EQ(EntropyOptimalBins(counts, 3), 3);
}

TEST(EntropyTest, ClipsAFarTail) {
  // 5050 values over bins [0, 100), 3 outliers in the last bin. Every i in [128, 255] keeps the
  // 100 bins exact (one bin per level) and pays the same for the outliers; from 256 on, levels
  // merge bins and lose information.
  std::vector<double> counts(2048, 0.0);
  for (int b = 0; b < 100; ++b) counts[static_cast<size_t>(b)] = 100.0 - b;
  counts.back() = 3;
  EXPECT_EQ(EntropyOptimalBins(counts, 128), 128);
}

TEST(EntropyTest, NeverClipsEverythingIntoOneBin) {
  // Magnitudes in the upper two thirds only: i = 1366 would hold all counts in bin 1365, a
  // distribution 128 levels represent exactly (KL 0).
  std::vector<double> counts(2048, 0.0);
  std::fill(counts.begin() + 1365, counts.end(), 10.0);
  const std::vector<double> divergences = EntropyDivergences(counts, 128);
  EXPECT_TRUE(std::isinf(divergences[1366 - 128]));
  EXPECT_EQ(EntropyOptimalBins(counts, 128), 2048);
  // Everything in the last bin (a constant tensor): no finite candidate, the whole range.
  std::vector<double> constant(2048, 0.0);
  constant.back() = 7;
  EXPECT_EQ(EntropyOptimalBins(constant, 128), 2048);
}

TEST(EntropyTest, RejectsLevelsOutsideTheHistogram) {
  EXPECT_THROW(EntropyDivergences(kSlideCounts, 0), Error);
  EXPECT_THROW(EntropyDivergences(kSlideCounts, 9), Error);
}

TEST(QuantileTest, InterpolatesWithinBins) {
  const Histogram histogram = Filled(Uniform(100000, 0.0f, 1.0f, 13));
  EXPECT_NEAR(Quantile(histogram, 0.5), 0.5, 0.01);
  EXPECT_NEAR(Quantile(histogram, 0.9), 0.9, 0.01);
  EXPECT_NEAR(Quantile(histogram, 0.0), histogram.min(), 1e-3);
  EXPECT_NEAR(Quantile(histogram, 1.0), histogram.max(), 1e-3);
}

TEST(QuantileTest, AbsQuantileFoldsBothSides) {
  const Histogram histogram = Filled(Uniform(100000, -1.0f, 1.0f, 17));
  EXPECT_NEAR(AbsQuantile(histogram, 0.5), 0.5, 0.01);
  EXPECT_NEAR(AbsQuantile(histogram, 0.99), 0.99, 0.01);
  EXPECT_NEAR(AbsQuantile(histogram, 1.0), 1.0, 0.01);
}

}  // namespace
}  // namespace ipt::calibration
