// Helpers shared by the pool and stream tests: the machines they plan for, built as Topology
// values (reading sysfs is topology_test's concern, these tests need only the shape), and error
// expectations.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "base/error.h"
#include "core/platform/cpu_set.h"
#include "core/platform/topology.h"

namespace ipt::platform::testing_util {

// `cpu_count` online CPUs 0..n-1, all allowed unless `allowed` is given; `describe(id)` fills in
// core, socket and node.
template <typename Describe>
Topology MakeTopology(int cpu_count, Describe describe, const std::string& allowed = "") {
  Topology topology;
  for (int id = 0; id < cpu_count; ++id) {
    LogicalCpu cpu;
    cpu.id = id;
    describe(cpu);
    topology.cpus.push_back(cpu);
  }
  topology.allowed = allowed.empty() ? topology.Online() : CpuSet::Parse(allowed);
  return topology;
}

// 2 sockets x 28 cores x 2 threads, one NUMA node per socket, bare-metal numbering: CPU i and
// i+56 are siblings, core ids restart on each socket.
inline Topology TwoSocketServer(const std::string& allowed = "") {
  return MakeTopology(
      112,
      [](LogicalCpu& cpu) {
        const int first = cpu.id % 56;
        cpu.socket_id = first / 28;
        cpu.numa_node = first / 28;
        cpu.core_id = first % 28;
      },
      allowed);
}

// A VM with 16 cores x 2 threads where siblings are adjacent: (0,1), (2,3), ...
inline Topology AdjacentSiblingVm() {
  return MakeTopology(32, [](LogicalCpu& cpu) { cpu.core_id = cpu.id / 2; });
}

// 16 CPUs, no SMT, one node; the container may only use `allowed`.
inline Topology NoSmtMachine(const std::string& allowed) {
  return MakeTopology(
      16, [](LogicalCpu& cpu) { cpu.core_id = cpu.id; }, allowed);
}

// The CI runner: 2 CPUs, 1 node, no SMT.
inline Topology TwoCpuMachine() {
  return MakeTopology(2, [](LogicalCpu& cpu) { cpu.core_id = cpu.id; });
}

// 2 sockets x 4 cores, no SMT, numbered alternately across sockets (some BIOSes do): even CPUs
// on socket 0, odd on socket 1. One NUMA node per socket, or a single node when the BIOS
// interleaves memory across sockets.
inline Topology InterleavedSockets(bool node_per_socket = true) {
  return MakeTopology(8, [node_per_socket](LogicalCpu& cpu) {
    cpu.socket_id = cpu.id % 2;
    cpu.numa_node = node_per_socket ? cpu.id % 2 : 0;
    cpu.core_id = cpu.id / 2;
  });
}

// 2 sockets x 2 NUMA nodes (sub-NUMA clustering) x 4 cores, no SMT: node = CPU / 4.
inline Topology SubNumaClusters() {
  return MakeTopology(16, [](LogicalCpu& cpu) {
    cpu.socket_id = cpu.id / 8;
    cpu.numa_node = cpu.id / 4;
    cpu.core_id = cpu.id % 8;
  });
}

// 2 NUMA nodes of 7 cores each on one socket, no SMT: node sizes that divide badly.
inline Topology TwoNodesOfSeven() {
  return MakeTopology(14, [](LogicalCpu& cpu) {
    cpu.core_id = cpu.id;
    cpu.numa_node = cpu.id / 7;
  });
}

// Expects `f` to throw ipt::Error kInvalidArgument whose message contains every fragment.
template <typename F>
void ExpectInvalidArgument(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "expected ipt::Error(invalid_argument), nothing was thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << "'" << e.what() << "' does not contain '" << fragment << "'";
    }
  }
}

}  // namespace ipt::platform::testing_util
