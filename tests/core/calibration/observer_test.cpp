#include "core/calibration/observer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/core/calibration/test_data.h"

namespace ipt::calibration {
namespace {

using testing_util::Normal;
using testing_util::Scaled;
using testing_util::Uniform;

constexpr Algorithm kAlgorithms[] = {Algorithm::kMinMax, Algorithm::kMovingAverageMinMax,
                                     Algorithm::kHistogram, Algorithm::kEntropy,
                                     Algorithm::kPercentile};

std::unique_ptr<Observer> Make(Algorithm algorithm) {
  AlgorithmSpec spec;
  spec.algorithm = algorithm;
  return MakeObserver(spec);
}

Range CalibrateOn(Algorithm algorithm, const std::vector<std::vector<float>>& batches,
                  QuantType type = QuantType::kU8, bool symmetric = false) {
  const std::unique_ptr<Observer> observer = Make(algorithm);
  for (const std::vector<float>& batch : batches) {
    observer->Observe(batch.data(), static_cast<int64_t>(batch.size()));
  }
  return observer->Calibrated(type, symmetric);
}

std::string ErrorText(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "no ipt::Error thrown";
  return "";
}

TEST(AlgorithmTest, NamesRoundTrip) {
  const std::vector<std::string> names = AlgorithmNames();
  EXPECT_EQ(names, (std::vector<std::string>{"minmax", "moving_average_minmax", "histogram",
                                             "entropy", "percentile"}));
  for (const std::string& name : names) EXPECT_EQ(ToString(ParseAlgorithm(name)), name);
}

TEST(AlgorithmTest, UnknownNameListsTheKnownOnes) {
  const std::string text = ErrorText([] { ParseAlgorithm("kl"); });
  EXPECT_NE(text.find("'kl'"), std::string::npos) << text;
  EXPECT_NE(text.find("minmax, moving_average_minmax, histogram, entropy, percentile"),
            std::string::npos)
      << text;
}

TEST(MakeObserverTest, RejectsSpecFieldsOutOfRange) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kMovingAverageMinMax;
  for (const double constant : {0.0, -0.1, 1.5, std::nan("")}) {
    spec.averaging_constant = constant;
    EXPECT_NE(ErrorText([&] { MakeObserver(spec); }).find("averaging_constant"), std::string::npos);
  }
  spec.algorithm = Algorithm::kPercentile;
  for (const double percentile : {20.0, 100.5, std::nan("")}) {
    spec.percentile = percentile;
    EXPECT_NE(ErrorText([&] { MakeObserver(spec); }).find("percentile"), std::string::npos);
  }
  spec.percentile = 99.9;
  spec.algorithm = Algorithm::kEntropy;
  spec.bins = 100;
  EXPECT_NE(ErrorText([&] { MakeObserver(spec); }).find("bins 100"), std::string::npos);
  spec.algorithm = Algorithm::kMinMax;  // bins do not matter to MinMax
  EXPECT_NO_THROW(MakeObserver(spec));
}

TEST(ObserverTest, CalibratedBeforeObserveThrows) {
  for (const Algorithm algorithm : kAlgorithms) {
    const std::unique_ptr<Observer> observer = Make(algorithm);
    observer->Observe(nullptr, 0);  // empty batches are ignored
    EXPECT_EQ(observer->calls(), 0);
    const std::string text = ErrorText([&] { observer->Calibrated(QuantType::kU8, false); });
    EXPECT_NE(text.find(std::string(ToString(algorithm)) + " observer has seen no data"),
              std::string::npos)
        << text;
  }
}

TEST(ObserverTest, RejectsInfAndNanNamingCountAndFirstIndex) {
  std::vector<float> batch = Normal(100, 1.0f, 1);
  batch[7] = std::numeric_limits<float>::quiet_NaN();
  batch[9] = std::numeric_limits<float>::infinity();
  batch[40] = -std::numeric_limits<float>::infinity();
  const std::vector<float> good = Normal(100, 1.0f, 2);
  for (const Algorithm algorithm : kAlgorithms) {
    const std::unique_ptr<Observer> observer = Make(algorithm);
    observer->Observe(good.data(), 100);
    const Range before = observer->Calibrated(QuantType::kU8, false);
    const std::string text = ErrorText([&] { observer->Observe(batch.data(), 100); });
    EXPECT_NE(text.find("holds 3 non-finite values (inf or NaN) among 100, the first at index 7"),
              std::string::npos)
        << text;
    EXPECT_EQ(observer->calls(), 1) << ToString(algorithm);
    const Range after = observer->Calibrated(QuantType::kU8, false);
    EXPECT_EQ(after.min, before.min) << ToString(algorithm);
    EXPECT_EQ(after.max, before.max) << ToString(algorithm);
  }
}

TEST(ObserverTest, RejectsBadBatchArguments) {
  const std::unique_ptr<Observer> observer = Make(Algorithm::kMinMax);
  EXPECT_NE(ErrorText([&] { observer->Observe(nullptr, 3); }).find("null"), std::string::npos);
  EXPECT_NE(ErrorText([&] { observer->Observe(nullptr, -1); }).find("negative"), std::string::npos);
}

TEST(ObserverTest, AllZeroGivesMinScaleAndValidZeroPoint) {
  const std::vector<float> zeros(1000, 0.0f);
  for (const Algorithm algorithm : kAlgorithms) {
    for (const QuantType type : {QuantType::kU8, QuantType::kU7, QuantType::kS8}) {
      for (const bool symmetric : {false, true}) {
        const Range range = CalibrateOn(algorithm, {zeros, zeros}, type, symmetric);
        EXPECT_EQ(range.min, 0.0f) << ToString(algorithm);
        EXPECT_EQ(range.max, 0.0f) << ToString(algorithm);
        const QParams params = ChooseQParams(range, type, symmetric);
        EXPECT_EQ(params.scale, kMinScale);
        EXPECT_GE(params.zero_point, params.qmin);
        EXPECT_LE(params.zero_point, params.qmax);
      }
    }
  }
}

TEST(ObserverTest, ConstantAndSingleElementKeepTheValue) {
  for (const Algorithm algorithm : kAlgorithms) {
    for (const std::vector<float>& batch :
         {std::vector<float>(500, 2.5f), std::vector<float>{2.5f}}) {
      const Range range = CalibrateOn(algorithm, {batch});
      EXPECT_EQ(range.max, 2.5f) << ToString(algorithm) << " size " << batch.size();
      const QParams params = ChooseQParams(range, QuantType::kU8, false);
      EXPECT_EQ(params.scale, 2.5f / 255.0f) << ToString(algorithm);
      EXPECT_EQ(params.zero_point, 0);
    }
  }
}

TEST(ObserverTest, NegativeOnlyDataUsesTheTopOfTheRange) {
  const std::vector<float> batch = Uniform(50000, -3.0f, -1.0f, 3);
  for (const Algorithm algorithm : kAlgorithms) {
    const Range range = CalibrateOn(algorithm, {batch});
    EXPECT_LE(range.max, 0.0f) << ToString(algorithm);
    const QParams params = ChooseQParams(range, QuantType::kU8, false);
    EXPECT_EQ(params.zero_point, 255) << ToString(algorithm);
    EXPECT_NEAR(params.scale, 3.0f / 255.0f, 0.05f * 3.0f / 255.0f) << ToString(algorithm);
  }
}

TEST(ObserverTest, ValuesBeyondInt32AndNearFloatMaxDoNotOverflow) {
  const std::vector<float> unit = Normal(20000, 1.0f, 4);
  for (const Algorithm algorithm : kAlgorithms) {
    const Range reference = CalibrateOn(algorithm, {unit}, QuantType::kS8, true);
    for (const float factor : {3e9f, 1e30f}) {
      // Calibration commutes with scaling up to float rounding of the scaled data.
      const Range range = CalibrateOn(algorithm, {Scaled(unit, factor)}, QuantType::kS8, true);
      EXPECT_NEAR(range.min / factor, reference.min, 1e-3f * std::fabs(reference.min))
          << ToString(algorithm) << " x" << factor;
      EXPECT_NEAR(range.max / factor, reference.max, 1e-3f * reference.max)
          << ToString(algorithm) << " x" << factor;
      const QParams params = ChooseQParams(range, QuantType::kS8, true);
      EXPECT_TRUE(std::isfinite(params.scale) && params.scale > 0.0f);
    }
    // A range growing 1e30-fold between batches, and one spanning nearly all of float.
    const Range grown = CalibrateOn(algorithm, {unit, Scaled(unit, 1e30f)});
    EXPECT_TRUE(std::isfinite(grown.min) && std::isfinite(grown.max)) << ToString(algorithm);
    EXPECT_GT(grown.max, 1e27f) << ToString(algorithm);  // the moving average moves 1% of it
    const Range widest = CalibrateOn(algorithm, {{-3e38f, 0.0f, 1.0f, 3e38f}});
    EXPECT_TRUE(std::isfinite(widest.min) && std::isfinite(widest.max)) << ToString(algorithm);
    EXPECT_TRUE(std::isfinite(ChooseQParams(widest, QuantType::kU8, false).scale));
  }
}

TEST(ObserverTest, CountsNonEmptyBatches) {
  const std::unique_ptr<Observer> observer = Make(Algorithm::kHistogram);
  const std::vector<float> batch = Normal(10, 1.0f, 5);
  observer->Observe(batch.data(), 10);
  observer->Observe(batch.data(), 0);
  observer->Observe(batch.data(), 10);
  EXPECT_EQ(observer->calls(), 2);
}

TEST(MovingAverageMinMaxTest, FirstBatchSetsTheRangeLaterOnesMoveIt) {
  AlgorithmSpec spec;
  spec.algorithm = Algorithm::kMovingAverageMinMax;
  spec.averaging_constant = 0.25;
  const std::unique_ptr<Observer> observer = MakeObserver(spec);
  const std::vector<float> first = {-1.0f, 1.0f};
  const std::vector<float> second = {-3.0f, 5.0f};
  observer->Observe(first.data(), 2);
  EXPECT_EQ(observer->Calibrated(QuantType::kU8, false).max, 1.0f);
  observer->Observe(second.data(), 2);
  const Range range = observer->Calibrated(QuantType::kU8, false);
  EXPECT_EQ(range.min, -1.5f);
  EXPECT_EQ(range.max, 2.0f);
}

// A ReLU's output: half exact zeros and a tail to 4 sigma. The zeros sit in the first bin of
// |x|; the TensorRT divergence taken over them as they are put the threshold under 2 sigma here
// (1.3 at u8) and at 1/8 of the range on ResNet-50 at u7, which clipped its activations until
// its outputs were noise.
TEST(EntropyObserverTest, ZerosOfAReluDoNotDragTheThresholdDown) {
  const std::vector<float> relu = testing_util::Relu(Normal(200000, 1.0f, 9));
  for (const QuantType type : {QuantType::kU7, QuantType::kU8}) {
    const Range range = CalibrateOn(Algorithm::kEntropy, {relu}, type);
    EXPECT_EQ(range.min, 0.0f);
    EXPECT_GT(range.max, 2.0f) << ToString(type);
  }
}

TEST(EntropyObserverTest, ClipsFarOutliers) {
  // N(0, 1) with 5 outliers at 50, and N(0, 100) with 5 at 1e4: thresholds at a few sigma.
  std::vector<float> batch = Normal(100000, 1.0f, 6);
  std::fill(batch.begin(), batch.begin() + 5, 50.0f);
  const Range unit = CalibrateOn(Algorithm::kEntropy, {batch}, QuantType::kS8, true);
  EXPECT_GT(unit.max, 3.0f);
  EXPECT_LT(unit.max, 8.0f);
  EXPECT_EQ(unit.min, -unit.max);
  const Range relu = CalibrateOn(Algorithm::kEntropy, {testing_util::Relu(batch)});
  EXPECT_EQ(relu.min, 0.0f);
  EXPECT_GT(relu.max, 3.0f);
  EXPECT_LT(relu.max, 8.0f);
  std::vector<float> wide = Normal(100000, 100.0f, 6);
  std::fill(wide.begin(), wide.begin() + 5, 1e4f);
  const Range hundred = CalibrateOn(Algorithm::kEntropy, {wide}, QuantType::kS8, true);
  EXPECT_GT(hundred.max, 300.0f);
  EXPECT_LT(hundred.max, 700.0f);
}

TEST(EntropyObserverTest, BulkWithinOneBinIsNotClipped) {
  // The limit of TensorRT's 2048 bins over [0, max|x|]: N(0, 1) with outliers at 1e4 puts the
  // whole bulk in bin 0 (width 4.9), which every candidate represents exactly, so KL has nothing
  // to trade against the outliers and keeps the whole range. More bins or percentile help here.
  std::vector<float> batch = Normal(100000, 1.0f, 6);
  std::fill(batch.begin(), batch.begin() + 5, 1e4f);
  EXPECT_EQ(CalibrateOn(Algorithm::kEntropy, {batch}, QuantType::kS8, true).max, 1e4f);
}

TEST(PercentileObserverTest, MatchesExactPercentilesWithinABin) {
  const std::vector<std::vector<float>> batches = {Normal(40000, 1.0f, 7),
                                                   Normal(40000, 2.0f, 8, 0.5f)};
  std::vector<float> all = batches[0];
  all.insert(all.end(), batches[1].begin(), batches[1].end());
  std::vector<float> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  std::vector<float> magnitudes(all.size());
  std::transform(all.begin(), all.end(), magnitudes.begin(), [](float v) { return std::fabs(v); });
  std::sort(magnitudes.begin(), magnitudes.end());
  // numpy's default (linear) percentile of sorted values.
  const auto percentile = [](const std::vector<float>& values, double p) {
    const double rank = p / 100 * static_cast<double>(values.size() - 1);
    const auto below = static_cast<size_t>(rank);
    return values[below] +
           (rank - static_cast<double>(below)) * (values[below + 1] - values[below]);
  };
  const double bin = (sorted.back() - sorted.front()) / 2048.0;
  for (const double p : {99.99, 99.9, 99.0}) {
    AlgorithmSpec spec;
    spec.algorithm = Algorithm::kPercentile;
    spec.percentile = p;
    const std::unique_ptr<Observer> observer = MakeObserver(spec);
    for (const std::vector<float>& batch : batches) observer->Observe(batch.data(), 40000);
    const Range affine = observer->Calibrated(QuantType::kU8, false);
    EXPECT_NEAR(affine.min, percentile(sorted, 100 - p), 2 * bin) << p;
    EXPECT_NEAR(affine.max, percentile(sorted, p), 2 * bin) << p;
    const Range symmetric = observer->Calibrated(QuantType::kS8, true);
    EXPECT_NEAR(symmetric.max, percentile(magnitudes, p), 2 * bin) << p;
    EXPECT_EQ(symmetric.min, -symmetric.max);
  }
}

}  // namespace
}  // namespace ipt::calibration
