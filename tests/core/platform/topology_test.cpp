#include "core/platform/topology.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"
#include "core/platform/cpu_info.h"

namespace ipt::platform {
namespace {

namespace fs = std::filesystem;

// A sysfs and procfs tree in a temp dir, removed at the end of the test.
class FakeMachine {
 public:
  FakeMachine() {
    std::string pattern = ::testing::TempDir() + "ipt_fake_machine_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    fs::create_directories(root_ / "sys");
    fs::create_directories(root_ / "proc");
  }
  ~FakeMachine() { fs::remove_all(root_); }

  void WriteSys(const std::string& path, const std::string& text) { Write("sys/" + path, text); }
  void WriteProc(const std::string& path, const std::string& text) { Write("proc/" + path, text); }

  // One online CPU's topology files.
  void AddCpu(int cpu, int socket, int core, const std::string& siblings) {
    const std::string dir = "devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    WriteSys(dir + "physical_package_id", std::to_string(socket) + "\n");
    WriteSys(dir + "core_id", std::to_string(core) + "\n");
    WriteSys(dir + "thread_siblings_list", siblings + "\n");
  }

  LinuxSystemSource Source(std::optional<CpuSet> affinity) const {
    return LinuxSystemSource((root_ / "sys").string(), (root_ / "proc").string(),
                             std::move(affinity));
  }

