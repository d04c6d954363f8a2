#include "core/platform/stream_plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/core/platform/test_util.h"

namespace ipt::platform {
namespace {

using testing_util::ExpectInvalidArgument;
using Strings = std::vector<std::string>;

StreamRequest Request(int streams, int cores_per_stream = 0, Binding binding = Binding::kCompact) {
  StreamRequest request;
  request.streams = streams;
  request.cores_per_stream = cores_per_stream;
  request.binding = binding;
  return request;
}

// Each stream's CPUs in list syntax; also checks that every stream has one thread per CPU.
Strings Cpus(const StreamPlan& plan) {
  Strings out;
  for (const Stream& stream : plan.streams) {
    EXPECT_EQ(stream.threads, static_cast<int>(stream.cpus.size())) << stream.cpus.ToString();
    out.push_back(stream.cpus.ToString());
  }
  return out;
}

std::vector<int> Nodes(const StreamPlan& plan) {
  std::vector<int> out;
  for (const Stream& stream : plan.streams) out.push_back(stream.numa_node);
  return out;
}

// "a-b" for consecutive streams of `size` CPUs starting at `first`.
Strings Ranges(int first, int size, int count) {
  Strings out;
  for (int i = 0; i < count; ++i) {
    const int start = first + i * size;
    out.push_back(
        CpuSet::Parse(std::to_string(start) + "-" + std::to_string(start + size - 1)).ToString());
  }
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  StreamPlan Plan(const StreamRequest& request) { return PlanStreams(topology_, pool_, request); }

  const Topology topology_ = testing_util::TwoSocketServer();
  const CorePool pool_ = CorePool::AllAllowed(topology_);
};

TEST_F(ServerTest, CompactHalvesAndQuarters) {
  const StreamPlan two = Plan(Request(2));
  EXPECT_EQ(Cpus(two), (Strings{"0-27", "28-55"}));
  EXPECT_EQ(Nodes(two), (std::vector<int>{0, 1}));
  EXPECT_TRUE(two.idle.empty());

  const StreamPlan four = Plan(Request(4));
  EXPECT_EQ(Cpus(four), (Strings{"0-13", "14-27", "28-41", "42-55"}));
  EXPECT_EQ(Nodes(four), (std::vector<int>{0, 0, 1, 1}));

  const StreamPlan eight = Plan(Request(8));
  EXPECT_EQ(Cpus(eight), Ranges(0, 7, 8));
  EXPECT_EQ(Nodes(eight), (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(Cpus(Plan(Request(8, 7))), Ranges(0, 7, 8));
}

TEST_F(ServerTest, DefaultIsStreamsOfFourCores) {
  const StreamPlan plan = Plan(Request(0));
  EXPECT_EQ(Cpus(plan), Ranges(0, 4, 14));
  for (int i = 0; i < 14; ++i) EXPECT_EQ(plan.streams[i].numa_node, i < 7 ? 0 : 1) << i;
}

TEST_F(ServerTest, ScatterAlternatesNodes) {
  const StreamPlan scatter = Plan(Request(2, 4, Binding::kScatter));
  EXPECT_EQ(Cpus(scatter), (Strings{"0-3", "28-31"}));
  EXPECT_EQ(Nodes(scatter), (std::vector<int>{0, 1}));
  EXPECT_EQ(scatter.idle.ToString(), "4-27,32-55");

  const StreamPlan compact = Plan(Request(2, 4));
  EXPECT_EQ(Cpus(compact), (Strings{"0-3", "4-7"}));
  EXPECT_EQ(compact.idle.ToString(), "8-55");

  EXPECT_EQ(Cpus(Plan(Request(3, 4, Binding::kScatter))), (Strings{"0-3", "28-31", "4-7"}));
  // With the whole pool in use, scatter only changes the order of the streams.
  EXPECT_EQ(Cpus(Plan(Request(4, 0, Binding::kScatter))),
            (Strings{"0-13", "28-41", "14-27", "42-55"}));
}

TEST_F(ServerTest, UnevenCountSpansOnlyAtTheNodeBoundary) {
  // 56 / 3: no way to keep 19- or 18-core streams on 28-core nodes; larger streams first.
  const StreamPlan plan = Plan(Request(3));
  EXPECT_EQ(Cpus(plan), (Strings{"0-18", "19-37", "38-55"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0, -1, 1}));
  EXPECT_TRUE(plan.idle.empty());
}

TEST_F(ServerTest, CoresPerStreamAloneSkipsCrossNodeCores) {
  // 8 does not divide 28: three streams per node, four cores idle on each, none spanning.
  const StreamPlan plan = Plan(Request(0, 8));
  EXPECT_EQ(Cpus(plan), (Strings{"0-7", "8-15", "16-23", "28-35", "36-43", "44-51"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(plan.idle.ToString(), "24-27,52-55");

  // A seventh is only possible across the boundary, and was asked for.
  const StreamPlan seven = Plan(Request(7, 8));
  EXPECT_EQ(Cpus(seven), Ranges(0, 8, 7));
  EXPECT_EQ(Nodes(seven), (std::vector<int>{0, 0, 0, -1, 1, 1, 1}));
  EXPECT_TRUE(seven.idle.empty());

  // 14 divides 28: two per node.
  EXPECT_EQ(Cpus(Plan(Request(0, 14))), (Strings{"0-13", "14-27", "28-41", "42-55"}));
}

TEST_F(ServerTest, LogicalPoolKeepsSiblingsTogether) {
  const CorePool logical = CorePool::AllAllowed(topology_, CorePoolOptions{false});
  EXPECT_EQ(Cpus(PlanStreams(topology_, logical, Request(2))),
            (Strings{"0-27,56-83", "28-55,84-111"}));
  EXPECT_EQ(Cpus(PlanStreams(topology_, logical, Request(4))),
            (Strings{"0-13,56-69", "14-27,70-83", "28-41,84-97", "42-55,98-111"}));
  // Two-CPU streams are whole cores.
  EXPECT_EQ(Cpus(PlanStreams(topology_, logical, Request(3, 2))),
            (Strings{"0,56", "1,57", "2,58"}));
}

TEST_F(ServerTest, NodePool) {
  const CorePool node = CorePool::NumaNode(topology_, 1);
  EXPECT_EQ(Cpus(PlanStreams(topology_, node, Request(2))), (Strings{"28-41", "42-55"}));
  EXPECT_EQ(Cpus(PlanStreams(topology_, node, Request(0))), Ranges(28, 4, 7));
}

TEST_F(ServerTest, Errors) {
  ExpectInvalidArgument([&] { Plan(Request(57)); },
                        {"57 streams requested but the pool has only 56 CPUs (0-55)"});
  ExpectInvalidArgument([&] { Plan(Request(4, 16)); },
                        {"4 streams x 16 cores = 64 CPUs, more than the pool's 56 CPUs (0-55)"});
  ExpectInvalidArgument([&] { Plan(Request(0, 57)); },
                        {"cores_per_stream 57 is more than the pool's 56 CPUs"});
  ExpectInvalidArgument([&] { Plan(Request(-1)); }, {"streams", "got -1"});
  ExpectInvalidArgument([&] { Plan(Request(2, -2)); }, {"cores_per_stream", "got -2"});
  // A pool from another machine.
  ExpectInvalidArgument([&] { PlanStreams(testing_util::TwoCpuMachine(), pool_, Request(1)); },
                        {"CPU 2 of the core pool 0-55 is not in the topology", "online: 0-1"});
}

TEST(StreamPlanTest, VmWithAdjacentSiblingsUsesEveryOtherCpu) {
  const Topology topology = testing_util::AdjacentSiblingVm();
  const CorePool pool = CorePool::AllAllowed(topology);
  const StreamPlan plan = PlanStreams(topology, pool, Request(2));
  EXPECT_EQ(Cpus(plan), (Strings{"0,2,4,6,8,10,12,14", "16,18,20,22,24,26,28,30"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0, 0}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(0))),
            (Strings{"0,2,4,6", "8,10,12,14", "16,18,20,22", "24,26,28,30"}));

  const CorePool logical = CorePool::AllAllowed(topology, CorePoolOptions{false});
  const StreamPlan pairs = PlanStreams(topology, logical, Request(3, 2));
  EXPECT_EQ(Cpus(pairs), (Strings{"0-1", "2-3", "4-5"}));
  EXPECT_EQ(pairs.idle.ToString(), "6-31");
}

TEST(StreamPlanTest, ContainerRestrictedCpus) {
  const Topology topology = testing_util::NoSmtMachine("4-11");
  const CorePool pool = CorePool::AllAllowed(topology);
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(2))), (Strings{"4-7", "8-11"}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(0))), (Strings{"4-7", "8-11"}));
  // 8 / 3: the leftover two go to the first two streams.
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(3))), (Strings{"4-6", "7-9", "10-11"}));
}

