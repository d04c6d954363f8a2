// POSIX implementation of RunWorker (see worker_process.h): fork, set up the child up to exec
// with async-signal-safe calls only, then one poll loop in the parent that feeds stdin, splits
// stdout into lines, keeps the tail of stderr and enforces timeout and cancellation.
#include "tuner/worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string_view>
#include <utility>

#include "base/error.h"
#include "core/platform/binding.h"
#include "core/platform/cpu_set.h"

namespace ipt::tuner {
namespace {

using Clock = std::chrono::steady_clock;

// Keeps the tail of stderr that error messages quote; enough for a stack trace's last frames.
constexpr std::size_t kStderrTailBytes = std::size_t{8} * 1024;
// Upper bound on one poll: how late a cancel request or a deadline can be noticed.
constexpr std::chrono::milliseconds kPollSlice{50};
// After the child exits and its group is killed, how long we still read what is in the pipes.
// Only a process that left the group (setsid) can keep them open that long.
constexpr std::chrono::milliseconds kDrainGrace{500};
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

[[noreturn]] void ThrowIo(const char* what) {
  throw Error(ErrorCode::kIo,
              std::string("running a worker: ") + what + ": " + std::strerror(errno));
}

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // EINTR from close on Linux still releases the descriptor, so it is not retried.
  void Close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

Pipe MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowIo("pipe2");
  Pipe pipe{Fd(fds[0]), Fd(fds[1])};
  // The child dup2s its ends onto 0-2. If an end were itself 0-2 (the tuner closed its stdin),
  // one dup2 could overwrite an end a later dup2 still needs, so every end is moved above 2.
  for (Fd* end : {&pipe.read, &pipe.write}) {
    if (end->get() < 3) {
      const int moved = fcntl(end->get(), F_DUPFD_CLOEXEC, 3);
      if (moved < 0) ThrowIo("fcntl(F_DUPFD_CLOEXEC)");
      *end = Fd(moved);
    }
  }
  return pipe;
}

void SetNonBlocking(const Fd& fd) {
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) ThrowIo("fcntl(O_NONBLOCK)");
}

// What the child sends through the error pipe when it cannot get as far as exec.
enum StartStage : int { kStageProcessGroup, kStageAffinity, kStageRedirect, kStageExec };
struct StartFailure {
  int stage;
  int error;
};

std::string StartFailureMessage(const WorkerCommand& command, const StartFailure& failure) {
  std::string message = "could not start '" + command.executable + "': ";
  switch (failure.stage) {
    case kStageProcessGroup:
      message += "setpgid: ";
      break;
    case kStageAffinity:
      message += "applying CPU set " + platform::CpuSet(command.cpus).ToString() + ": ";
      break;
    case kStageRedirect:
      message += "dup2: ";
      break;
    default:
      break;
  }
  return message + std::strerror(failure.error);
}

// Everything the child needs, prepared before fork: between fork and exec only
// async-signal-safe calls may run, and allocation is not one of them.
struct ExecPlan {
  ExecPlan() = default;
  ExecPlan(const ExecPlan&) = delete;
  ExecPlan& operator=(const ExecPlan&) = delete;

  std::vector<std::string> arg_storage;
  std::vector<std::string> env_storage;
  std::vector<std::string> path_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<const char*> paths;  // exec candidates, tried in order as execvp would
  std::optional<platform::CpuMask> cpu_mask;
};

std::string_view EnvName(std::string_view entry) { return entry.substr(0, entry.find('=')); }

// Fills `plan` in place: argv, envp and paths point into its own strings. Throws ipt::Error
// kInvalidArgument for a CPU id no kernel accepts.
void BuildExecPlan(const WorkerCommand& command, ExecPlan& plan) {
  plan.arg_storage.push_back(command.executable);
  plan.arg_storage.insert(plan.arg_storage.end(), command.args.begin(), command.args.end());

  const std::set<std::string_view> unset(command.unset_env.begin(), command.unset_env.end());
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view name = EnvName(*entry);
    if (unset.count(name) == 0 && command.env.count(std::string(name)) == 0) {
      plan.env_storage.emplace_back(*entry);
    }
  }
  std::optional<std::string> path_variable;
  for (const auto& [name, value] : command.env) {
    if (unset.count(name) == 0) plan.env_storage.push_back(name + "=" + value);
  }
  for (const std::string& entry : plan.env_storage) {
    if (EnvName(entry) == "PATH") path_variable = entry.substr(5);
  }

  // The lookup uses the child's PATH: that is the environment the worker is meant to run in.
  if (command.executable.find('/') != std::string::npos) {
    plan.path_storage.push_back(command.executable);
  } else if (!command.executable.empty()) {
    const std::string search = path_variable.value_or("/bin:/usr/bin");
    std::size_t start = 0;
    while (true) {
      const std::size_t colon = search.find(':', start);
      std::string dir = search.substr(start, colon == std::string::npos ? colon : colon - start);
      plan.path_storage.push_back((dir.empty() ? "." : dir) + "/" + command.executable);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }

  for (std::string& arg : plan.arg_storage) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (std::string& entry : plan.env_storage) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  for (const std::string& path : plan.path_storage) plan.paths.push_back(path.c_str());
  if (!command.cpus.empty()) plan.cpu_mask.emplace(platform::CpuSet(command.cpus));
}

