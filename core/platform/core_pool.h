// CorePool: the CPUs a run may use (the whole allowed set, one NUMA node, one socket or an
// explicit list), validated against the topology, before any stream or worker is bound to them.
#pragma once

#include <cstddef>
#include <map>

#include "core/platform/cpu_set.h"
#include "core/platform/topology.h"

namespace ipt::platform {

struct CorePoolOptions {
  // Default true: keep one CPU per physical core (the lowest id of the core within the pool,
  // see OneCpuPerCore). Dense inference saturates a core's vector units with one thread; an SMT
  // sibling only competes for them and for L1/L2, and makes a stream's threads run at uneven
  // speeds. False keeps every logical CPU, for workloads that stall on memory.
  bool physical_cores_only = true;
};

// A value, cheap to copy; built only through the factories, so never empty and never holding a
// CPU that was not online and allowed in the topology it was built from. Thread-compatible.
//
// Every factory throws ipt::Error kInvalidArgument, naming the offending CPUs, node or socket,
// when the result would be empty or would hold a CPU this process may not use.
class CorePool {
 public:
  // Every CPU in topology.allowed.
  static CorePool AllAllowed(const Topology& topology, const CorePoolOptions& options = {});
  // The allowed CPUs of one NUMA node / one socket. Throws when the node or socket does not
  // exist or has no allowed CPU.
  static CorePool NumaNode(const Topology& topology, int numa_node,
                           const CorePoolOptions& options = {});
  static CorePool Socket(const Topology& topology, int socket_id,
                         const CorePoolOptions& options = {});
  // Exactly `cpus` (then reduced to one per core if asked). Throws naming the CPUs that are not
  // online and those that are online but not allowed. A list naming two siblings of one core
  // keeps the lower id when physical_cores_only.
  static CorePool FromCpus(const Topology& topology, const CpuSet& cpus,
                           const CorePoolOptions& options = {});

  const CpuSet& cpus() const { return cpus_; }
  std::size_t size() const { return cpus_.size(); }
  bool physical_cores_only() const { return physical_cores_only_; }
  // The pool's CPUs per NUMA node id; only nodes with at least one pool CPU appear.
  const std::map<int, CpuSet>& by_numa_node() const { return by_numa_node_; }

 private:
  CorePool(const Topology& topology, const CpuSet& candidates, const CorePoolOptions& options);

  CpuSet cpus_;
  bool physical_cores_only_ = true;
  std::map<int, CpuSet> by_numa_node_;
};

}  // namespace ipt::platform
