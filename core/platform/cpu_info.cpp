// CpuInfo from procfs and sysfs; see cpu_info.h.
#include "core/platform/cpu_info.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <set>
#include <sstream>

namespace ipt::platform {
namespace {

std::string Trim(std::string_view text) {
  const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

// Value of the first "key : value" line for `key` (cpuinfo and meminfo share the shape).
std::optional<std::string> FindField(const std::string& text, std::string_view key) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (Trim(std::string_view(line).substr(0, colon)) == key) return Trim(line.substr(colon + 1));
  }
  return std::nullopt;
}

}  // namespace

bool CpuInfo::HasIsa(std::string_view flag) const {
  return std::find(isa_flags.begin(), isa_flags.end(), flag) != isa_flags.end();
}

CpuInfo ReadCpuInfo(const SystemSource& source) {
  CpuInfo info;
  if (const std::optional<std::string> cpuinfo = source.ReadProcFile("cpuinfo")) {
    if (auto model = FindField(*cpuinfo, "model name"); model && !model->empty()) {
      info.model_name = *model;
    }
    if (auto vendor = FindField(*cpuinfo, "vendor_id"); vendor && !vendor->empty()) {
      info.vendor = *vendor;
    }
    if (const std::optional<std::string> flags = FindField(*cpuinfo, "flags")) {
      std::istringstream words(*flags);
      const std::set<std::string> present{std::istream_iterator<std::string>(words),
                                          std::istream_iterator<std::string>()};
      for (std::string_view flag : kIsaFlagsOfInterest) {
        if (present.count(std::string(flag)) != 0) info.isa_flags.emplace_back(flag);
      }
    }
  }
  if (const std::optional<std::string> meminfo = source.ReadProcFile("meminfo")) {
    if (const std::optional<std::string> total = FindField(*meminfo, "MemTotal")) {
      // "16318024 kB": the kernel always reports kibibytes here.
      std::istringstream value(*total);
      std::uint64_t kib = 0;
      if (value >> kib) info.memory_total_bytes = kib * 1024;
    }
  }
  info.kernel_release = source.KernelRelease();
  if (const std::optional<std::string> governor =
          source.ReadSysFile("devices/system/cpu/cpu0/cpufreq/scaling_governor")) {
    if (std::string value = Trim(*governor); !value.empty()) info.governor = std::move(value);
  }
  info.load_average = source.ReadLoadAverage();
  return info;
}

}  // namespace ipt::platform
