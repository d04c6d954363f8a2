// The terminal front end of a tuning study: progress on stderr, the results table on stdout.
#pragma once

#include <atomic>

#include "tuner/study.h"

namespace ipt::app {

struct HeadlessOptions {
  bool headless = false;
  double trial_timeout_s = 600;
  tuner::StudyOptions study;
};

// Returns the process exit status: 0 when a recipe was exported and meets every target, 3 when
// it was exported but misses --min-speedup, 1 when no candidate finished within the latency
// bound and the accuracy target (or at all), 130 when interrupted.
int RunHeadless(HeadlessOptions options, const std::atomic<bool>& cancel);

}  // namespace ipt::app
