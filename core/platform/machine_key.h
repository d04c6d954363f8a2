// The machine key: what changes inference results and speed (CPU model, ISA, topology, library
// versions), hashed. The tuner files studies under it and recipes carry it, so that production
// can tell whether a recipe was measured on a machine like the one it runs on.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/platform/cpu_info.h"
#include "core/platform/topology.h"

namespace ipt::platform {

inline constexpr const char* kIpexTuneVersion = "0.1.0";

// The libraries a model runs with, as the process that runs it reports them.
struct Libraries {
  std::string libtorch;    // "1.13.1"
  std::string onednn;      // "2.6.3"
  std::string onednn_isa;  // the ISA oneDNN dispatches to, e.g. "avx2"
};

// The fields hashed into the key, in a fixed order. Changing a field's name or value changes
// every key: stored studies of the old key are then never reused, by design.
nlohmann::json MachineKeyFields(const CpuInfo& cpu, const Topology& topology,
                                const Libraries& libraries);
// SHA-256 (hex) of the fields' compact JSON.
std::string MachineKey(const nlohmann::json& key_fields);

}  // namespace ipt::platform
