// Whether other work ran on the machine during a measurement, from the kernel's 1-minute load
// average (what `uptime` shows) read when each worker starts and ends.
//
// The study's own workers add to that average too. It is a damped mean of the runnable tasks
// with a one-minute time constant, so a worker with T busy threads adds about
// T * (1 - exp(-d / 60)) after d seconds, and what it added decays by exp(-s / 60) s seconds
// after it ends. LoadMonitor remembers the study's worker runs and subtracts what they are
// expected to add; what remains is other load. A measurement is noisy when the other load,
// at its worker's start or end, exceeds kOtherLoad (half a CPU's worth of runnable work).
//
// Limits of a one-minute average: load that comes and goes within a short trial barely moves
// it, and load that stopped shortly before a trial still shows. A worker counts as its thread
// count busy for its whole life (model build included), which errs towards calling a loaded
// machine quiet rather than a quiet machine loaded. Workers of another tuner process, earlier
// runs of this command included, are other load.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ipt::tuner {

inline constexpr double kOtherLoad = 0.5;

class LoadMonitor {
 public:
  // Times are seconds on one steady clock, never decreasing.
  void WorkerStarted(double now_s, int64_t threads);
  // Ends the worker started last.
  void WorkerEnded(double now_s);
  // The expected share of the study's workers in the 1-minute load average at `now_s`.
  double OwnLoad(double now_s) const;
  // Why a measurement whose worker ran from `started_s` to `ended_s` is noisy, given the load
  // average read just before it started and just after it ended (nullopt: not readable), or
  // nullopt when neither reading shows other load. Call after WorkerEnded.
  std::optional<std::string> OtherLoad(std::optional<double> load_before, double started_s,
                                       std::optional<double> load_after, double ended_s) const;

 private:
  struct Run {
    double started_s = 0;
    std::optional<double> ended_s;
    int64_t threads = 0;
  };
  std::vector<Run> runs_;
};

}  // namespace ipt::tuner
