// The CPU topology of the machine: which logical CPUs share a physical core (SMT siblings), a
// socket, a NUMA node, and which of them this process may use. Binding policies in the core and
// the machine fingerprint in the tuner are both computed from it.
#pragma once

#include <vector>

#include "core/platform/cpu_set.h"
#include "core/platform/system_source.h"

namespace ipt::platform {

struct LogicalCpu {
  int id = 0;
  // Only unique within a socket: a physical core is the pair (socket_id, core_id). Its value says
  // nothing about sibling numbering (VMs number siblings 0,1; bare metal often 0,N).
  int core_id = 0;
  int socket_id = 0;  // physical package
  int numa_node = 0;
};

// A snapshot; a plain value, cheap to copy. Counts are over online CPUs, not only allowed ones,
// because the fingerprint describes the machine while `allowed` describes this process.
struct Topology {
  std::vector<LogicalCpu> cpus;  // online CPUs, ascending id
  CpuSet allowed;                // the subset this process may run on

  int LogicalCpuCount() const { return static_cast<int>(cpus.size()); }
  int SocketCount() const;
  int PhysicalCoreCount() const;
  int NumaNodeCount() const;
  // SMT width: the most logical CPUs found on one physical core (1 when SMT is off).
  int ThreadsPerCore() const;

  CpuSet Online() const;
  // Nullptr when `cpu` is not online.
  const LogicalCpu* Find(int cpu) const;
  // The online CPUs on the same physical core as `cpu`, itself included; empty if not online.
  CpuSet Siblings(int cpu) const;
  CpuSet NodeCpus(int numa_node) const;
  CpuSet SocketCpus(int socket_id) const;
};

// Reads the topology from sysfs through `source`:
//   devices/system/cpu/online, devices/system/cpu/cpuN/topology/{core_id,physical_package_id,
//   thread_siblings_list}, devices/system/node/online, devices/system/node/nodeN/cpulist,
//   and the cgroup cpuset (cpuset.cpus.effective, v2, or cpuset.effective_cpus, v1).
// `allowed` is source.Affinity() intersected with the online CPUs and the cgroup cpuset; an
// intersection that would be empty is skipped, since the affinity is what the kernel enforces.
// Missing files fall back to the simplest truth (one socket, one node, every CPU its own core)
// because VMs and containers often lack them. Throws ipt::Error kCorrupt, naming the file, when
// a file exists but does not parse.
Topology ReadTopology(const SystemSource& source);

// From each physical core with a CPU in `within`, its lowest-id CPU in `within`; ascending
// order. The set for "no two threads on SMT siblings". CPUs not online are ignored.
CpuSet OneCpuPerCore(const Topology& topology, const CpuSet& within);

}  // namespace ipt::platform
