#include "core/passes/fuse_dlrm.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include "tests/core/passes/pass_test_util.h"

namespace ipt::core::passes {
namespace {

using testing::Forward;
using testing::Freeze;
using testing::RelativeL2;
using torch::jit::testing::FileCheck;

// DLRM's sparse half at a small size: three tables, dot interaction, the final cat.
const char* kDlrm = R"(
def forward(self, x, i0, o0, i1, o1, i2, o2):
  e0 = torch.embedding_bag(self.t0, i0, o0, False, 0, False, None, False)[0]
  e1 = torch.embedding_bag(self.t1, i1, o1, False, 0, False, None, False)[0]
  e2 = torch.embedding_bag(self.t2, i2, o2, False, 0, False, None, False)[0]
  t = torch.cat([x, e0, e1, e2], 1).view([x.size(0), 4, 8])
  z = torch.bmm(t, torch.transpose(t, 1, 2))
  z = torch.index_select(z.flatten(1), 1, self.index)
  return torch.cat([x, z], 1)
)";

at::Tensor LowerTriangle(int64_t v) {
  std::vector<int64_t> index;
  for (int64_t i = 0; i < v; ++i)
    for (int64_t j = 0; j < i; ++j) index.push_back(i * v + j);
  return at::tensor(index, at::kLong);
}

std::vector<torch::jit::IValue> Inputs() {
  return {at::randn({3, 8}),
          at::tensor({1, 2, 9}, at::kLong),
          at::tensor({0, 1, 1}, at::kLong),
          at::tensor({0, 2}, at::kLong),
          at::tensor({0, 0, 1}, at::kLong),
          at::randint(0, 50, {12}),
          at::tensor({0, 5, 6}, at::kLong)};
}

torch::jit::Module Build(const at::Tensor& index) {
  torch::jit::Module module("M");
  at::manual_seed(8);
  module.register_parameter("t0", at::randn({10, 8}), false);
  module.register_parameter("t1", at::randn({3, 8}), false);
  module.register_parameter("t2", at::randn({50, 8}), false);
  module.register_buffer("index", index);
  module.define(kDlrm);
  module.eval();
  return module;
}

TEST(FuseDlrmTest, InteractionAndTheFinalCatBecomeOneOp) {
  auto module = Build(LowerTriangle(4));
  auto inputs = Inputs();
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = FuseInteraction(graph);
  EXPECT_EQ(report.fused.at("interaction"), 1);
  FileCheck().check("ipt::interaction")->check_not("aten::bmm")->run(*graph);
  FileCheck().check_not("aten::index_select")->run(*graph);
  FileCheck().check_not("aten::cat")->run(*graph);  // the final cat([x, z]) folded in too
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

TEST(FuseDlrmTest, AnIndexOtherThanTheLowerTriangleIsLeftAlone) {
  at::Tensor index = LowerTriangle(4);
  index[0] = 1;  // a diagonal element
  auto module = Build(index);
  auto frozen = Freeze(module);
  FusionReport report = FuseInteraction(frozen.get_method("forward").graph());
  EXPECT_TRUE(report.fused.empty());
  ASSERT_EQ(report.not_fused.size(), 1u);
  EXPECT_NE(report.not_fused[0].reason.find("lower triangle"), std::string::npos);
}

TEST(FuseDlrmTest, EmbeddingBagsMergeIntoOneLookup) {
  auto module = Build(LowerTriangle(4));
  auto inputs = Inputs();
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = MergeEmbeddingBags(graph);
  EXPECT_EQ(report.fused.at("merged_embedding_bag"), 1);
  FileCheck()
      .check_count("ipt::merged_embedding_bag_sum", 1, /*exactly=*/true)
      ->check_not("aten::embedding_bag")
      ->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

}  // namespace
}  // namespace ipt::core::passes
