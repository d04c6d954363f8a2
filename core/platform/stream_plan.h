// Splitting a CorePool into streams (thread groups inside one worker, each pinned to its CPUs)
// or into instances (worker processes of the tuner's multi-instance mode). A pure function of the
// topology and the pool: the plan is a value that can be printed, stored and compared before any
// thread is bound.
#pragma once

#include <string>
#include <vector>

#include "core/platform/core_pool.h"
#include "core/platform/cpu_set.h"
#include "core/platform/topology.h"

namespace ipt::platform {

// The stream size the default stream count aims at. Many small streams give the most aggregate
// throughput for the small batches the tuner measures: a convolution or GEMM split over 4 cores
// keeps nearly all of them busy, where one split over a whole socket spends a growing share in
// OpenMP barriers and reductions. It is also the per-instance size of the PyTorch/IPEX launcher's
// --latency-mode. Larger values favour large batches and fewer copies of per-stream scratch
// memory; the tuner searches the count anyway, so this only sets where the search starts.
inline constexpr int kDefaultCoresPerStream = 4;

// How streams are laid over NUMA nodes. Inside a node a stream always takes consecutive cores.
enum class Binding {
  // Fill node after node: streams 0, 1, ... take consecutive cores in topology order (socket,
  // node, core id: not CPU id order, which interleaves sockets or siblings on some machines).
  kCompact,
  // Deal streams round-robin over the nodes, alternating sockets first, so that a plan that
  // leaves cores idle spreads over every memory controller and L3. When every stream cannot be
  // kept on one node, scatter falls back to the compact layout.
  kScatter,
};

struct StreamRequest {
  // 0 picks the count, see PlanStreams. Effect: more streams raise throughput until each is too
  // small to keep its cores busy; fewer, larger streams lower the latency of one request.
  int streams = 0;
  // CPUs of the pool per stream (physical cores for a physical_cores_only pool, logical CPUs
  // otherwise). 0 divides the pool among the streams, leaving nothing idle.
  int cores_per_stream = 0;
  Binding binding = Binding::kCompact;
};

struct Stream {
  CpuSet cpus;
  int threads = 0;     // intra-op threads for this stream: one per CPU
  int numa_node = -1;  // the node every CPU of the stream is on; -1 when it spans nodes
};

struct StreamPlan {
  std::vector<Stream> streams;
  CpuSet idle;  // pool CPUs no stream uses (only when cores_per_stream leaves some over)
};

// Splits `pool` (built from `topology`) into streams.
//
// Count and size:
//  - streams and cores_per_stream given: exactly that; idle the rest.
//  - only streams: every pool CPU is used; when the pool does not divide evenly the sizes differ
//    by one, the larger streams first (first on each node when streams stay on their nodes).
//    Nothing idles because a core left idle is throughput lost for certain, while an uneven
//    stream only skews per-stream latency; ask for cores_per_stream to get equal streams.
//  - only cores_per_stream: as many streams as fit without spanning a NUMA node; if not even
//    one fits on a node, as many as fit in the pool.
//  - neither: the count whose streams come closest to kDefaultCoresPerStream cores (fewer
//    streams on a tie) among the counts that keep every stream on one node, if any does; at
//    least 1. E.g. 2 nodes x 28 cores: 14 streams of 4; 2 nodes x 7: 4 streams of 4,3,4,3
//    (3 would force a stream across the nodes); 2 cores: 1 stream of 2.
// Placement: no stream spans NUMA nodes when the sizes allow it; in particular never when
// cores_per_stream divides each node's pool CPUs. Otherwise streams take consecutive CPUs in
// topology order and only the streams at node boundaries span.
//
// Throws ipt::Error kInvalidArgument, naming the numbers, for negative counts, more streams
// than pool CPUs, or streams * cores_per_stream above the pool size; kInvalidArgument too if the
// pool holds a CPU `topology` does not know (a pool built from another topology).
StreamPlan PlanStreams(const Topology& topology, const CorePool& pool,
                       const StreamRequest& request);

// One line per stream: "stream 0: cpus 0-13 (14 threads, node 0)", "(..., spans nodes)" when the
// stream has no single node, then "idle: cpus 24-27" when some are idle. Lines end with '\n'.
std::string Describe(const StreamPlan& plan);

// CPU sets, thread counts and NUMA nodes for `instances` worker processes (0 = the default
// count), laid out as compact streams: PlanStreams(topology, pool, {instances, 0,
// Binding::kCompact}).streams. Same errors, prefixed with "planning N instances: ".
std::vector<Stream> PlanInstances(const Topology& topology, const CorePool& pool, int instances);

}  // namespace ipt::platform
