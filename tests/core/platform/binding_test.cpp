#include "core/platform/binding.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "base/error.h"

namespace ipt::platform {
namespace {

// Straight from the kernel, independent of the code under test.
CpuSet RawAffinity() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  EXPECT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  std::vector<int> ids;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) ids.push_back(cpu);
  }
  return CpuSet(std::move(ids));
}

TEST(BindingTest, CurrentAffinityMatchesKernel) {
  EXPECT_FALSE(CurrentAffinity().empty());
  EXPECT_EQ(CurrentAffinity(), RawAffinity());
  EXPECT_EQ(AffinityOf(getpid()), RawAffinity());
}

TEST(BindingTest, ScopedAffinityPinsAndRestores) {
  const CpuSet before = RawAffinity();
  const CpuSet one({before.ids().back()});
  {
    ScopedAffinity scope(one);
    EXPECT_EQ(scope.applied(), one);
    EXPECT_EQ(scope.previous(), before);
    EXPECT_EQ(RawAffinity(), one);
  }
  EXPECT_EQ(RawAffinity(), before);
}

TEST(BindingTest, ScopedAffinityReportsWhatTheKernelKept) {
  const CpuSet before = RawAffinity();
  // A CPU id no machine has: the kernel drops it silently and applied() must say so.
  const CpuSet asked = CpuSet({before.ids().front(), 4000});
  ScopedAffinity scope(asked);
  EXPECT_EQ(scope.applied(), CpuSet({before.ids().front()}));
}

TEST(BindingTest, RejectsEmptyAndUnusableSets) {
  const CpuSet before = RawAffinity();
  try {
    ScopedAffinity scope{CpuSet()};
    FAIL() << "bound to an empty set";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  try {
    ScopedAffinity scope(CpuSet({4000, 4001}));
    FAIL() << "bound to CPUs that do not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("4000-4001"), std::string::npos) << e.what();
  }
  EXPECT_EQ(RawAffinity(), before);
}

TEST(BindingTest, AffinityOfMissingProcessIsNullopt) {
  // Reap a child so its pid is known not to exist (until reused, which takes a full pid cycle).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_FALSE(AffinityOf(child).has_value());
}

TEST(BindingTest, CpuMaskHoldsTheSet) {
  const CpuMask mask(CpuSet({1, 3, 200}));
  EXPECT_GE(mask.size_bytes() * 8, 201u);
  EXPECT_TRUE(CPU_ISSET_S(200, mask.size_bytes(), mask.data()));
  EXPECT_TRUE(CPU_ISSET_S(3, mask.size_bytes(), mask.data()));
  EXPECT_FALSE(CPU_ISSET_S(2, mask.size_bytes(), mask.data()));
  EXPECT_EQ(CPU_COUNT_S(mask.size_bytes(), mask.data()), 3);
}

}  // namespace
}  // namespace ipt::platform
