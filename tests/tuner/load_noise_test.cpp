// The load-average noise check: the study's own workers are expected load, anything beyond
// half a CPU's worth is other load.
#include "tuner/load_noise.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ipt::tuner {
namespace {

// What the kernel's 1-minute average shows after `threads` busy threads ran for `seconds` on an
// otherwise idle machine.
double Busy(int threads, double seconds) { return threads * (1 - std::exp(-seconds / 60)); }

TEST(LoadMonitorTest, OwnLoadFollowsTheOneMinuteAverage) {
  LoadMonitor monitor;
  EXPECT_EQ(monitor.OwnLoad(0), 0);
  monitor.WorkerStarted(0, 1);
  EXPECT_NEAR(monitor.OwnLoad(60), 1 - std::exp(-1), 1e-12);
  monitor.WorkerEnded(60);
  // After the worker, its share decays with the same minute.
  EXPECT_NEAR(monitor.OwnLoad(120), (1 - std::exp(-1)) * std::exp(-1), 1e-12);
  monitor.WorkerStarted(120, 2);
  EXPECT_NEAR(monitor.OwnLoad(150), (1 - std::exp(-1)) * std::exp(-1.5) + Busy(2, 30), 1e-12);
}

TEST(LoadMonitorTest, AQuietMachineIsNotNoisy) {
  LoadMonitor monitor;
  monitor.WorkerStarted(0, 2);
  monitor.WorkerEnded(30);
  EXPECT_FALSE(monitor.OtherLoad(0.0, 0, Busy(2, 30), 30).has_value());
}

TEST(LoadMonitorTest, OtherLoadBeyondHalfACpuIsNoisy) {
  LoadMonitor monitor;
  monitor.WorkerStarted(0, 2);
  monitor.WorkerEnded(30);
  // A compiler kept one CPU busy all along: it shows at both ends, the end more.
  const std::optional<std::string> reason = monitor.OtherLoad(0.9, 0, Busy(2, 30) + 1.0, 30);
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("1-minute load average 1.79 at the trial's end"), std::string::npos)
      << *reason;
  EXPECT_NE(reason->find("account for about 0.79"), std::string::npos) << *reason;
  EXPECT_FALSE(monitor.OtherLoad(0.3, 0, Busy(2, 30) + 0.4, 30).has_value());
}

// The naive check, load minus this worker's threads, would call this noisy: a 4-thread worker
// just ended and its load decays through the next, 1-thread, trial.
TEST(LoadMonitorTest, AnEarlierWorkersDecayingLoadIsNotOtherLoad) {
  LoadMonitor monitor;
  monitor.WorkerStarted(0, 4);
  monitor.WorkerEnded(120);
  monitor.WorkerStarted(120, 1);
  monitor.WorkerEnded(125);
  const double kernel = Busy(4, 120) * std::exp(-5.0 / 60) + Busy(1, 5);
  ASSERT_GT(kernel - 1, 2.0);
  EXPECT_FALSE(monitor.OtherLoad(Busy(4, 120), 120, kernel, 125).has_value());
}

TEST(LoadMonitorTest, UnreadableLoadIsNeverNoisy) {
  LoadMonitor monitor;
  monitor.WorkerStarted(0, 1);
  monitor.WorkerEnded(5);
  EXPECT_FALSE(monitor.OtherLoad(std::nullopt, 0, std::nullopt, 5).has_value());
  EXPECT_TRUE(monitor.OtherLoad(std::nullopt, 0, 3.0, 5).has_value());
}

}  // namespace
}  // namespace ipt::tuner
