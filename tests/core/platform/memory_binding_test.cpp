#include "core/platform/memory_binding.h"

#include <gtest/gtest.h>
#include <linux/mempolicy.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "base/error.h"

namespace ipt::platform {
namespace {

// Straight from the kernel, independent of the code under test.
int RawPolicyMode() {
  int mode = -1;
  unsigned long mask[16] = {};
  EXPECT_EQ(
      syscall(SYS_get_mempolicy, &mode, mask, 16 * 8 * sizeof(unsigned long) + 1, nullptr, 0UL), 0);
  return mode;
}

// The policy is per thread: each test binds on a thread of its own, leaving the test
// process's main thread at the default.
template <typename F>
void OnOwnThread(F body) {
  std::thread thread(body);
  thread.join();
}

TEST(MemoryBindingTest, BindsToANodeThisMachineHasAndThreadsInheritIt) {
  OnOwnThread([] {
    MemoryBinding binding = BindMemoryToNode(0);
    EXPECT_TRUE(binding.bound) << binding.detail;
    EXPECT_EQ(binding.node, 0);
    EXPECT_EQ(binding.detail, "bound to node 0");
    EXPECT_EQ(RawPolicyMode(), MPOL_BIND);
    std::string child_policy;
    std::thread child([&] { child_policy = DescribeMemoryPolicy(); });
    child.join();
    EXPECT_EQ(child_policy, "bound to node 0");
  });
  EXPECT_EQ(DescribeMemoryPolicy(), "default");
  EXPECT_EQ(RawPolicyMode(), MPOL_DEFAULT);
}

TEST(MemoryBindingTest, ARefusedBindingFallsBackToTheDefaultAndSaysWhy) {
  OnOwnThread([] {
    MemoryBinding binding = BindMemoryToNode(1000);
    EXPECT_FALSE(binding.bound);
    EXPECT_NE(binding.detail.find("node 1000"), std::string::npos) << binding.detail;
    EXPECT_NE(binding.detail.find("Invalid argument"), std::string::npos) << binding.detail;
    EXPECT_NE(binding.detail.find("default"), std::string::npos) << binding.detail;
    EXPECT_EQ(DescribeMemoryPolicy(), "default");
  });
}

TEST(MemoryBindingTest, NegativeNodeIsAnError) {
  try {
    BindMemoryToNode(-1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("-1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipt::platform
