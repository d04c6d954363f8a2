#include "core/measure.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

namespace ipt::core {
namespace {

TEST(MeasureTest, StopsWhenBothDurationAndCountAreMet) {
  MeasureOptions o;
  o.warmup_s = 0;
  o.warmup_calls = 1;
  o.block_s = 0.02;
  o.min_blocks = 4;
  o.min_total_s = 0.1;
  o.min_calls = 30;
  int64_t calls = 0;
  auto r = MeasureInterleaved({[&] {
                                ++calls;
                                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                              }},
                              {8}, o);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_GE(r[0].blocks.size(), 4u);
  EXPECT_GE(r[0].latencies_ms.size(), 30u);
  double measured = 0;
  for (const Block& b : r[0].blocks) measured += b.seconds;
  EXPECT_GE(measured, 0.1);
  // Warm-up calls are run but not timed.
  EXPECT_EQ(calls, static_cast<int64_t>(r[0].latencies_ms.size()) + 1);
  EXPECT_NEAR(r[0].MedianMs(), 2.0, 1.5);
  // 8 items per ~2 ms call.
  EXPECT_NEAR(r[0].ItemsPerSecond(), 8 / 0.002, 8 / 0.002 * 0.6);
}

TEST(MeasureTest, InterleavesCandidatesBlockByBlock) {
  MeasureOptions o;
  o.warmup_s = 0;
  o.warmup_calls = 0;
  o.block_s = 0.005;
  o.min_blocks = 3;
  o.min_total_s = 0;
  o.min_calls = 1;
  std::vector<size_t> order;
  MeasureInterleaved({[] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); },
                      [] { std::this_thread::sleep_for(std::chrono::milliseconds(3)); }},
                     {1, 1}, o, [&](size_t i, size_t, double) { order.push_back(i); });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 0, 1, 0, 1}));
}

TEST(MeasureTest, SlowerCandidateHasLowerThroughput) {
  MeasureOptions o;
  o.warmup_s = 0;
  o.block_s = 0.01;
  o.min_blocks = 3;
  o.min_total_s = 0;
  auto r = MeasureInterleaved({[] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); },
                               [] { std::this_thread::sleep_for(std::chrono::milliseconds(4)); }},
                              {1, 1}, o);
  EXPECT_GT(r[0].ItemsPerSecond(), 2 * r[1].ItemsPerSecond());
}

}  // namespace
}  // namespace ipt::core

namespace ipt::core {
namespace {

TEST(MeasureTest, ReportsTheTimeCeilingWhenTheMinimumsWereNotMet) {
  MeasureOptions o;
  o.warmup_s = 0;
  o.warmup_calls = 0;
  o.block_s = 0.01;
  o.min_blocks = 1000;
  o.max_total_s = 0.05;
  auto r = MeasureInterleaved({[] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }},
                              {1}, o);
  EXPECT_TRUE(r[0].hit_time_ceiling);
  o.min_blocks = 2;
  o.min_total_s = 0;
  o.min_calls = 1;
  o.max_total_s = 10;
  r = MeasureInterleaved({[] {}}, {1}, o);
  EXPECT_FALSE(r[0].hit_time_ceiling);
}

TEST(MeasureTest, MeasuringForShareKeepsTheOverheadToItsPart) {
  // 3 s of set-up at 70%: 7 s measuring, so 7 / (3 + 7) of the time measures.
  EXPECT_DOUBLE_EQ(MeasuringForShare(3.0, 0.7), 7.0);
  EXPECT_DOUBLE_EQ(MeasuringForShare(2.0, 0.5), 2.0);
  const double m = MeasuringForShare(1.7, 0.85);
  EXPECT_NEAR(m / (m + 1.7), 0.85, 1e-12);
  EXPECT_EQ(MeasuringForShare(3.0, 0.0), 0.0) << "off";
  EXPECT_EQ(MeasuringForShare(3.0, 1.0), 0.0) << "no finite time reaches 100%";
  EXPECT_EQ(MeasuringForShare(3.0, -0.5), 0.0);
  EXPECT_EQ(MeasuringForShare(0.0, 0.7), 0.0);
  EXPECT_EQ(MeasuringForShare(std::nan(""), 0.7), 0.0);
}

}  // namespace
}  // namespace ipt::core
