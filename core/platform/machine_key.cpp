#include "core/platform/machine_key.h"

#include "base/sha256.h"

namespace ipt::platform {

nlohmann::json MachineKeyFields(const CpuInfo& cpu, const Topology& topology,
                                const Libraries& libraries) {
  return {{"cpu", cpu.model_name},
          {"vendor", cpu.vendor},
          {"isa", cpu.isa_flags},
          {"sockets", topology.SocketCount()},
          {"cores", topology.PhysicalCoreCount()},
          {"logical_cpus", topology.LogicalCpuCount()},
          {"numa_nodes", topology.NumaNodeCount()},
          {"threads_per_core", topology.ThreadsPerCore()},
          {"libtorch", libraries.libtorch},
          {"onednn", libraries.onednn},
          {"onednn_isa", libraries.onednn_isa},
          {"ipex_tune", kIpexTuneVersion}};
}

std::string MachineKey(const nlohmann::json& key_fields) { return Sha256Hex(key_fields.dump()); }

}  // namespace ipt::platform
