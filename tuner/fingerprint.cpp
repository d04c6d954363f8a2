#include "tuner/fingerprint.h"

namespace ipt::tuner {

Fingerprint MakeFingerprint(const platform::SystemSource& source, const WorkerInfo& worker) {
  Fingerprint f;
  f.cpu = platform::ReadCpuInfo(source);
  f.topology = platform::ReadTopology(source);
  f.key_fields = platform::MachineKeyFields(f.cpu, f.topology,
                                            {worker.libtorch, worker.onednn, worker.onednn_isa});
  f.context = {{"memory_bytes", f.cpu.memory_total_bytes},
               {"kernel", f.cpu.kernel_release},
               {"governor", f.cpu.governor},
               {"allowed_cpus", f.topology.allowed.ToString()},
               {"aten_cpu_capability", worker.aten_cpu_capability}};
  if (f.cpu.load_average) f.context["load_1min"] = f.cpu.load_average->one_min;
  f.key = platform::MachineKey(f.key_fields);
  return f;
}

}  // namespace ipt::tuner
