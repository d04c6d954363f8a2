#include "core/platform/cpu_set.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace ipt::platform {
namespace {

TEST(CpuSetTest, ParsesRangesAndSingles) {
  const CpuSet cpus = CpuSet::Parse("0-3,8,10-11\n");
  EXPECT_EQ(cpus.ids(), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(cpus.size(), 7u);
  EXPECT_TRUE(cpus.contains(8));
  EXPECT_FALSE(cpus.contains(9));
  EXPECT_EQ(cpus.max(), 11);
}

TEST(CpuSetTest, FormatsShortestList) {
  EXPECT_EQ(CpuSet({11, 10, 0, 1, 2, 3, 8, 3}).ToString(), "0-3,8,10-11");
  EXPECT_EQ(CpuSet({0, 2, 4, 6}).ToString(), "0,2,4,6");
  EXPECT_EQ(CpuSet({5, 6}).ToString(), "5-6");
  EXPECT_EQ(CpuSet().ToString(), "");
}

TEST(CpuSetTest, RoundTrips) {
  for (const char* text : {"0", "0-1", "1,3,5-7,64-127", "4095"}) {
    EXPECT_EQ(CpuSet::Parse(text).ToString(), text);
  }
}

TEST(CpuSetTest, EmptyTextIsEmptySet) {
  EXPECT_TRUE(CpuSet::Parse("").empty());
  EXPECT_TRUE(CpuSet::Parse("\n").empty());
}

TEST(CpuSetTest, OverlappingInputIsMerged) {
  EXPECT_EQ(CpuSet::Parse("2-5,0-3,3").ToString(), "0-5");
}

TEST(CpuSetTest, MalformedInputThrowsWithText) {
  for (const char* text :
       {"1-", "-1", "3-1", "1,,2", ",1", "1,", "x", "1-2-3", "1 2", "0x3", "1:2", "99999999999"}) {
    try {
      CpuSet::Parse(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << text;
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  }
}

TEST(CpuSetTest, RejectsOutOfRangeIds) {
  EXPECT_THROW(CpuSet({-1}), Error);
  EXPECT_THROW(CpuSet({CpuSet::kMaxCpuId + 1}), Error);
  EXPECT_NO_THROW(CpuSet({CpuSet::kMaxCpuId}));
}

TEST(CpuSetTest, SetOperations) {
  const CpuSet a = CpuSet::Parse("0-5");
  const CpuSet b = CpuSet::Parse("4-9");
  EXPECT_EQ(a.Intersect(b), CpuSet({4, 5}));
  EXPECT_EQ(a.Union(b).ToString(), "0-9");
  EXPECT_TRUE(a.Intersect(CpuSet({7})).empty());
}

}  // namespace
}  // namespace ipt::platform
