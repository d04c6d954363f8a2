// Building and validating core pools; see core_pool.h.
#include "core/platform/core_pool.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace ipt::platform {
namespace {

CpuSet Minus(const CpuSet& a, const CpuSet& b) {
  std::vector<int> ids;
  for (int cpu : a) {
    if (!b.contains(cpu)) ids.push_back(cpu);
  }
  return CpuSet(std::move(ids));
}

// Node or socket ids in the list syntax, as sysfs writes node/online.
template <typename IdOf>
std::string IdsOf(const Topology& topology, IdOf id_of) {
  std::set<int> ids;
  for (const LogicalCpu& cpu : topology.cpus) ids.insert(id_of(cpu));
  return CpuSet(std::vector<int>(ids.begin(), ids.end())).ToString();
}

// The allowed CPUs of a node or socket whose CPUs are `group`; throws if there are none.
CpuSet AllowedIn(const Topology& topology, const CpuSet& group, const std::string& what,
                 const std::string& existing) {
  if (group.empty()) {
    throw Error(ErrorCode::kInvalidArgument, what + " does not exist (" + existing + ")");
  }
  CpuSet usable = group.Intersect(topology.allowed);
  if (usable.empty()) {
    throw Error(ErrorCode::kInvalidArgument, what + " (CPUs " + group.ToString() +
                                                 ") has no CPU this process may use (allowed: " +
                                                 topology.allowed.ToString() + ")");
  }
  return usable;
}

}  // namespace

CorePool::CorePool(const Topology& topology, const CpuSet& candidates,
                   const CorePoolOptions& options)
    : cpus_(options.physical_cores_only ? OneCpuPerCore(topology, candidates)
                                        : candidates.Intersect(topology.Online())),
      physical_cores_only_(options.physical_cores_only) {
  std::map<int, std::vector<int>> by_node;
  for (int cpu : cpus_) by_node[topology.Find(cpu)->numa_node].push_back(cpu);
  for (auto& [node, ids] : by_node) by_numa_node_.emplace(node, CpuSet(std::move(ids)));
}

CorePool CorePool::AllAllowed(const Topology& topology, const CorePoolOptions& options) {
  const CpuSet usable = topology.allowed.Intersect(topology.Online());
  if (usable.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "no CPU is both allowed and online (allowed: " + topology.allowed.ToString() +
                    ", online: " + topology.Online().ToString() + ")");
  }
  return CorePool(topology, usable, options);
}

CorePool CorePool::NumaNode(const Topology& topology, int numa_node,
                            const CorePoolOptions& options) {
  const std::string existing =
      "nodes: " + IdsOf(topology, [](const LogicalCpu& cpu) { return cpu.numa_node; });
  return CorePool(topology,
                  AllowedIn(topology, topology.NodeCpus(numa_node),
                            "NUMA node " + std::to_string(numa_node), existing),
                  options);
}

CorePool CorePool::Socket(const Topology& topology, int socket_id, const CorePoolOptions& options) {
  const std::string existing =
      "sockets: " + IdsOf(topology, [](const LogicalCpu& cpu) { return cpu.socket_id; });
  return CorePool(topology,
                  AllowedIn(topology, topology.SocketCpus(socket_id),
                            "socket " + std::to_string(socket_id), existing),
                  options);
}

CorePool CorePool::FromCpus(const Topology& topology, const CpuSet& cpus,
                            const CorePoolOptions& options) {
  if (cpus.empty()) throw Error(ErrorCode::kInvalidArgument, "empty CPU list for a core pool");
  const CpuSet online = topology.Online();
  const CpuSet offline = Minus(cpus, online);
  const CpuSet forbidden = Minus(cpus.Intersect(online), topology.allowed);
  if (!offline.empty() || !forbidden.empty()) {
    std::string message = "CPU list " + cpus.ToString() + ":";
    if (!offline.empty()) {
      message += " " + offline.ToString() + " not online (online: " + online.ToString() + ")";
    }
    if (!forbidden.empty()) {
      if (!offline.empty()) message += ";";
      message += " " + forbidden.ToString() +
                 " not allowed for this process (allowed: " + topology.allowed.ToString() + ")";
    }
    throw Error(ErrorCode::kInvalidArgument, message);
  }
  return CorePool(topology, cpus, options);
}

}  // namespace ipt::platform
