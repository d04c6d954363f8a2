// What the machine fingerprint records about the CPU and the operating system besides topology:
// model, vendor, the ISA extensions that decide which kernels can run, memory, kernel, and the
// two things that make measurements noisy (frequency governor, load).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/platform/system_source.h"

namespace ipt::platform {

// The /proc/cpuinfo flags that the core's kernels and recipes care about, in the order they are
// reported. The one list to extend when a new ISA matters.
inline constexpr std::array<std::string_view, 11> kIsaFlagsOfInterest = {
    "avx2",     "avx512f",  "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16", "amx_int8", "fma",      "f16c",
};

struct CpuInfo {
  std::string model_name = "unknown";  // cpuinfo "model name"
  std::string vendor = "unknown";      // cpuinfo "vendor_id", e.g. "GenuineIntel"
  // The members of kIsaFlagsOfInterest the CPU reports, in that list's order.
  std::vector<std::string> isa_flags;
  std::uint64_t memory_total_bytes = 0;  // /proc/meminfo MemTotal; 0 when unreadable
  std::string kernel_release = "unknown";
  // cpu0's cpufreq scaling governor ("performance", "powersave"); "unknown" when the machine
  // does not expose it, as most VMs do not.
  std::string governor = "unknown";
  std::optional<LoadAverage> load_average;

  bool HasIsa(std::string_view flag) const;
};

// Reads /proc/cpuinfo (the first processor's block), /proc/meminfo and the governor through
// `source`. Never throws for missing or odd files: every field has an "unknown" value.
CpuInfo ReadCpuInfo(const SystemSource& source);

}  // namespace ipt::platform