TEST(StreamPlanTest, TwoCpuMachine) {
  const Topology topology = testing_util::TwoCpuMachine();
  const CorePool pool = CorePool::AllAllowed(topology);
  const StreamPlan plan = PlanStreams(topology, pool, StreamRequest{});
  EXPECT_EQ(Cpus(plan), (Strings{"0-1"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(2))), (Strings{"0", "1"}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(2, 1))), (Strings{"0", "1"}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(0, 1))), (Strings{"0", "1"}));
  ExpectInvalidArgument([&] { PlanStreams(topology, pool, Request(3)); },
                        {"3 streams requested but the pool has only 2 CPUs (0-1)"});
  ExpectInvalidArgument([&] { PlanStreams(topology, pool, Request(0, 3)); },
                        {"cores_per_stream 3 is more than the pool's 2 CPUs (0-1)"});
}

TEST(StreamPlanTest, TopologyOrderNotCpuIdOrder) {
  // Even CPUs on socket 0, odd on socket 1: compact must not pair CPUs 0 and 1.
  const Topology topology = testing_util::InterleavedSockets();
  const CorePool pool = CorePool::AllAllowed(topology);
  const StreamPlan plan = PlanStreams(topology, pool, Request(2));
  EXPECT_EQ(Cpus(plan), (Strings{"0,2,4,6", "1,3,5,7"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0, 1}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(2, 2))), (Strings{"0,2", "4,6"}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(2, 2, Binding::kScatter))),
            (Strings{"0,2", "1,3"}));

  // With memory interleaved there is one node, and streams still follow the sockets.
  const Topology one_node = testing_util::InterleavedSockets(/*node_per_socket=*/false);
  const StreamPlan by_socket = PlanStreams(one_node, CorePool::AllAllowed(one_node), Request(2));
  EXPECT_EQ(Cpus(by_socket), (Strings{"0,2,4,6", "1,3,5,7"}));
  EXPECT_EQ(Nodes(by_socket), (std::vector<int>{0, 0}));
}

