#include "core/platform/core_pool.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/core/platform/test_util.h"

namespace ipt::platform {
namespace {

using testing_util::ExpectInvalidArgument;

const CorePoolOptions kLogical{/*physical_cores_only=*/false};

// "node:cpus" per node, e.g. "0:0-27 1:28-55".
std::string Nodes(const CorePool& pool) {
  std::string out;
  for (const auto& [node, cpus] : pool.by_numa_node()) {
    out += (out.empty() ? "" : " ") + std::to_string(node) + ":" + cpus.ToString();
  }
  return out;
}

TEST(CorePoolTest, ServerAllAllowedKeepsOneCpuPerCore) {
  const Topology topology = testing_util::TwoSocketServer();
  const CorePool pool = CorePool::AllAllowed(topology);
  EXPECT_EQ(pool.cpus().ToString(), "0-55");
  EXPECT_EQ(pool.size(), 56u);
  EXPECT_TRUE(pool.physical_cores_only());
  EXPECT_EQ(Nodes(pool), "0:0-27 1:28-55");

  const CorePool logical = CorePool::AllAllowed(topology, kLogical);
  EXPECT_EQ(logical.cpus().ToString(), "0-111");
  EXPECT_FALSE(logical.physical_cores_only());
  EXPECT_EQ(Nodes(logical), "0:0-27,56-83 1:28-55,84-111");
}

TEST(CorePoolTest, ServerNodeAndSocket) {
  const Topology topology = testing_util::TwoSocketServer();
  EXPECT_EQ(CorePool::NumaNode(topology, 1).cpus().ToString(), "28-55");
  EXPECT_EQ(CorePool::NumaNode(topology, 1, kLogical).cpus().ToString(), "28-55,84-111");
  EXPECT_EQ(Nodes(CorePool::NumaNode(topology, 1)), "1:28-55");
  EXPECT_EQ(CorePool::Socket(topology, 0).cpus().ToString(), "0-27");
  EXPECT_EQ(CorePool::Socket(topology, 0, kLogical).cpus().ToString(), "0-27,56-83");

  ExpectInvalidArgument([&] { CorePool::NumaNode(topology, 2); },
                        {"NUMA node 2 does not exist", "nodes: 0-1"});
  ExpectInvalidArgument([&] { CorePool::Socket(topology, 5); },
                        {"socket 5 does not exist", "sockets: 0-1"});
}

TEST(CorePoolTest, NodeOutsideTheAllowedSetIsRejected) {
  // A process pinned to socket 0 (both threads of each core).
  const Topology topology = testing_util::TwoSocketServer("0-27,56-83");
  EXPECT_EQ(CorePool::AllAllowed(topology).cpus().ToString(), "0-27");
  ExpectInvalidArgument([&] { CorePool::NumaNode(topology, 1); },
                        {"NUMA node 1", "28-55,84-111", "allowed: 0-27,56-83"});
  ExpectInvalidArgument([&] { CorePool::Socket(topology, 1); }, {"socket 1", "no CPU"});
}

TEST(CorePoolTest, PartlyAllowedNodeKeepsTheAllowedPart) {
  const Topology topology = testing_util::TwoSocketServer("20-35");
  EXPECT_EQ(CorePool::NumaNode(topology, 0).cpus().ToString(), "20-27");
  EXPECT_EQ(Nodes(CorePool::AllAllowed(topology)), "0:20-27 1:28-35");
}

TEST(CorePoolTest, ExplicitListDropsSmtSiblings) {
  const Topology topology = testing_util::TwoSocketServer();
  // Cores 0 and 1 twice, core 2 only by its second thread, 58.
  EXPECT_EQ(CorePool::FromCpus(topology, CpuSet::Parse("0,1,56,57,58")).cpus().ToString(),
            "0-1,58");
  EXPECT_EQ(CorePool::FromCpus(topology, CpuSet::Parse("0,1,56,57,58"), kLogical).cpus().ToString(),
            "0-1,56-58");
  // Only the second thread of a core: that CPU stands for its core.
  EXPECT_EQ(CorePool::FromCpus(topology, CpuSet::Parse("84-87")).cpus().ToString(), "84-87");
  EXPECT_EQ(Nodes(CorePool::FromCpus(topology, CpuSet::Parse("26-29"))), "0:26-27 1:28-29");
}

TEST(CorePoolTest, VmWithAdjacentSiblings) {
  const Topology topology = testing_util::AdjacentSiblingVm();
  EXPECT_EQ(CorePool::AllAllowed(topology).cpus().ToString(),
            "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30");
  EXPECT_EQ(CorePool::AllAllowed(topology, kLogical).cpus().ToString(), "0-31");
  EXPECT_EQ(CorePool::FromCpus(topology, CpuSet::Parse("1-6")).cpus().ToString(), "1-2,4,6");
}

TEST(CorePoolTest, ContainerRestrictedCpus) {
  const Topology topology = testing_util::NoSmtMachine("4-11");
  const CorePool pool = CorePool::AllAllowed(topology);
  EXPECT_EQ(pool.cpus().ToString(), "4-11");
  EXPECT_EQ(Nodes(pool), "0:4-11");
  EXPECT_EQ(CorePool::NumaNode(topology, 0).cpus().ToString(), "4-11");
  EXPECT_EQ(CorePool::FromCpus(topology, CpuSet::Parse("6-9")).cpus().ToString(), "6-9");

  ExpectInvalidArgument([&] { CorePool::FromCpus(topology, CpuSet::Parse("3-5,12")); },
                        {"CPU list 3-5,12:", "3,12 not allowed for this process", "allowed: 4-11"});
  ExpectInvalidArgument([&] { CorePool::FromCpus(topology, CpuSet::Parse("10-17")); },
                        {"16-17 not online", "online: 0-15", "12-15 not allowed"});
  ExpectInvalidArgument([&] { CorePool::FromCpus(topology, CpuSet()); }, {"empty CPU list"});
}

TEST(CorePoolTest, TwoCpuMachine) {
  const CorePool pool = CorePool::AllAllowed(testing_util::TwoCpuMachine());
  EXPECT_EQ(pool.cpus().ToString(), "0-1");
  EXPECT_EQ(Nodes(pool), "0:0-1");
}

TEST(CorePoolTest, NothingAllowedIsRejected) {
  Topology topology = testing_util::TwoCpuMachine();
  topology.allowed = CpuSet({7});  // inconsistent, as a hand-built or stale topology can be
  ExpectInvalidArgument([&] { CorePool::AllAllowed(topology); },
                        {"no CPU is both allowed and online", "allowed: 7", "online: 0-1"});
}

}  // namespace
}  // namespace ipt::platform
