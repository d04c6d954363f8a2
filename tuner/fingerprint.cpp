#include "tuner/fingerprint.h"

#include "base/sha256.h"

namespace ipt::tuner {

Fingerprint MakeFingerprint(const platform::SystemSource& source, const WorkerInfo& worker) {
  Fingerprint f;
  f.cpu = platform::ReadCpuInfo(source);
  f.topology = platform::ReadTopology(source);
  f.key_fields = {{"cpu", f.cpu.model_name},
                  {"vendor", f.cpu.vendor},
                  {"isa", f.cpu.isa_flags},
                  {"sockets", f.topology.SocketCount()},
                  {"cores", f.topology.PhysicalCoreCount()},
                  {"logical_cpus", f.topology.LogicalCpuCount()},
                  {"numa_nodes", f.topology.NumaNodeCount()},
                  {"threads_per_core", f.topology.ThreadsPerCore()},
                  {"libtorch", worker.libtorch},
                  {"onednn", worker.onednn},
                  {"onednn_isa", worker.onednn_isa},
                  {"ipex_tune", kIpexTuneVersion}};
  f.context = {{"memory_bytes", f.cpu.memory_total_bytes},
               {"kernel", f.cpu.kernel_release},
               {"governor", f.cpu.governor},
               {"allowed_cpus", f.topology.allowed.ToString()},
               {"aten_cpu_capability", worker.aten_cpu_capability}};
  if (f.cpu.load_average) f.context["load_1min"] = f.cpu.load_average->one_min;
  f.key = Sha256Hex(f.key_fields.dump());
  return f;
}

}  // namespace ipt::tuner