TEST(StreamPlanTest, ScatterAlternatesSocketsBeforeNodes) {
  const Topology topology = testing_util::SubNumaClusters();
  const CorePool pool = CorePool::AllAllowed(topology);
  const StreamPlan scatter = PlanStreams(topology, pool, Request(4, 2, Binding::kScatter));
  EXPECT_EQ(Cpus(scatter), (Strings{"0-1", "8-9", "4-5", "12-13"}));
  EXPECT_EQ(Nodes(scatter), (std::vector<int>{0, 2, 1, 3}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(4, 2))),
            (Strings{"0-1", "2-3", "4-5", "6-7"}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(5, 1, Binding::kScatter))),
            (Strings{"0", "8", "4", "12", "1"}));
  // 3-core streams: one fits per node, and node 0 is not overfilled to make room.
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(4, 3))),
            (Strings{"0-2", "4-6", "8-10", "12-14"}));
}

TEST(StreamPlanTest, NodesThatDivideBadly) {
  const Topology topology = testing_util::TwoNodesOfSeven();
  const CorePool pool = CorePool::AllAllowed(topology);
  // Default: 3 streams (closest to 4 cores) would span; 4 streams of 4,3 per node do not.
  const StreamPlan plan = PlanStreams(topology, pool, Request(0));
  EXPECT_EQ(Cpus(plan), (Strings{"0-3", "4-6", "7-10", "11-13"}));
  EXPECT_EQ(Nodes(plan), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(Cpus(PlanStreams(topology, pool, Request(4, 0, Binding::kScatter))),
            (Strings{"0-3", "7-10", "4-6", "11-13"}));

  const StreamPlan three = PlanStreams(topology, pool, Request(3));
  EXPECT_EQ(Cpus(three), (Strings{"0-4", "5-9", "10-13"}));
  EXPECT_EQ(Nodes(three), (std::vector<int>{0, -1, 1}));
}

TEST(StreamPlanTest, Describe) {
  const Topology topology = testing_util::TwoSocketServer();
  const CorePool pool = CorePool::AllAllowed(topology);
  EXPECT_EQ(Describe(PlanStreams(topology, pool, Request(4))),
            "stream 0: cpus 0-13 (14 threads, node 0)\n"
            "stream 1: cpus 14-27 (14 threads, node 0)\n"
            "stream 2: cpus 28-41 (14 threads, node 1)\n"
            "stream 3: cpus 42-55 (14 threads, node 1)\n");
  EXPECT_EQ(Describe(PlanStreams(topology, pool, Request(3))),
            "stream 0: cpus 0-18 (19 threads, node 0)\n"
            "stream 1: cpus 19-37 (19 threads, spans nodes)\n"
            "stream 2: cpus 38-55 (18 threads, node 1)\n");
  EXPECT_EQ(Describe(PlanStreams(topology, pool, Request(2, 1, Binding::kScatter))),
            "stream 0: cpus 0 (1 thread, node 0)\n"
            "stream 1: cpus 28 (1 thread, node 1)\n"
            "idle: cpus 1-27,29-55\n");
}

TEST(StreamPlanTest, PlanInstances) {
  const Topology topology = testing_util::TwoSocketServer();
  const CorePool pool = CorePool::AllAllowed(topology);
  Strings texts;
  for (const Stream& instance : PlanInstances(topology, pool, 4)) {
    texts.push_back(instance.cpus.ToString() + " " + std::to_string(instance.threads) +
                    " threads node " + std::to_string(instance.numa_node));
  }
  EXPECT_EQ(texts, (Strings{"0-13 14 threads node 0", "14-27 14 threads node 0",
                            "28-41 14 threads node 1", "42-55 14 threads node 1"}));
  EXPECT_EQ(PlanInstances(topology, pool, 0).size(), 14u);

  const Topology small = testing_util::TwoCpuMachine();
  const CorePool small_pool = CorePool::AllAllowed(small);
  std::vector<Stream> one = PlanInstances(small, small_pool, 0);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].cpus, CpuSet({0, 1}));
  EXPECT_EQ(one[0].numa_node, 0);
  ExpectInvalidArgument([&] { PlanInstances(small, small_pool, 3); },
                        {"planning 3 instances: 3 streams requested", "only 2 CPUs"});
}

}  // namespace
}  // namespace ipt::platform
