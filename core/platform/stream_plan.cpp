// Stream and instance layout over NUMA nodes; see stream_plan.h.
#include "core/platform/stream_plan.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <tuple>
#include <utility>

#include "base/error.h"

namespace ipt::platform {
namespace {

// The pool's CPUs on one NUMA node, in topology order.
struct NodeCpus {
  int node = 0;
  int socket = 0;  // of the node's first CPU in topology order
  std::vector<int> cpus;
};

// Nodes ordered by (socket, node id), each node's CPUs by (core id, CPU id): physical cores
// in the order the hardware groups them, whatever the CPU numbering.
std::vector<NodeCpus> GroupByNode(const Topology& topology, const CorePool& pool) {
  std::vector<const LogicalCpu*> cpus;
  for (int id : pool.cpus()) {
    const LogicalCpu* cpu = topology.Find(id);
    if (cpu == nullptr) {
      throw Error(ErrorCode::kInvalidArgument,
                  "CPU " + std::to_string(id) + " of the core pool " + pool.cpus().ToString() +
                      " is not in the topology (online: " + topology.Online().ToString() + ")");
    }
    cpus.push_back(cpu);
  }
  std::sort(cpus.begin(), cpus.end(), [](const LogicalCpu* a, const LogicalCpu* b) {
    return std::tie(a->socket_id, a->numa_node, a->core_id, a->id) <
           std::tie(b->socket_id, b->numa_node, b->core_id, b->id);
  });
  std::vector<NodeCpus> nodes;
  for (const LogicalCpu* cpu : cpus) {
    auto it = std::find_if(nodes.begin(), nodes.end(),
                           [&](const NodeCpus& n) { return n.node == cpu->numa_node; });
    if (it == nodes.end()) {
      it = nodes.insert(nodes.end(), NodeCpus{cpu->numa_node, cpu->socket_id, {}});
    }
    it->cpus.push_back(cpu->id);
  }
  return nodes;
}

// Indices into `nodes` for dealing streams round-robin: the first node of every socket, then the
// second of every socket, ..., so that consecutive streams land on different sockets first.
std::vector<int> ScatterOrder(const std::vector<NodeCpus>& nodes) {
  std::vector<std::tuple<int, int, int>> keys;  // (rank within socket, socket, index)
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
    const int rank =
        static_cast<int>(std::count_if(nodes.begin(), nodes.begin() + i, [&](const NodeCpus& n) {
          return n.socket == nodes[i].socket;
        }));
    keys.emplace_back(rank, nodes[i].socket, i);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<int> order;
  order.reserve(keys.size());
  for (const auto& key : keys) order.push_back(std::get<2>(key));
  return order;
}

std::vector<int> Iota(std::size_t n) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  return order;
}

// Stream sizes are `size`, or with `use_all` `size` or size+1 so that every CPU is used.
struct Sizing {
  int streams = 0;
  int size = 0;
  bool use_all = false;
};

// Streams per node when every stream can stay on one node; nullopt when some must span.
// Extra streams beyond each node's minimum go to nodes in `order`: in one pass, filling each
// node (compact), or one at a time round-robin (scatter).
std::optional<std::vector<int>> NodeLocalCounts(const std::vector<NodeCpus>& nodes,
                                                const Sizing& sizing, const std::vector<int>& order,
                                                bool round_robin) {
  std::vector<int> counts(nodes.size());
  std::vector<int> most(nodes.size());
  int total_least = 0;
  int total_most = 0;
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    const int n = static_cast<int>(nodes[k].cpus.size());
    // With use_all a node must split exactly into streams of size or size+1.
    const int least = sizing.use_all ? (n + sizing.size) / (sizing.size + 1) : 0;
    most[k] = n / sizing.size;
    if (least > most[k]) return std::nullopt;
    counts[k] = least;
    total_least += least;
    total_most += most[k];
  }
  if (total_least > sizing.streams || total_most < sizing.streams) return std::nullopt;
  int remaining = sizing.streams - total_least;
  while (remaining > 0) {
    for (int k : order) {
      const int add =
          std::min(remaining, round_robin ? std::min(1, most[k] - counts[k]) : most[k] - counts[k]);
      counts[k] += add;
      remaining -= add;
    }
  }
  return counts;
}

Stream MakeStream(const Topology& topology, std::vector<int> ids) {
  Stream stream;
  stream.cpus = CpuSet(std::move(ids));
  stream.threads = static_cast<int>(stream.cpus.size());
  stream.numa_node = topology.Find(stream.cpus.ids().front())->numa_node;
  for (int cpu : stream.cpus) {
    if (topology.Find(cpu)->numa_node != stream.numa_node) stream.numa_node = -1;
  }
  return stream;
}