struct ChildFds {
  int stdin_read;
  int stdout_write;
  int stderr_write;
  int error_write;
};

// Runs in the forked child. Async-signal-safe calls only; never returns.
[[noreturn]] void RunChild(const ExecPlan& plan, pid_t parent, const ChildFds& fds) {
  const auto fail = [&](int stage, int error) {
    const StartFailure failure{stage, error};
    while (write(fds.error_write, &failure, sizeof(failure)) < 0 && errno == EINTR) {
    }
    _exit(127);
  };
  if (setpgid(0, 0) != 0) fail(kStageProcessGroup, errno);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before prctl took effect; then no signal will ever come.
  if (getppid() != parent) _exit(127);
  if (plan.cpu_mask &&
      sched_setaffinity(0, plan.cpu_mask->size_bytes(), plan.cpu_mask->data()) != 0) {
    fail(kStageAffinity, errno);
  }
  // exec resets handled signals but keeps ignored ones and the mask (all blocked by the parent
  // around fork), which the worker must not inherit.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
    if (signal_number != SIGKILL && signal_number != SIGSTOP) {
      sigaction(signal_number, &default_action, nullptr);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dup2(fds.stdin_read, 0) < 0 || dup2(fds.stdout_write, 1) < 0 ||
      dup2(fds.stderr_write, 2) < 0) {
    fail(kStageRedirect, errno);
  }
  // Descriptors the rest of the tuner opened without O_CLOEXEC (a database, a log) must not leak
  // into the worker. Kernels before 5.11 lack the flag; then they leak, as they would anyway.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

  int error = ENOENT;
  bool denied = false;
  for (const char* path : plan.paths) {
    execve(path, plan.argv.data(), plan.envp.data());
    error = errno;
    // Like execvp: keep searching PATH past entries that do not hold the program.
    if (error == EACCES) {
      denied = true;
    } else if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV &&
               error != ETIMEDOUT) {
      break;
    }
  }
  fail(kStageExec, denied && (error == ENOENT || error == ENOTDIR) ? EACCES : error);
  _exit(127);  // not reached; fail() exits
}

// A write to a pipe whose reader is gone raises SIGPIPE, which would kill the tuner. Blocking
// it for the call turns it into EPIPE; a SIGPIPE this write raised is then consumed so it is not
// delivered when the mask is restored (one that was pending before is left alone).
ssize_t WriteWithoutSigpipe(int fd, const char* data, std::size_t size) {
  sigset_t sigpipe_only;
  sigemptyset(&sigpipe_only);
  sigaddset(&sigpipe_only, SIGPIPE);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigpipe_only, &old_mask);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;

  ssize_t written;
  do {
    written = write(fd, data, size);
  } while (written < 0 && errno == EINTR);
  const int error = errno;

  if (written < 0 && error == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (sigtimedwait(&sigpipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = error;
  return written;
}

// The child as seen from the parent. Its destructor is what makes "RunWorker never returns
// with the child still running" hold on every path, exceptions included.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (!reaped_) {
      KillGroup();
      Reap();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // Until the child is reaped its pid cannot be reused, so -pid names only its group.
  void KillGroup() const {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);  // in case it is still between fork and setpgid
  }

  // Whether the child has exited, without reaping it (so KillGroup stays safe).
  bool HasExited() const {
    siginfo_t info{};
    if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
    return info.si_pid == pid_;
  }

  // The wait status, or nullopt if someone else reaped the child (SIGCHLD ignored).
  std::optional<int> Reap() {
    reaped_ = true;
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0) {
      if (errno != EINTR) return std::nullopt;
    }
    return status;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

// Splits a byte stream into '\n'-terminated lines.
class LineSplitter {
 public:
  void Feed(const char* data, std::size_t size,
            const std::function<void(const std::string&)>& on_line) {
    std::size_t scan = pending_.size();
    pending_.append(data, size);
    std::size_t start = 0;
    for (std::size_t newline; (newline = pending_.find('\n', scan)) != std::string::npos;
         scan = start = newline + 1) {
      if (on_line) on_line(pending_.substr(start, newline - start));
    }
    pending_.erase(0, start);
  }
  // Delivers a last line that had no '\n'.
  void Finish(const std::function<void(const std::string&)>& on_line) {
    if (!pending_.empty() && on_line) on_line(pending_);
    pending_.clear();
  }

 private:
  std::string pending_;
};

int PollTimeoutMs(Clock::duration wait) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return static_cast<int>(std::clamp<decltype(ms)>(ms, 0, kPollSlice.count()));
}

}  // namespace

