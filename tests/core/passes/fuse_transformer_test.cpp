#include "core/passes/fuse_transformer.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include "tests/core/passes/pass_test_util.h"

namespace ipt::core::passes {
namespace {

using testing::Forward;
using testing::Freeze;
using testing::MakeModule;
using testing::RelativeL2;
using torch::jit::testing::FileCheck;

// One attention block as BERT writes it, at a small width.
const char* kAttention = R"(
def forward(self, x, mask):
  q = torch.linear(x, self.wq, self.bq).view([2, 6, 2, 4]).permute([0, 2, 1, 3])
  k = torch.linear(x, self.wk, self.bk).view([2, 6, 2, 4]).permute([0, 2, 1, 3])
  v = torch.linear(x, self.wv, None).view([2, 6, 2, 4]).permute([0, 2, 1, 3])
  scores = torch.matmul(q, k.transpose(-1, -2)) / 2.0
  scores = scores + mask
  probs = torch.softmax(scores, -1)
  context = torch.matmul(probs, v).permute([0, 2, 1, 3]).contiguous().view([2, 6, 8])
  return torch.layer_norm(context + x, [8], self.g, self.b, 1e-12, True)
)";

torch::jit::Module AttentionModule() {
  at::manual_seed(7);
  return MakeModule(kAttention, {{"wq", at::randn({8, 8})},
                                 {"bq", at::randn({8})},
                                 {"wk", at::randn({8, 8})},
                                 {"bk", at::randn({8})},
                                 {"wv", at::randn({8, 8})},
                                 {"g", at::randn({8})},
                                 {"b", at::randn({8})}});
}

std::vector<torch::jit::IValue> AttentionInputs() {
  at::Tensor mask = at::zeros({2, 1, 1, 6});
  mask.index_put_({1, 0, 0, at::indexing::Slice(4, 6)}, -10000.0);
  return {at::randn({2, 6, 8}), mask};
}

TEST(FuseTransformerTest, SiblingLinearsMergeIntoOneAndASplit) {
  auto module = AttentionModule();
  auto inputs = AttentionInputs();
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = MergeSiblingLinears(graph);
  EXPECT_EQ(report.fused.at("qkv_merge"), 1);
  FileCheck()
      .check_count("aten::linear", 1, /*exactly=*/true)
      ->check("aten::split_with_sizes")
      ->check("prim::ListUnpack")
      ->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

TEST(FuseTransformerTest, AttentionBecomesOneOp) {
  auto module = AttentionModule();
  auto inputs = AttentionInputs();
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = FuseAttention(graph);
  EXPECT_EQ(report.fused.at("attention"), 1);
  FileCheck().check("ipt::attention")->check_not("aten::softmax")->run(*graph);
  FileCheck().check_count("aten::matmul", 0, /*exactly=*/true)->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

TEST(FuseTransformerTest, AttentionWithAnotherUseOfTheScoresIsLeftAlone) {
  auto module = MakeModule(R"(
def forward(self, q, k, v):
  scores = torch.matmul(q, k.transpose(-1, -2)) * 0.5
  probs = torch.softmax(scores, -1)
  return torch.matmul(probs, v) + probs.sum()
)",
                           {});
  std::vector<torch::jit::IValue> inputs = {at::randn({2, 3, 4}), at::randn({2, 5, 4}),
                                            at::randn({2, 5, 4})};
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = FuseAttention(graph);
  EXPECT_TRUE(report.fused.empty());
  ASSERT_EQ(report.not_fused.size(), 1u);
  EXPECT_EQ(report.not_fused[0].pattern, "attention");
  FileCheck().check("aten::softmax")->run(*graph);
  // A number added to the scores is not a mask.
  auto shifted = MakeModule(R"(
def forward(self, q, k, v):
  return torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / 2.0 + 1.0, -1), v)
)",
                            {});
  auto shifted_frozen = Freeze(shifted);
  FusionReport shifted_report = FuseAttention(shifted_frozen.get_method("forward").graph());
  EXPECT_TRUE(shifted_report.fused.empty());
  // Without a mask, scaled by multiplication: fused, and correct.
  auto plain = MakeModule(R"(
def forward(self, q, k, v):
  return torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * 0.5, -1), v)
)",
                          {});
  at::Tensor expected = Forward(plain, inputs);
  auto plain_frozen = Freeze(plain);
  EXPECT_EQ(FuseAttention(plain_frozen.get_method("forward").graph()).fused.at("attention"), 1);
  EXPECT_LT(RelativeL2(expected, Forward(plain_frozen, inputs)), 1e-5);
}

TEST(FuseTransformerTest, AddLayerNormBecomesOneOp) {
  auto module = AttentionModule();
  auto inputs = AttentionInputs();
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = FuseAddLayerNorm(graph);
  EXPECT_EQ(report.fused.at("add+layer_norm"), 1);
  FileCheck().check("ipt::add_layer_norm")->check_not("aten::layer_norm")->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

}  // namespace
}  // namespace ipt::core::passes
