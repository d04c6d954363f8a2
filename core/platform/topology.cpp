// Topology from sysfs; see topology.h.
#include "core/platform/topology.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "base/error.h"

namespace ipt::platform {
namespace {

using CoreKey = std::pair<int, int>;  // (socket_id, core_id)

CoreKey KeyOf(const LogicalCpu& cpu) { return {cpu.socket_id, cpu.core_id}; }

std::optional<CpuSet> ReadCpuList(const SystemSource& source, const std::string& path) {
  const std::optional<std::string> text = source.ReadSysFile(path);
  if (!text) return std::nullopt;
  try {
    return CpuSet::Parse(*text);
  } catch (const Error& e) {
    throw Error(ErrorCode::kCorrupt, path + ": " + e.what());
  }
}

std::optional<int> ReadInt(const SystemSource& source, const std::string& path) {
  const std::optional<std::string> text = source.ReadSysFile(path);
  if (!text) return std::nullopt;
  try {
    std::size_t used = 0;
    const int value = std::stoi(*text, &used);
    if (text->find_first_not_of(" \t\r\n", used) != std::string::npos) throw std::exception();
    return value;
  } catch (const std::exception&) {
    throw Error(ErrorCode::kCorrupt, path + ": expected an integer, got '" + *text + "'");
  }
}

// The cgroup cpuset of this process, v2 first, then v1, each at the process's own cgroup path
// and then at the mount root (what a container with a cgroup namespace sees).
std::optional<CpuSet> ReadCgroupCpus(const SystemSource& source) {
  std::vector<std::string> candidates;
  if (const std::optional<std::string> cgroups = source.ReadProcFile("self/cgroup")) {
    // Lines are "hierarchy-id:controllers:path"; v2 is "0::path".
    std::size_t start = 0;
    while (start < cgroups->size()) {
      std::size_t end = cgroups->find('\n', start);
      if (end == std::string::npos) end = cgroups->size();
      const std::string line = cgroups->substr(start, end - start);
      start = end + 1;
      const std::size_t first = line.find(':');
      const std::size_t second = first == std::string::npos ? first : line.find(':', first + 1);
      if (second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      std::string path = line.substr(second + 1);
      if (path == "/") path.clear();
      if (controllers.empty()) {
        candidates.insert(candidates.begin(), "fs/cgroup" + path + "/cpuset.cpus.effective");
      } else if (("," + controllers + ",").find(",cpuset,") != std::string::npos) {
        candidates.push_back("fs/cgroup/cpuset" + path + "/cpuset.effective_cpus");
      }
    }
  }
  candidates.push_back("fs/cgroup/cpuset.cpus.effective");
  candidates.push_back("fs/cgroup/cpuset/cpuset.effective_cpus");
  for (const std::string& path : candidates) {
    if (std::optional<CpuSet> cpus = ReadCpuList(source, path)) return cpus;
  }
  return std::nullopt;
}

}  // namespace

int Topology::SocketCount() const {
  std::set<int> sockets;
  for (const LogicalCpu& cpu : cpus) sockets.insert(cpu.socket_id);
  return static_cast<int>(sockets.size());
}

int Topology::PhysicalCoreCount() const {
  std::set<CoreKey> cores;
  for (const LogicalCpu& cpu : cpus) cores.insert(KeyOf(cpu));
  return static_cast<int>(cores.size());
}

int Topology::NumaNodeCount() const {
  std::set<int> nodes;
  for (const LogicalCpu& cpu : cpus) nodes.insert(cpu.numa_node);
  return static_cast<int>(nodes.size());
}

int Topology::ThreadsPerCore() const {
  std::map<CoreKey, int> threads;
  int widest = 0;
  for (const LogicalCpu& cpu : cpus) widest = std::max(widest, ++threads[KeyOf(cpu)]);
  return widest;
}

CpuSet Topology::Online() const {
  std::vector<int> ids;
  for (const LogicalCpu& cpu : cpus) ids.push_back(cpu.id);
  return CpuSet(std::move(ids));
}

const LogicalCpu* Topology::Find(int cpu) const {
  const auto it = std::lower_bound(cpus.begin(), cpus.end(), cpu,
                                   [](const LogicalCpu& a, int id) { return a.id < id; });
  return it != cpus.end() && it->id == cpu ? &*it : nullptr;
}

CpuSet Topology::Siblings(int cpu) const {
  const LogicalCpu* self = Find(cpu);
  if (self == nullptr) return CpuSet();
  std::vector<int> ids;
  for (const LogicalCpu& other : cpus) {
    if (KeyOf(other) == KeyOf(*self)) ids.push_back(other.id);
  }
  return CpuSet(std::move(ids));
}

CpuSet Topology::NodeCpus(int numa_node) const {
  std::vector<int> ids;
  for (const LogicalCpu& cpu : cpus) {
    if (cpu.numa_node == numa_node) ids.push_back(cpu.id);
  }
  return CpuSet(std::move(ids));
}

CpuSet Topology::SocketCpus(int socket_id) const {
  std::vector<int> ids;
  for (const LogicalCpu& cpu : cpus) {
    if (cpu.socket_id == socket_id) ids.push_back(cpu.id);
  }
  return CpuSet(std::move(ids));
}

Topology ReadTopology(const SystemSource& source) {
  const CpuSet affinity = source.Affinity();
  std::optional<CpuSet> online = ReadCpuList(source, "devices/system/cpu/online");
  if (!online || online->empty()) online = affinity;

  std::map<int, int> node_of_cpu;
  if (const std::optional<CpuSet> nodes = ReadCpuList(source, "devices/system/node/online")) {
    for (int node : *nodes) {
      const std::string path = "devices/system/node/node" + std::to_string(node) + "/cpulist";
      if (const std::optional<CpuSet> node_cpus = ReadCpuList(source, path)) {
        for (int cpu : *node_cpus) node_of_cpu.emplace(cpu, node);
      }
    }
  }

  Topology topology;
  for (int id : *online) {
    const std::string dir = "devices/system/cpu/cpu" + std::to_string(id) + "/topology/";
    LogicalCpu cpu;
    cpu.id = id;
    // Some arm64 firmware reports -1 for the package; there is still one package.
    cpu.socket_id = std::max(0, ReadInt(source, dir + "physical_package_id").value_or(0));
    if (const std::optional<int> core_id = ReadInt(source, dir + "core_id")) {
      cpu.core_id = *core_id;
    } else if (const std::optional<CpuSet> siblings =
                   ReadCpuList(source, dir + "thread_siblings_list");
               siblings && !siblings->empty()) {
      cpu.core_id = siblings->ids().front();
    } else {
      cpu.core_id = id;
    }
    const auto node = node_of_cpu.find(id);
    cpu.numa_node = node == node_of_cpu.end() ? 0 : node->second;
    topology.cpus.push_back(cpu);
  }

  CpuSet allowed = affinity;
  if (const CpuSet usable = allowed.Intersect(*online); !usable.empty()) allowed = usable;
  if (const std::optional<CpuSet> cgroup = ReadCgroupCpus(source)) {
    if (const CpuSet usable = allowed.Intersect(*cgroup); !usable.empty()) allowed = usable;
  }
  topology.allowed = std::move(allowed);
  return topology;
}

CpuSet OneCpuPerCore(const Topology& topology, const CpuSet& within) {
  std::map<CoreKey, int> chosen;
  for (const LogicalCpu& cpu : topology.cpus) {
    if (within.contains(cpu.id)) chosen.emplace(KeyOf(cpu), cpu.id);  // cpus ascend: first wins
  }
  std::vector<int> ids;
  ids.reserve(chosen.size());
  for (const auto& [core, cpu] : chosen) ids.push_back(cpu);
  return CpuSet(std::move(ids));
}

}  // namespace ipt::platform