 private:
  void Write(const std::string& path, const std::string& text) {
    const fs::path file = root_ / path;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  fs::path root_;
};

// 2 sockets x 4 cores x 2 threads, Intel bare-metal numbering: CPU n and n+8 are siblings, and
// core ids restart at 0 on each socket.
void BuildTwoSocketServer(FakeMachine& machine) {
  machine.WriteSys("devices/system/cpu/online", "0-15\n");
  for (int cpu = 0; cpu < 16; ++cpu) {
    const int first = cpu % 8;
    machine.AddCpu(cpu, first / 4, first % 4,
                   std::to_string(first) + "," + std::to_string(first + 8));
  }
  machine.WriteSys("devices/system/node/online", "0-1\n");
  machine.WriteSys("devices/system/node/node0/cpulist", "0-3,8-11\n");
  machine.WriteSys("devices/system/node/node1/cpulist", "4-7,12-15\n");
}

// A VM with 4 cores x 2 threads where siblings are adjacent (0&1, 2&3, ...) and no NUMA dir.
void BuildVm(FakeMachine& machine) {
  machine.WriteSys("devices/system/cpu/online", "0-7\n");
  for (int cpu = 0; cpu < 8; ++cpu) {
    const int first = cpu - cpu % 2;
    machine.AddCpu(cpu, 0, cpu / 2, std::to_string(first) + "-" + std::to_string(first + 1));
  }
}

TEST(TopologyTest, TwoSocketServerWithDistantSiblings) {
  FakeMachine machine;
  BuildTwoSocketServer(machine);
  const Topology topology = ReadTopology(machine.Source(CpuSet::Parse("0-15")));

  EXPECT_EQ(topology.LogicalCpuCount(), 16);
  EXPECT_EQ(topology.SocketCount(), 2);
  EXPECT_EQ(topology.PhysicalCoreCount(), 8);  // core ids repeat per socket: pairs count
  EXPECT_EQ(topology.NumaNodeCount(), 2);
  EXPECT_EQ(topology.ThreadsPerCore(), 2);
  EXPECT_EQ(topology.allowed.ToString(), "0-15");
  EXPECT_EQ(topology.Siblings(0).ToString(), "0,8");
  EXPECT_EQ(topology.Siblings(13).ToString(), "5,13");
  EXPECT_EQ(topology.SocketCpus(1).ToString(), "4-7,12-15");
  EXPECT_EQ(topology.NodeCpus(1).ToString(), "4-7,12-15");
  ASSERT_NE(topology.Find(12), nullptr);
  EXPECT_EQ(topology.Find(12)->socket_id, 1);
  EXPECT_EQ(topology.Find(12)->numa_node, 1);
  EXPECT_EQ(topology.Find(16), nullptr);

  EXPECT_EQ(OneCpuPerCore(topology, topology.allowed).ToString(), "0-7");
  // The lowest id within the given set, not the lowest id of the core.
  EXPECT_EQ(OneCpuPerCore(topology, CpuSet({1, 8, 9})).ToString(), "1,8");
}

TEST(TopologyTest, VmWithAdjacentSiblings) {
  FakeMachine machine;
  BuildVm(machine);
  const Topology topology = ReadTopology(machine.Source(CpuSet::Parse("0-7")));

  EXPECT_EQ(topology.LogicalCpuCount(), 8);
  EXPECT_EQ(topology.SocketCount(), 1);
  EXPECT_EQ(topology.PhysicalCoreCount(), 4);
  EXPECT_EQ(topology.NumaNodeCount(), 1);  // no node directory: one node
  EXPECT_EQ(topology.ThreadsPerCore(), 2);
  EXPECT_EQ(topology.Siblings(2).ToString(), "2-3");
  EXPECT_EQ(OneCpuPerCore(topology, topology.allowed).ToString(), "0,2,4,6");
  EXPECT_EQ(OneCpuPerCore(topology, CpuSet::Parse("1-4")).ToString(), "1-2,4");
}

TEST(TopologyTest, RestrictedAffinity) {
  FakeMachine machine;
  BuildVm(machine);
  const Topology topology = ReadTopology(machine.Source(CpuSet({2, 3, 5})));

  EXPECT_EQ(topology.LogicalCpuCount(), 8);  // the machine is still the whole machine
  EXPECT_EQ(topology.allowed.ToString(), "2-3,5");
  EXPECT_EQ(OneCpuPerCore(topology, topology.allowed).ToString(), "2,5");
}

TEST(TopologyTest, CgroupCpusetNarrowsAllowed) {
  FakeMachine machine;
  BuildVm(machine);
  machine.WriteProc("self/cgroup", "0::/tuning.slice/job\n");
  machine.WriteSys("fs/cgroup/tuning.slice/job/cpuset.cpus.effective", "4-7\n");
  machine.WriteSys("fs/cgroup/cpuset.cpus.effective", "0-7\n");
  EXPECT_EQ(ReadTopology(machine.Source(CpuSet::Parse("0-7"))).allowed.ToString(), "4-7");
}

TEST(TopologyTest, CgroupV1CpusetNarrowsAllowed) {
  FakeMachine machine;
  BuildVm(machine);
  machine.WriteProc("self/cgroup", "4:memory:/x\n3:cpuset:/\n0::/\n");
  machine.WriteSys("fs/cgroup/cpuset/cpuset.effective_cpus", "1,3\n");
  EXPECT_EQ(ReadTopology(machine.Source(CpuSet::Parse("0-7"))).allowed.ToString(), "1,3");
}

TEST(TopologyTest, DisjointCgroupIsIgnored) {
  // A cgroup file that disagrees with the kernel's affinity (e.g. a host's file seen from a
  // container) must not leave the process with no CPUs.
  FakeMachine machine;
  BuildVm(machine);
  machine.WriteSys("fs/cgroup/cpuset.cpus.effective", "40-47\n");
  EXPECT_EQ(ReadTopology(machine.Source(CpuSet({0, 1}))).allowed.ToString(), "0-1");
}

TEST(TopologyTest, OfflineCpusAreLeftOut) {
  FakeMachine machine;
  BuildTwoSocketServer(machine);
  machine.WriteSys("devices/system/cpu/online", "0-7\n");  // SMT switched off
  const Topology topology = ReadTopology(machine.Source(CpuSet::Parse("0-7")));
  EXPECT_EQ(topology.LogicalCpuCount(), 8);
  EXPECT_EQ(topology.PhysicalCoreCount(), 8);
  EXPECT_EQ(topology.ThreadsPerCore(), 1);
}

TEST(TopologyTest, MissingTopologyFilesFallBack) {
  FakeMachine machine;
  machine.WriteSys("devices/system/cpu/online", "0-3\n");
  machine.WriteSys("devices/system/cpu/cpu2/topology/thread_siblings_list", "2-3\n");
  machine.WriteSys("devices/system/cpu/cpu3/topology/thread_siblings_list", "2-3\n");
  const Topology topology = ReadTopology(machine.Source(CpuSet::Parse("0-3")));
  EXPECT_EQ(topology.SocketCount(), 1);
  EXPECT_EQ(topology.PhysicalCoreCount(), 3);  // 0, 1, and {2,3} from the sibling lists
}

TEST(TopologyTest, NoSysfsAtAllUsesAffinity) {
  FakeMachine machine;
  const Topology topology = ReadTopology(machine.Source(CpuSet({0, 1})));
  EXPECT_EQ(topology.LogicalCpuCount(), 2);
  EXPECT_EQ(topology.allowed.ToString(), "0-1");
}

TEST(TopologyTest, CorruptFileIsNamed) {
  FakeMachine machine;
  BuildVm(machine);
  machine.WriteSys("devices/system/cpu/cpu3/topology/core_id", "three\n");
  try {
    ReadTopology(machine.Source(CpuSet::Parse("0-7")));
    FAIL() << "accepted a corrupt core_id";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("cpu3/topology/core_id"), std::string::npos) << e.what();
  }
}

TEST(CpuInfoTest, ReadsFakeMachine) {
  FakeMachine machine;
  machine.WriteProc("cpuinfo",
                    "processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile avx512_vnni_x\n\n"
                    "processor\t: 1\nmodel name\t: something else\n");
  machine.WriteProc("meminfo", "MemTotal:       16318024 kB\nMemFree:  1 kB\n");
  machine.WriteSys("devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n");
  const CpuInfo info = ReadCpuInfo(machine.Source(CpuSet({0})));
  EXPECT_EQ(info.model_name, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(info.vendor, "GenuineIntel");
  // In kIsaFlagsOfInterest order; "avx512_vnni_x" is not "avx512_vnni".
  EXPECT_EQ(info.isa_flags,
            (std::vector<std::string>{"avx2", "avx512f", "avx512_bf16", "amx_tile", "fma"}));
  EXPECT_TRUE(info.HasIsa("amx_tile"));
  EXPECT_FALSE(info.HasIsa("avx512_vnni"));
  EXPECT_EQ(info.memory_total_bytes, 16318024ull * 1024);
  EXPECT_EQ(info.governor, "performance");
}

TEST(CpuInfoTest, MissingFilesGiveUnknown) {
  FakeMachine machine;
  const CpuInfo info = ReadCpuInfo(machine.Source(CpuSet({0})));
  EXPECT_EQ(info.model_name, "unknown");
  EXPECT_EQ(info.vendor, "unknown");
  EXPECT_TRUE(info.isa_flags.empty());
  EXPECT_EQ(info.memory_total_bytes, 0u);
  EXPECT_EQ(info.governor, "unknown");
}

TEST(RealMachineTest, TopologyAndCpuInfo) {
  const LinuxSystemSource source;
  const Topology topology = ReadTopology(source);
  EXPECT_GE(topology.LogicalCpuCount(), 1);
  EXPECT_GE(topology.PhysicalCoreCount(), 1);
  EXPECT_GE(topology.ThreadsPerCore(), 1);
  EXPECT_FALSE(topology.allowed.empty());
  for (int cpu : topology.allowed) EXPECT_NE(topology.Find(cpu), nullptr) << cpu;

  const CpuInfo info = ReadCpuInfo(source);
  EXPECT_GT(info.memory_total_bytes, 0u);
  EXPECT_NE(info.kernel_release, "unknown");
  EXPECT_FALSE(info.governor.empty());
  EXPECT_TRUE(info.load_average.has_value());
}

TEST(ProcessAgeTest, ReadsTheStartTimeAfterTheCommandName) {
  FakeMachine machine;
  const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  // A command name with a space and a parenthesis; start time 250 ticks after boot.
  machine.WriteProc("self/stat",
                    "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 250 "
                    "1000 10 18446744073709551615\n");
  machine.WriteProc("uptime", "10.00 15.00\n");
  std::optional<double> age = ProcessAgeSeconds(machine.Source(std::nullopt));
  ASSERT_TRUE(age.has_value());
  EXPECT_NEAR(*age, 10.0 - 250 * tick, 1e-9);

  machine.WriteProc("self/stat", "4242 (truncated) S 1\n");
  EXPECT_FALSE(ProcessAgeSeconds(machine.Source(std::nullopt)).has_value());
}

TEST(ProcessAgeTest, ThisProcessStartedBeforeNowAndNotLongAgo) {
  std::optional<double> age = ProcessAgeSeconds(LinuxSystemSource());
  ASSERT_TRUE(age.has_value());
  EXPECT_GE(*age, 0.0);
  EXPECT_LT(*age, 3600.0);
}

}  // namespace
}  // namespace ipt::platform
