// LinuxSystemSource: sysfs and procfs files, sched_getaffinity, uname, getloadavg.
#include "core/platform/system_source.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
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

std::optional<double> ProcessAgeSeconds(const SystemSource& source) {
  std::optional<std::string> stat = source.ReadProcFile("self/stat");
  std::optional<std::string> uptime = source.ReadProcFile("uptime");
  if (!stat || !uptime) return std::nullopt;
  // The command name in parentheses may hold spaces and parentheses: fields count from the
  // last ')'. The state is field 3, the start time (in clock ticks after boot) field 22.
  const size_t name_end = stat->rfind(')');
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream fields(stat->substr(name_end + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return std::nullopt;
  }
  double up_s = 0;
  unsigned long long start_ticks = 0;
  try {
    start_ticks = std::stoull(field);
    up_s = std::stod(*uptime);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const long ticks_per_s = sysconf(_SC_CLK_TCK);
  if (ticks_per_s <= 0) return std::nullopt;
  return std::max(0.0, up_s - static_cast<double>(start_ticks) / static_cast<double>(ticks_per_s));
}

}  // namespace ipt::platform
