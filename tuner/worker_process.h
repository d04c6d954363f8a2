// Runs one ipex-tune-worker (or any program) as a child process for the tuner: CPU set applied
// before exec, its own environment, a timeout, stdout read as lines while it runs.
//
// Contract:
// - The child dies with the thread that started it (PR_SET_PDEATHSIG): a killed tuner never
//   leaves a worker busy on its cores. Start workers from a thread that outlives them.
// - The child runs in its own process group, so a terminal's Ctrl-C reaches the tuner only; the
//   tuner decides (through `cancel`) and the whole group is killed.
// - A child that exceeds `timeout` or is cancelled is killed with SIGKILL (group-wide) and
//   reaped; RunWorker never returns with the child still running.
// - Errors: only a failure to create pipes or fork throws (ipt::Error kIo). Everything the
//   child does (exit code, signal, exec failure, timeout) is a value in WorkerOutcome.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ipt::tuner {

struct WorkerCommand {
  std::string executable;  // absolute path, or a name looked up in PATH
  std::vector<std::string> args;
  // Set in the child's environment on top of the parent's; `unset_env` names are removed.
  std::map<std::string, std::string> env;
  std::vector<std::string> unset_env;
  std::vector<int> cpus;   // CPU ids for sched_setaffinity before exec; empty inherits
  std::string stdin_text;  // written to the child's stdin, which is then closed
  std::chrono::milliseconds timeout{0};  // 0 means none
};

struct WorkerOutcome {
  enum class Kind { kExited, kSignaled, kTimedOut, kCancelled, kExecFailed };
  Kind kind = Kind::kExited;
  int exit_code = 0;        // kExited
  int signal = 0;           // kSignaled
  std::string stderr_tail;  // last few KiB of the child's stderr, for error messages
  double wall_s = 0;
  std::vector<int> applied_cpus;  // the child's affinity as read back after it started
  // "exited with status 3", "killed by signal 11 (Segmentation fault)", "timed out after 60 s"
  std::string Describe() const;
};

// Runs `command` to completion. `on_line` gets each complete stdout line (without '\n') as it
// arrives, on the calling thread. `cancel`, when set to true by another thread or a signal
// handler, ends the child.
WorkerOutcome RunWorker(const WorkerCommand& command,
                        const std::function<void(const std::string& line)>& on_line,
                        const std::atomic<bool>* cancel = nullptr);

}  // namespace ipt::tuner
