#include "tuner/worker_environment.h"

#include <gtest/gtest.h>

#include <fstream>

#include "base/error.h"

namespace ipt::tuner {
namespace {

TEST(WorkerEnvironmentTest, ThreadsAllocatorAndExtraVariables) {
  std::string fake = ::testing::TempDir() + "libjemalloc-fake.so";
  std::ofstream(fake) << "";
  recipes::Runtime runtime;
  runtime.allocator = recipes::Allocator::kJemalloc;
  runtime.env = {{"OMP_WAIT_POLICY", "PASSIVE"}, {"OMP_NUM_THREADS", "1"}};
  AllocatorPaths paths;
  paths.jemalloc = fake;
  auto env = WorkerEnvironment(runtime, 2, paths);
  EXPECT_EQ(env.at("LD_PRELOAD"), fake);
  EXPECT_EQ(env.at("OMP_WAIT_POLICY"), "PASSIVE");
  // The recipe's own variables win: it said what it was measured with.
  EXPECT_EQ(env.at("OMP_NUM_THREADS"), "1");
}

TEST(WorkerEnvironmentTest, DefaultAllocatorPreloadsNothing) {
  auto env = WorkerEnvironment(recipes::Runtime{}, 4);
  EXPECT_EQ(env.count("LD_PRELOAD"), 0u);
  EXPECT_EQ(env.at("OMP_NUM_THREADS"), "4");
}

TEST(WorkerEnvironmentTest, MissingAllocatorIsAnErrorNotASilentDefault) {
  recipes::Runtime runtime;
  runtime.allocator = recipes::Allocator::kTcmalloc;
  AllocatorPaths paths;
  paths.tcmalloc = "/nonexistent/libtcmalloc.so";
  try {
    WorkerEnvironment(runtime, 1, paths);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/libtcmalloc.so"), std::string::npos);
  }
}

}  // namespace
}  // namespace ipt::tuner
