#include "core/calibration/qparams.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/core/calibration/test_data.h"
#include "tests/core/calibration/torch_reference.h"

namespace ipt::calibration {
namespace {

constexpr QuantType kTypes[] = {QuantType::kU8, QuantType::kU7, QuantType::kS8};

TEST(QParamsTest, IntegerRanges) {
  EXPECT_EQ(IntegerRangeOf(QuantType::kU8).min, 0);
  EXPECT_EQ(IntegerRangeOf(QuantType::kU8).max, 255);
  EXPECT_EQ(IntegerRangeOf(QuantType::kU7).max, 127);
  EXPECT_EQ(IntegerRangeOf(QuantType::kS8).min, -128);
  EXPECT_EQ(IntegerRangeOf(QuantType::kS8).max, 127);
  EXPECT_EQ(ToString(QuantType::kU7), "u7");
}

TEST(QParamsTest, AffineFollowsPyTorchRule) {
  const QParams u8 = ChooseQParams({-1.0f, 3.0f}, QuantType::kU8, false);
  EXPECT_EQ(u8.scale, 4.0f / 255.0f);
  EXPECT_EQ(u8.zero_point, 64);  // 0 - round(-1 / (4 / 255)) = round(63.75)
  EXPECT_EQ(u8.qmin, 0);
  EXPECT_EQ(u8.qmax, 255);
  EXPECT_EQ(ChooseQParams({-1.0f, 3.0f}, QuantType::kS8, false).zero_point, -64);
  const QParams u7 = ChooseQParams({-1.0f, 3.0f}, QuantType::kU7, false);
  EXPECT_EQ(u7.scale, 4.0f / 127.0f);
  EXPECT_EQ(u7.zero_point, 32);  // round(31.75)
}

TEST(QParamsTest, ZeroPointRoundsHalfToEvenLikeTorchRound) {
  // Span 255 gives scale 1 exactly, so min / scale = -2.5: torch.round gives -2, not -3.
  const QParams params = ChooseQParams({-2.5f, 252.5f}, QuantType::kU8, false);
  EXPECT_EQ(params.scale, 1.0f);
  EXPECT_EQ(params.zero_point, 2);
}

TEST(QParamsTest, SymmetricZeroPointsFollowPyTorch) {
  const QParams s8 = ChooseQParams({-3.0f, 1.0f}, QuantType::kS8, true);
  EXPECT_EQ(s8.scale, 3.0f / 127.5f);
  EXPECT_EQ(s8.zero_point, 0);
  const QParams u8 = ChooseQParams({-3.0f, 1.0f}, QuantType::kU8, true);
  EXPECT_EQ(u8.scale, 3.0f / 127.5f);
  EXPECT_EQ(u8.zero_point, 128);
  const QParams u7 = ChooseQParams({-3.0f, 1.0f}, QuantType::kU7, true);
  EXPECT_EQ(u7.scale, 3.0f / 63.5f);
  EXPECT_EQ(u7.zero_point, 63);
}

TEST(QParamsTest, RangeAlwaysIncludesZero) {
  const QParams positive = ChooseQParams({2.0f, 5.0f}, QuantType::kU8, false);
  EXPECT_EQ(positive.scale, 5.0f / 255.0f);
  EXPECT_EQ(positive.zero_point, 0);
  const QParams negative = ChooseQParams({-5.0f, -2.0f}, QuantType::kU8, false);
  EXPECT_EQ(negative.scale, 5.0f / 255.0f);
  EXPECT_EQ(negative.zero_point, 255);
}

TEST(QParamsTest, AllZeroRangeGetsMinScaleAndValidZeroPoint) {
  for (const QuantType type : kTypes) {
    for (const bool symmetric : {false, true}) {
      const QParams params = ChooseQParams({0.0f, 0.0f}, type, symmetric);
      EXPECT_EQ(params.scale, kMinScale) << ToString(type) << symmetric;
      EXPECT_GT(params.scale, 0.0f);
      EXPECT_GE(params.zero_point, params.qmin);
      EXPECT_LE(params.zero_point, params.qmax);
    }
  }
}

TEST(QParamsTest, RangesBeyondFloatArithmeticDoNotOverflow) {
  const float big = 3e38f;
  const QParams affine = ChooseQParams({-big, big}, QuantType::kU8, false);
  EXPECT_TRUE(std::isfinite(affine.scale));
  EXPECT_NEAR(affine.scale, 6e38 / 255.0, 1e31);
  EXPECT_EQ(affine.zero_point, 128);  // round(127.5) ties to even
  const QParams symmetric = ChooseQParams({-big, big}, QuantType::kS8, true);
  EXPECT_EQ(symmetric.scale, big / 127.5f);
}

TEST(QParamsTest, RejectsInvalidRanges) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const Range range :
       {Range{nan, 1.0f}, Range{-inf, 1.0f}, Range{0.0f, inf}, Range{2.0f, 1.0f}}) {
    try {
      ChooseQParams(range, QuantType::kU8, false);
      ADD_FAILURE() << "accepted [" << range.min << ", " << range.max << "]";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("finite with min <= max"), std::string::npos);
    }
  }
}

