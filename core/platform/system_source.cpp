// LinuxSystemSource: sysfs and procfs files, sched_getaffinity, uname, getloadavg.
#include "core/platform/system_source.h"

#include <sys/utsname.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "core/platform/binding.h"

namespace ipt::platform {
namespace {

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  // sysfs reports some errors (e.g. EIO from a driver) only on read, not on open.
  if (in.bad()) return std::nullopt;
  return content.str();
}

std::string Join(const std::string& root, const std::string& relative) {
  if (!relative.empty() && relative.front() == '/') return root + relative;
  return root + "/" + relative;
}

}  // namespace

LinuxSystemSource::LinuxSystemSource(std::string sys_root, std::string proc_root,
                                     std::optional<CpuSet> affinity)
    : sys_root_(std::move(sys_root)),
      proc_root_(std::move(proc_root)),
      affinity_(std::move(affinity)) {}

std::optional<std::string> LinuxSystemSource::ReadSysFile(const std::string& relative_path) const {
  return ReadWholeFile(Join(sys_root_, relative_path));
}

std::optional<std::string> LinuxSystemSource::ReadProcFile(const std::string& relative_path) const {
  return ReadWholeFile(Join(proc_root_, relative_path));
}

CpuSet LinuxSystemSource::Affinity() const {
  if (affinity_) return *affinity_;
  return CurrentAffinity();
}

std::string LinuxSystemSource::KernelRelease() const {
  utsname name{};
  if (uname(&name) != 0) return "unknown";
  return name.release;
}

std::optional<LoadAverage> LinuxSystemSource::ReadLoadAverage() const {
  double loads[3];
  if (getloadavg(loads, 3) != 3) return std::nullopt;
  return LoadAverage{loads[0], loads[1], loads[2]};
}

}  // namespace ipt::platform
