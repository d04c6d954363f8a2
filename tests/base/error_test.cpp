#include "base/error.h"

#include <gtest/gtest.h>

namespace ipt {
namespace {

TEST(ErrorTest, ContextKeepsCodeAndPrefixesMessage) {
  Error inner(ErrorCode::kNotFound, "no such workload 'resnet5'");
  Error outer = inner.WithContext("bench");
  EXPECT_EQ(outer.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(outer.what(), "bench: no such workload 'resnet5'");
}

TEST(ErrorTest, CodeNamesAreStable) {
  EXPECT_EQ(ErrorCodeName(ErrorCode::kBusy), "busy");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kWorkerFailed), "worker_failed");
}

}  // namespace
}  // namespace ipt