std::string WorkerOutcome::Describe() const {
  switch (kind) {
    case Kind::kExited:
      return "exited with status " + std::to_string(exit_code);
    case Kind::kSignaled: {
      const char* name = strsignal(signal);
      return "killed by signal " + std::to_string(signal) + " (" +
             (name != nullptr ? name : "unknown") + ")";
    }
    case Kind::kTimedOut: {
      char text[64];
      std::snprintf(text, sizeof(text), "timed out after %.1f s", wall_s);
      return text;
    }
    case Kind::kCancelled:
      return "cancelled";
    case Kind::kExecFailed:
      // RunWorker stores the reason here: there is no child stderr when exec never happened.
      return stderr_tail;
  }
  return "unknown outcome";
}

WorkerOutcome RunWorker(const WorkerCommand& command,
                        const std::function<void(const std::string& line)>& on_line,
                        const std::atomic<bool>* cancel) {
  WorkerOutcome outcome;
  const Clock::time_point start = Clock::now();
  const auto elapsed_s = [&] {
    return std::chrono::duration<double>(Clock::now() - start).count();
  };

  ExecPlan plan;
  try {
    BuildExecPlan(command, plan);
  } catch (const Error& e) {
    outcome.kind = WorkerOutcome::Kind::kExecFailed;
    outcome.stderr_tail = "could not start '" + command.executable + "': " + e.what();
    outcome.wall_s = elapsed_s();
    return outcome;
  }

  Pipe in = MakePipe();
  Pipe out = MakePipe();
  Pipe err = MakePipe();
  Pipe status = MakePipe();  // closed by a successful exec; carries a StartFailure otherwise

  // Blocked so that no handler of the tuner runs in the child before it resets dispositions.
  sigset_t all_signals;
  sigset_t old_mask;
  sigfillset(&all_signals);
  pthread_sigmask(SIG_SETMASK, &all_signals, &old_mask);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    RunChild(plan, parent,
             ChildFds{in.read.get(), out.write.get(), err.write.get(), status.write.get()});
  }
  const int fork_error = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (pid < 0) {
    errno = fork_error;
    ThrowIo("fork");
  }

  Child child(pid);
  // Also done here so that a kill right after fork already reaches the group; EACCES once the
  // child has exec'd is fine, it did it itself by then.
  setpgid(pid, pid);
  in.read.Close();
  out.write.Close();
  err.write.Close();
  status.write.Close();
  Fd stdin_fd = std::move(in.write);
  Fd stdout_fd = std::move(out.read);
  Fd stderr_fd = std::move(err.read);
  Fd status_fd = std::move(status.read);
  for (const Fd* fd : {&stdin_fd, &stdout_fd, &stderr_fd, &status_fd}) SetNonBlocking(*fd);
  if (command.stdin_text.empty()) stdin_fd.Close();
  // Readable when the child exits, so poll wakes for that too even while a straggler holds the
  // pipes open. Kernels before 5.3 lack it; the loop then notices the exit within kPollSlice.
  Fd exit_fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));

  std::optional<Clock::time_point> deadline;
  if (command.timeout.count() > 0) deadline = start + command.timeout;
  enum class End { kNormal, kTimedOut, kCancelled } end = End::kNormal;
  std::optional<StartFailure> start_failure;
  std::optional<Clock::time_point> drain_deadline;  // set once the child has exited
  std::size_t stdin_offset = 0;
  LineSplitter lines;
  std::string stderr_text;
  std::vector<char> buffer(kReadChunk);
  Clock::duration idle_wait = std::chrono::milliseconds(1);

  // Returns the bytes read; closes `fd` at end of file or on an error other than "try again".
  const auto read_some = [&](Fd& fd) -> std::size_t {
    const ssize_t n = read(fd.get(), buffer.data(), buffer.size());
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) fd.Close();
    return 0;
  };

  while (true) {
    const Clock::time_point now = Clock::now();
    // Once the child has exited on its own, its outcome stands; only the draining is left.
    if (!drain_deadline && cancel != nullptr && cancel->load()) {
      end = End::kCancelled;
      break;
    }
    if (!drain_deadline && deadline && now >= *deadline) {
      end = End::kTimedOut;
      break;
    }
    if (!drain_deadline && child.HasExited()) {
      // Leftovers in the group (a backgrounded grandchild) would hold the pipes open and keep
      // running on the worker's CPUs into the next trial.
      child.KillGroup();
      drain_deadline = now + kDrainGrace;
      exit_fd.Close();
    }
    const bool output_open = stdout_fd.valid() || stderr_fd.valid() || status_fd.valid();
    if (drain_deadline && (!output_open || now >= *drain_deadline)) break;

    pollfd fds[5];
    nfds_t count = 0;
    for (const Fd* fd : {&stdout_fd, &stderr_fd, &status_fd, &exit_fd}) {
      if (fd->valid()) fds[count++] = pollfd{fd->get(), POLLIN, 0};
    }
    if (stdin_fd.valid()) fds[count++] = pollfd{stdin_fd.get(), POLLOUT, 0};

    Clock::duration wait = kPollSlice;
    if (deadline) wait = std::min(wait, *deadline - now);
    if (drain_deadline) wait = std::min(wait, *drain_deadline - now);
    if (!exit_fd.valid() && !output_open) {
      // Nothing to wait on but the child's exit, which poll cannot see: back off from 1 ms so a
      // quick exit is noticed quickly and a long silent run costs little.
      wait = std::min(wait, idle_wait);
      idle_wait = std::min<Clock::duration>(idle_wait * 2, kPollSlice);
    }
    if (poll(fds, count, PollTimeoutMs(wait)) < 0) {
      if (errno == EINTR) continue;
      ThrowIo("poll");
    }

    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      if (fd == stdout_fd.get()) {
        if (const std::size_t n = read_some(stdout_fd)) lines.Feed(buffer.data(), n, on_line);
      } else if (fd == stderr_fd.get()) {
        if (const std::size_t n = read_some(stderr_fd)) {
          stderr_text.append(buffer.data(), n);
          if (stderr_text.size() > 2 * kStderrTailBytes) {
            stderr_text.erase(0, stderr_text.size() - kStderrTailBytes);
          }
        }
      } else if (fd == status_fd.get()) {
        StartFailure failure{};
        const ssize_t n = read(status_fd.get(), &failure, sizeof(failure));
        if (n == static_cast<ssize_t>(sizeof(failure))) {
          start_failure = failure;
          status_fd.Close();
        } else if (n == 0) {
          status_fd.Close();
          // exec succeeded, and the child applied its CPU set before it: the read-back is final.
          try {
            if (const auto cpus = platform::AffinityOf(pid)) outcome.applied_cpus = cpus->ids();
          } catch (const Error&) {
            // Left empty: applied_cpus is a report, not a precondition.
          }
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          status_fd.Close();
        }
      } else if (fd == stdin_fd.get()) {
        const std::string& text = command.stdin_text;
        const ssize_t n = WriteWithoutSigpipe(stdin_fd.get(), text.data() + stdin_offset,
                                              text.size() - stdin_offset);
        if (n > 0) stdin_offset += static_cast<std::size_t>(n);
        // EPIPE: the child closed stdin or exited without reading it all, which is its call.
        if (stdin_offset == text.size() || (n < 0 && errno != EAGAIN)) stdin_fd.Close();
      }
    }
  }

  if (end != End::kNormal) child.KillGroup();
  const std::optional<int> wait_status = child.Reap();
  // A partial last line from a killed child is a truncated message, not a line.
  if (end == End::kNormal && !start_failure) lines.Finish(on_line);

  outcome.wall_s = elapsed_s();
  if (stderr_text.size() > kStderrTailBytes) {
    stderr_text.erase(0, stderr_text.size() - kStderrTailBytes);
  }
  outcome.stderr_tail = std::move(stderr_text);
  if (end == End::kTimedOut) {
    outcome.kind = WorkerOutcome::Kind::kTimedOut;
  } else if (end == End::kCancelled) {
    outcome.kind = WorkerOutcome::Kind::kCancelled;
  } else if (start_failure) {
    outcome.kind = WorkerOutcome::Kind::kExecFailed;
    outcome.stderr_tail = StartFailureMessage(command, *start_failure);
    outcome.applied_cpus.clear();
  } else if (wait_status && WIFSIGNALED(*wait_status)) {
    outcome.kind = WorkerOutcome::Kind::kSignaled;
    outcome.signal = WTERMSIG(*wait_status);
  } else {
    outcome.kind = WorkerOutcome::Kind::kExited;
    // -1 when the status was lost to someone else reaping the child.
    outcome.exit_code = wait_status ? WEXITSTATUS(*wait_status) : -1;
  }
  return outcome;
}

}  // namespace ipt::tuner
