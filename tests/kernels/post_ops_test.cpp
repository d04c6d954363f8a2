#include "kernels/post_ops.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace ipt::kernels {
namespace {

TEST(PostOpsTest, EverySpellingRoundTrips) {
  for (const char* text :
       {"", "sum", "relu", "sum+relu", "leaky_relu(0.01)", "gelu", "gelu_tanh", "tanh", "sigmoid",
        "silu", "hardtanh(0,6)", "elu(1.5)", "hardswish", "sum+gelu"}) {
    EXPECT_EQ(ToString(ParsePostOps(text)), text);
  }
  PostOps p = ParsePostOps("sum+hardtanh(-1,2.5)");
  EXPECT_TRUE(p.sum);
  ASSERT_TRUE(p.eltwise);
  EXPECT_EQ(p.eltwise->kind, Eltwise::kHardtanh);
  EXPECT_FLOAT_EQ(p.eltwise->alpha, -1.f);
  EXPECT_FLOAT_EQ(p.eltwise->beta, 2.5f);
}

TEST(PostOpsTest, MalformedTextNamesTheProblem) {
  for (const char* text : {"swish", "relu(1)", "leaky_relu", "hardtanh(0,x)", "sumrelu", "elu(1"}) {
    try {
      ParsePostOps(text);
      ADD_FAILURE() << text << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ipt::kernels
