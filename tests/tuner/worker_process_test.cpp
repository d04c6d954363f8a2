// RunWorker against real processes (/bin/sh scripts): output, exit status, signals, timeout,
// cancellation, environment, stdin, CPU sets and the guarantee that no child outlives it.
#include "tuner/worker_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>

#include "core/platform/binding.h"

namespace ipt::tuner {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = WorkerOutcome::Kind;

WorkerCommand Shell(const std::string& script) {
  WorkerCommand command;
  command.executable = "/bin/sh";
  command.args = {"-c", script};
  return command;
}

struct Collected {
  WorkerOutcome outcome;
  std::vector<std::string> lines;
  double seconds = 0;  // measured here, independent of outcome.wall_s
};

Collected RunCollecting(const WorkerCommand& command, const std::atomic<bool>* cancel = nullptr) {
  Collected run;
  const Clock::time_point start = Clock::now();
  run.outcome = RunWorker(
      command, [&](const std::string& line) { run.lines.push_back(line); }, cancel);
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return run;
}

// Gone means no such process or a zombie: an orphan's zombie waits for a reaper we do not own.
bool IsGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return true;
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;
  return text[paren + 2] == 'Z' || text[paren + 2] == 'X';
}

bool WaitUntilGone(pid_t pid, milliseconds limit) {
  const Clock::time_point end = Clock::now() + limit;
  while (!IsGone(pid)) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(WorkerProcessTest, DeliversLinesInOrderIncludingUnterminatedLast) {
  const Collected run = RunCollecting(Shell("printf 'one\\ntwo\\n\\nthree'"));
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.outcome.exit_code, 0);
  EXPECT_EQ(run.lines, (std::vector<std::string>{"one", "two", "", "three"}));
  EXPECT_EQ(run.outcome.Describe(), "exited with status 0");
  EXPECT_GT(run.outcome.wall_s, 0);
}

TEST(WorkerProcessTest, ReportsExitCode) {
  const Collected run = RunCollecting(Shell("echo bad input >&2; exit 3"));
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.outcome.exit_code, 3);
  EXPECT_EQ(run.outcome.stderr_tail, "bad input\n");
  EXPECT_EQ(run.outcome.Describe(), "exited with status 3");
}

TEST(WorkerProcessTest, ReportsSignal) {
  const Collected run = RunCollecting(Shell("kill -SEGV $$"));
  EXPECT_EQ(run.outcome.kind, Kind::kSignaled);
  EXPECT_EQ(run.outcome.signal, SIGSEGV);
  EXPECT_EQ(run.outcome.Describe(), "killed by signal 11 (Segmentation fault)");
}

TEST(WorkerProcessTest, KeepsOnlyTheTailOfStderr) {
  const Collected run = RunCollecting(
      Shell("i=0; while [ $i -lt 2000 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done;"
            "echo LAST >&2"));
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_LE(run.outcome.stderr_tail.size(), 8u * 1024);
  EXPECT_GT(run.outcome.stderr_tail.size(), 4u * 1024);
  EXPECT_EQ(run.outcome.stderr_tail.substr(run.outcome.stderr_tail.size() - 5), "LAST\n");
}

