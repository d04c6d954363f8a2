// The operating system as ipt::platform sees it, behind one interface, so topology and
// fingerprint code can be tested against a fake machine (a sysfs tree in a temp dir, a fixed
// affinity) instead of whatever the build host happens to be.
#pragma once

#include <optional>
#include <string>

#include "core/platform/cpu_set.h"

namespace ipt::platform {

struct LoadAverage {
  double one_min = 0;
  double five_min = 0;
  double fifteen_min = 0;
};

// Read-only view of the machine. Implementations must be safe to call from several threads.
// None of the methods throws for a missing file: absence is an answer (nullopt), because many of
// these files do not exist on VMs, containers or other architectures.
class SystemSource {
 public:
  virtual ~SystemSource() = default;

  // Content of a file below the sysfs root, e.g. "devices/system/cpu/online"; nullopt when it
  // does not exist or cannot be read.
  virtual std::optional<std::string> ReadSysFile(const std::string& relative_path) const = 0;
  // Content of a file below the procfs root, e.g. "cpuinfo", "self/cgroup".
  virtual std::optional<std::string> ReadProcFile(const std::string& relative_path) const = 0;
  // CPUs the calling thread may run on (sched_getaffinity).
  virtual CpuSet Affinity() const = 0;
  // uname's release ("6.1.0-18-amd64"); "unknown" when unavailable.
  virtual std::string KernelRelease() const = 0;
  virtual std::optional<LoadAverage> ReadLoadAverage() const = 0;
};

// The real machine, with roots that tests may redirect.
class LinuxSystemSource : public SystemSource {
 public:
  // `sys_root` stands for "/sys" and `proc_root` for "/proc". `affinity`, when given, is
  // returned by Affinity() instead of asking the kernel.
  explicit LinuxSystemSource(std::string sys_root = "/sys", std::string proc_root = "/proc",
                             std::optional<CpuSet> affinity = std::nullopt);

  std::optional<std::string> ReadSysFile(const std::string& relative_path) const override;
  std::optional<std::string> ReadProcFile(const std::string& relative_path) const override;
  CpuSet Affinity() const override;
  std::string KernelRelease() const override;
  std::optional<LoadAverage> ReadLoadAverage() const override;

 private:
  std::string sys_root_;
  std::string proc_root_;
  std::optional<CpuSet> affinity_;
};

// How long ago this process started, from procfs's self/stat start time and the uptime, to
// the clock tick (10 ms on most kernels): it covers what no clock inside the program can,
// exec, the dynamic loader and static initialisers (loading libtorch alone takes about half a
// second). nullopt when either file is missing or unreadable.
std::optional<double> ProcessAgeSeconds(const SystemSource& source);

}  // namespace ipt::platform