TEST(PerChannelSymmetricScalesTest, ScalesEachChannelByItsMaxMagnitude) {
  const std::vector<float> weight = {1.0f, -2.54f, 0.5f,    // channel 0: max |w| 2.54
                                     0.0f, 0.0f,   0.0f,    // channel 1: zeros
                                     3e9f, -1.0f,  1e30f};  // channel 2: beyond int32
  const std::vector<float> scales = PerChannelSymmetricScales(weight.data(), 3, 3);
  ASSERT_EQ(scales.size(), 3u);
  EXPECT_EQ(scales[0], 2.54f / 127.0f);
  EXPECT_EQ(scales[1], kMinScale);
  EXPECT_EQ(scales[2], 1e30f / 127.0f);
}

TEST(PerChannelSymmetricScalesTest, RejectsNonFiniteWeightsNamingTheChannel) {
  const std::vector<float> weight = {1.0f, 2.0f, 3.0f, std::nanf(""), 1.0f, 1.0f};
  try {
    PerChannelSymmetricScales(weight.data(), 2, 3);
    FAIL() << "accepted NaN";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("weight channel 1 holds 1 non-finite value"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(PerChannelSymmetricScales(weight.data(), -1, 3), Error);
  EXPECT_THROW(PerChannelSymmetricScales(nullptr, 2, 3), Error);
  EXPECT_EQ(PerChannelSymmetricScales(nullptr, 2, 0), (std::vector<float>{kMinScale, kMinScale}));
}

TEST(PerChannelSymmetricScalesTest, MatchesPyTorchPerChannelSymmetric) {
  constexpr int64_t kChannels = 16;
  constexpr int64_t kPerChannel = 288;  // a 3x3 kernel over 32 input channels
  std::vector<float> weight = testing_util::Normal(kChannels * kPerChannel, 0.05f, 11);
  for (int64_t i = 0; i < kPerChannel; ++i) weight[3 * kPerChannel + i] = 0.0f;
  testing_util::TorchCase weights{"per_channel_symmetric",
                                  QuantType::kS8,
                                  true,
                                  "channels=" + std::to_string(kChannels),
                                  {weight}};
  const auto reference = testing_util::RunTorchReference({weights});
  const std::vector<float> scales =
      PerChannelSymmetricScales(weight.data(), kChannels, kPerChannel);
  ASSERT_EQ(reference[0].size(), scales.size());
  for (size_t c = 0; c < scales.size(); ++c) {
    EXPECT_EQ(scales[c], static_cast<float>(reference[0][c])) << "channel " << c;
  }
}

}  // namespace
}  // namespace ipt::calibration