TEST(WorkerProcessTest, TimeoutKillsTheWholeGroup) {
  WorkerCommand command = Shell("echo $$; sleep 30 & echo $!; sleep 30");
  command.timeout = milliseconds(1000);
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kTimedOut);
  EXPECT_LT(run.seconds, 1.5);
  EXPECT_GE(run.seconds, 1.0);
  EXPECT_EQ(run.outcome.Describe(), "timed out after 1.0 s");
  ASSERT_EQ(run.lines.size(), 2u);
  const pid_t child = std::stoi(run.lines[0]);
  const pid_t grandchild = std::stoi(run.lines[1]);
  EXPECT_TRUE(IsGone(child));
  EXPECT_TRUE(WaitUntilGone(grandchild, milliseconds(200)));
  // Reaped, not left as our zombie.
  EXPECT_EQ(waitpid(child, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(WorkerProcessTest, ExitingChildTakesItsBackgroundJobsAlong) {
  // The grandchild holds stdout open; RunWorker must neither wait 30 s for it nor leave it.
  const Collected run = RunCollecting(Shell("sleep 30 & echo $!"));
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.outcome.exit_code, 0);
  EXPECT_LT(run.seconds, 2.0);
  ASSERT_EQ(run.lines.size(), 1u);
  EXPECT_TRUE(WaitUntilGone(std::stoi(run.lines[0]), milliseconds(200)));
}

TEST(WorkerProcessTest, CancelFromAnotherThread) {
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(300));
    cancel = true;
  });
  const Collected run = RunCollecting(Shell("echo $$; sleep 30"), &cancel);
  canceller.join();
  EXPECT_EQ(run.outcome.kind, Kind::kCancelled);
  EXPECT_EQ(run.outcome.Describe(), "cancelled");
  EXPECT_LT(run.seconds, 1.0);
  ASSERT_EQ(run.lines.size(), 1u);
  EXPECT_TRUE(IsGone(std::stoi(run.lines[0])));
}

TEST(WorkerProcessTest, EnvironmentOverridesAndUnsets) {
  const ScopedEnv inherited("IPT_TEST_INHERITED", "from parent");
  const ScopedEnv replaced("IPT_TEST_REPLACED", "old");
  const ScopedEnv removed("IPT_TEST_REMOVED", "should not be seen");
  WorkerCommand command = Shell(
      "echo \"$IPT_TEST_INHERITED|$IPT_TEST_REPLACED|${IPT_TEST_REMOVED-unset}|$IPT_TEST_NEW\"");
  command.env = {{"IPT_TEST_REPLACED", "new"}, {"IPT_TEST_NEW", "a b=c"}};
  command.unset_env = {"IPT_TEST_REMOVED"};
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.lines, (std::vector<std::string>{"from parent|new|unset|a b=c"}));
}

TEST(WorkerProcessTest, DeliversStdinAndLooksUpPath) {
  WorkerCommand command;
  command.executable = "cat";  // no '/': found through PATH
  command.stdin_text = "alpha\nbeta\ngamma";
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.lines, (std::vector<std::string>{"alpha", "beta", "gamma"}));
}

TEST(WorkerProcessTest, LargeStdinAndStdoutFlowTogether) {
  // cat blocks writing its stdout unless we read while we write: a one-way loop deadlocks.
  std::string text;
  for (int i = 0; text.size() < (1u << 20); ++i) text += "line " + std::to_string(i) + "\n";
  WorkerCommand command;
  command.executable = "/bin/cat";
  command.stdin_text = text;
  command.timeout = milliseconds(20000);
  std::size_t bytes = 0;
  std::size_t count = 0;
  std::string last;
  const WorkerOutcome outcome = RunWorker(command, [&](const std::string& line) {
    bytes += line.size() + 1;
    ++count;
    last = line;
  });
  EXPECT_EQ(outcome.kind, Kind::kExited) << outcome.Describe();
  EXPECT_EQ(bytes, text.size());
  EXPECT_EQ(last, "line " + std::to_string(count - 1));
}

TEST(WorkerProcessTest, ChildThatNeverReadsStdinDoesNotDeadlock) {
  WorkerCommand command = Shell("echo started; sleep 0.2");
  command.stdin_text.assign(1u << 20, 'x');
  command.timeout = milliseconds(10000);
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExited) << run.outcome.Describe();
  EXPECT_EQ(run.lines, (std::vector<std::string>{"started"}));
  EXPECT_LT(run.seconds, 5.0);
}

TEST(WorkerProcessTest, ChildThatClosesStdinAtOnceDoesNotKillUs) {
  // Our write then fails with EPIPE; the SIGPIPE it raises must not reach the test process.
  WorkerCommand command = Shell("exec 0<&-; sleep 0.2; echo fine");
  command.stdin_text.assign(1u << 20, 'x');
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExited) << run.outcome.Describe();
  EXPECT_EQ(run.lines, (std::vector<std::string>{"fine"}));
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST(WorkerProcessTest, MissingExecutableIsExecFailure) {
  WorkerCommand command;
  command.executable = "/nonexistent/ipt-worker";
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExecFailed);
  EXPECT_EQ(run.outcome.Describe(),
            "could not start '/nonexistent/ipt-worker': No such file or directory");
  EXPECT_TRUE(run.lines.empty());

  command.executable = "ipt-no-such-program-in-path";
  EXPECT_EQ(RunCollecting(command).outcome.Describe(),
            "could not start 'ipt-no-such-program-in-path': No such file or directory");
}