std::vector<Stream> Layout(const Topology& topology, const std::vector<NodeCpus>& nodes,
                           const Sizing& sizing, Binding binding) {
  const bool scatter = binding == Binding::kScatter;
  const std::vector<int> order = scatter ? ScatterOrder(nodes) : Iota(nodes.size());
  std::vector<Stream> streams;
  if (const std::optional<std::vector<int>> counts =
          NodeLocalCounts(nodes, sizing, order, scatter)) {
    std::vector<std::vector<Stream>> per_node(nodes.size());
    for (std::size_t k = 0; k < nodes.size(); ++k) {
      const std::vector<int>& cpus = nodes[k].cpus;
      const int count = (*counts)[k];
      const int larger = sizing.use_all ? static_cast<int>(cpus.size()) - count * sizing.size : 0;
      auto next = cpus.begin();
      for (int j = 0; j < count; ++j) {
        const int size = sizing.size + (j < larger ? 1 : 0);
        per_node[k].push_back(MakeStream(topology, std::vector<int>(next, next + size)));
        next += size;
      }
    }
    if (!scatter) {
      for (const std::vector<Stream>& node_streams : per_node) {
        streams.insert(streams.end(), node_streams.begin(), node_streams.end());
      }
      return streams;
    }
    for (std::size_t taken = 0; streams.size() < static_cast<std::size_t>(sizing.streams);
         ++taken) {
      for (int k : order) {
        if (taken < per_node[k].size()) streams.push_back(per_node[k][taken]);
      }
    }
    return streams;
  }
  // Some stream must span nodes: consecutive CPUs in topology order, so that only streams at
  // node boundaries do.
  std::vector<int> all;
  for (const NodeCpus& node : nodes) all.insert(all.end(), node.cpus.begin(), node.cpus.end());
  const int larger = sizing.use_all ? static_cast<int>(all.size()) % sizing.streams : 0;
  auto next = all.begin();
  for (int i = 0; i < sizing.streams; ++i) {
    const int size = sizing.size + (i < larger ? 1 : 0);
    streams.push_back(MakeStream(topology, std::vector<int>(next, next + size)));
    next += size;
  }
  return streams;
}

// The stream count when the request leaves it to us; see PlanStreams in the header.
int DefaultStreamCount(const std::vector<NodeCpus>& nodes, int pool_size, int cores_per_stream) {
  if (cores_per_stream > 0) {
    int fit = 0;
    for (const NodeCpus& node : nodes) fit += static_cast<int>(node.cpus.size()) / cores_per_stream;
    return fit > 0 ? fit : pool_size / cores_per_stream;
  }
  const std::vector<int> order = Iota(nodes.size());
  std::optional<int> best_local;
  int best_any = 1;
  auto closer = [&](int a, int b) {
    const int da = std::abs(kDefaultCoresPerStream * a - pool_size);
    const int db = std::abs(kDefaultCoresPerStream * b - pool_size);
    return da < db || (da == db && a < b);
  };
  for (int streams = 1; streams <= pool_size; ++streams) {
    if (closer(streams, best_any)) best_any = streams;
    const Sizing sizing{streams, pool_size / streams, true};
    if ((!best_local || closer(streams, *best_local)) &&
        NodeLocalCounts(nodes, sizing, order, false)) {
      best_local = streams;
    }
  }
  return best_local.value_or(best_any);
}

}  // namespace

StreamPlan PlanStreams(const Topology& topology, const CorePool& pool,
                       const StreamRequest& request) {
  const int pool_size = static_cast<int>(pool.size());
  const std::string pool_text =
      std::to_string(pool_size) + " CPUs (" + pool.cpus().ToString() + ")";
  if (request.streams < 0) {
    throw Error(ErrorCode::kInvalidArgument, "streams must be 0 (the default count) or more, got " +
                                                 std::to_string(request.streams));
  }
  if (request.cores_per_stream < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "cores_per_stream must be 0 (pool size / streams) or more, got " +
                    std::to_string(request.cores_per_stream));
  }
  if (request.cores_per_stream > pool_size) {
    throw Error(ErrorCode::kInvalidArgument, "cores_per_stream " +
                                                 std::to_string(request.cores_per_stream) +
                                                 " is more than the pool's " + pool_text);
  }
  if (request.streams > pool_size) {
    throw Error(
        ErrorCode::kInvalidArgument,
        std::to_string(request.streams) + " streams requested but the pool has only " + pool_text);
  }
  const long long requested = static_cast<long long>(request.streams) * request.cores_per_stream;
  if (requested > pool_size) {
    throw Error(ErrorCode::kInvalidArgument, std::to_string(request.streams) + " streams x " +
                                                 std::to_string(request.cores_per_stream) +
                                                 " cores = " + std::to_string(requested) +
                                                 " CPUs, more than the pool's " + pool_text);
  }

  const std::vector<NodeCpus> nodes = GroupByNode(topology, pool);
  Sizing sizing;
  sizing.streams = request.streams > 0
                       ? request.streams
                       : DefaultStreamCount(nodes, pool_size, request.cores_per_stream);
  sizing.use_all = request.cores_per_stream == 0;
  sizing.size = sizing.use_all ? pool_size / sizing.streams : request.cores_per_stream;

  StreamPlan plan;
  plan.streams = Layout(topology, nodes, sizing, request.binding);
  CpuSet used;
  for (const Stream& stream : plan.streams) used = used.Union(stream.cpus);
  std::vector<int> idle;
  for (int cpu : pool.cpus()) {
    if (!used.contains(cpu)) idle.push_back(cpu);
  }
  plan.idle = CpuSet(std::move(idle));
  return plan;
}

std::string Describe(const StreamPlan& plan) {
  std::string out;
  for (std::size_t i = 0; i < plan.streams.size(); ++i) {
    const Stream& stream = plan.streams[i];
    out += "stream " + std::to_string(i) + ": cpus " + stream.cpus.ToString() + " (" +
           std::to_string(stream.threads) + (stream.threads == 1 ? " thread, " : " threads, ") +
           (stream.numa_node >= 0 ? "node " + std::to_string(stream.numa_node) : "spans nodes") +
           ")\n";
  }
  if (!plan.idle.empty()) out += "idle: cpus " + plan.idle.ToString() + "\n";
  return out;
}

std::vector<Stream> PlanInstances(const Topology& topology, const CorePool& pool, int instances) {
  StreamRequest request;
  request.streams = instances;
  request.binding = Binding::kCompact;
  StreamPlan plan;
  try {
    plan = PlanStreams(topology, pool, request);
  } catch (const Error& e) {
    throw e.WithContext("planning " + std::to_string(instances) + " instances");
  }
  return std::move(plan.streams);
}

}  // namespace ipt::platform
