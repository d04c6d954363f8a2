#include "tuner/load_noise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ipt::tuner {
namespace {

// The time constant of the kernel's 1-minute load average.
constexpr double kTauS = 60;
// A run that ended this long ago adds less than 1e-4 of its threads: it is forgotten.
constexpr double kForgetAfterS = 10 * kTauS;

}  // namespace

void LoadMonitor::WorkerStarted(double now_s, int64_t threads) {
  runs_.erase(
      std::remove_if(runs_.begin(), runs_.end(),
                     [&](const Run& r) { return r.ended_s && now_s - *r.ended_s > kForgetAfterS; }),
      runs_.end());
  runs_.push_back({now_s, std::nullopt, threads});
}

void LoadMonitor::WorkerEnded(double now_s) {
  if (!runs_.empty() && !runs_.back().ended_s) runs_.back().ended_s = now_s;
}

double LoadMonitor::OwnLoad(double now_s) const {
  double load = 0;
  for (const Run& r : runs_) {
    if (now_s <= r.started_s) continue;
    const double end = std::min(now_s, r.ended_s.value_or(now_s));
    load += static_cast<double>(r.threads) *
            (std::exp(-(now_s - end) / kTauS) - std::exp(-(now_s - r.started_s) / kTauS));
  }
  return load;
}

std::optional<std::string> LoadMonitor::OtherLoad(std::optional<double> load_before,
                                                  double started_s,
                                                  std::optional<double> load_after,
                                                  double ended_s) const {
  struct Reading {
    const char* when;
    double load;
    double own;
  };
  std::optional<Reading> worst;
  auto consider = [&](const char* when, std::optional<double> load, double at_s) {
    if (!load) return;
    const Reading r{when, *load, OwnLoad(at_s)};
    if (!worst || r.load - r.own > worst->load - worst->own) worst = r;
  };
  consider("start", load_before, started_s);
  consider("end", load_after, ended_s);
  if (!worst || worst->load - worst->own <= kOtherLoad) return std::nullopt;
  return fmt::format(
      "other load on the machine: 1-minute load average {:.2f} at the trial's {}, where this "
      "study's workers account for about {:.2f}",
      worst->load, worst->when, worst->own);
}

}  // namespace ipt::tuner