TEST(WorkerProcessTest, NonExecutableFileIsExecFailure) {
  WorkerCommand command;
  command.executable = "/etc/passwd";
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExecFailed);
  EXPECT_EQ(run.outcome.Describe(), "could not start '/etc/passwd': Permission denied");
}

TEST(WorkerProcessTest, AppliesCpuSetBeforeExec) {
  const platform::CpuSet allowed = platform::CurrentAffinity();
  if (allowed.size() < 2) GTEST_SKIP() << "needs 2 CPUs to tell pinning from inheriting";
  const int cpu = allowed.ids().front();
  WorkerCommand command = Shell("grep Cpus_allowed_list /proc/self/status");
  command.cpus = {cpu};
  const Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExited);
  EXPECT_EQ(run.lines, (std::vector<std::string>{"Cpus_allowed_list:\t" + std::to_string(cpu)}));
  EXPECT_EQ(run.outcome.applied_cpus, (std::vector<int>{cpu}));
}

TEST(WorkerProcessTest, WithoutCpuSetTheChildInherits) {
  const Collected run = RunCollecting(Shell("true"));
  EXPECT_EQ(run.outcome.applied_cpus, platform::CurrentAffinity().ids());
}

TEST(WorkerProcessTest, UnusableCpuSetIsStartFailure) {
  WorkerCommand command = Shell("echo should not run");
  command.cpus = {4000};
  Collected run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExecFailed);
  EXPECT_EQ(run.outcome.Describe(),
            "could not start '/bin/sh': applying CPU set 4000: Invalid argument");
  EXPECT_TRUE(run.lines.empty());

  command.cpus = {-1};
  run = RunCollecting(command);
  EXPECT_EQ(run.outcome.kind, Kind::kExecFailed);
  EXPECT_NE(run.outcome.Describe().find("CPU id -1"), std::string::npos) << run.outcome.Describe();
}

TEST(WorkerProcessTest, ThrowingCallbackStillKillsTheChild) {
  pid_t child = 0;
  EXPECT_THROW(RunWorker(Shell("echo $$; sleep 30"),
                         [&](const std::string& line) {
                           child = std::stoi(line);
                           throw std::runtime_error("consumer failed");
                         }),
               std::runtime_error);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(IsGone(child));
}

TEST(WorkerProcessTest, ChildDiesWithTheProcessThatStartedIt) {
  int pid_pipe[2];
  ASSERT_EQ(pipe(pid_pipe), 0);
  const pid_t intermediate = fork();
  ASSERT_GE(intermediate, 0);
  if (intermediate == 0) {
    close(pid_pipe[0]);
    RunWorker(Shell("echo $$; exec sleep 30"), [&](const std::string& line) {
      const std::string text = line + "\n";
      (void)!write(pid_pipe[1], text.data(), text.size());
    });
    _exit(0);
  }
  close(pid_pipe[1]);
  std::string text;
  pollfd readable{pid_pipe[0], POLLIN, 0};
  char c = 0;
  while (poll(&readable, 1, 5000) == 1 && read(pid_pipe[0], &c, 1) == 1 && c != '\n') text += c;
  close(pid_pipe[0]);
  ASSERT_FALSE(text.empty()) << "the intermediate never reported the worker's pid";
  const pid_t sleeper = std::stoi(text);
  EXPECT_FALSE(IsGone(sleeper));

  kill(intermediate, SIGKILL);
  ASSERT_EQ(waitpid(intermediate, nullptr, 0), intermediate);
  EXPECT_TRUE(WaitUntilGone(sleeper, milliseconds(1000)));
}

}  // namespace
}  // namespace ipt::tuner
