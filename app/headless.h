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

// Returns the process exit status: 0 when a recipe was exported, 1 when no trial succeeded,
// 130 when interrupted.
int RunHeadless(HeadlessOptions options, const std::atomic<bool>& cancel);

}  // namespace ipt::app
