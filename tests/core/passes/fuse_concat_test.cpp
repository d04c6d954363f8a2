#include "core/passes/fuse_concat.h"

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

std::map<std::string, at::Tensor> BatchNormParameters(int64_t channels) {
  return {{"w", at::rand({channels}) + 0.5},
          {"b", at::randn({channels})},
          {"m", at::randn({channels}) * 0.2},
          {"v", at::rand({channels}) + 0.5}};
}

TEST(FuseConcatBatchNormTest, CatBatchNormReluBecomesOneOpForEveryLayoutAndMatchesAten) {
  at::manual_seed(6);
  struct Case {
    std::string body, pattern;
    std::vector<int64_t> x1, x2;
  };
  const std::string bn =
      "torch.batch_norm(z, self.w, self.b, self.m, self.v, False, 0.1, 1e-5, "
      "True)";
  for (const Case& c : std::vector<Case>{
           {"  return torch.relu(" + bn + ")", "cat+batch_norm+relu", {2, 3, 5, 5}, {2, 4, 5, 5}},
           {"  return " + bn, "cat+batch_norm", {2, 3, 5, 5}, {2, 4, 5, 5}},
           {"  return torch.relu_(torch.batch_norm(z, None, None, self.m, self.v, False, 0.1, "
            "1e-3, True))",
            "cat+batch_norm+relu",
            {2, 3, 5, 5},
            {2, 4, 5, 5}},
           {"  return torch.relu(" + bn + ")", "cat+batch_norm+relu", {4, 3}, {4, 4}},
           {"  return torch.relu(" + bn + ")", "cat+batch_norm+relu", {2, 3, 6}, {2, 4, 6}},
       }) {
    for (bool channels_last : {false, true}) {
      if (channels_last && c.x1.size() != 4) continue;
      auto module =
          MakeModule("def forward(self, x1, x2):\n  z = torch.cat([x1, x2], 1)\n" + c.body + "\n",
                     BatchNormParameters(7));
      const auto format =
          channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      const std::vector<torch::jit::IValue> inputs = {at::randn(c.x1).contiguous(format),
                                                      at::randn(c.x2).contiguous(format)};
      const at::Tensor expected = Forward(module, inputs);
      auto frozen = Freeze(module);
      auto graph = frozen.get_method("forward").graph();
      FusionReport report = FuseConcatBatchNorm(graph);
      EXPECT_EQ(report.fused[c.pattern], 1) << c.body;
      FileCheck()
          .check("ipt::concat_batch_norm")
          ->check_not("aten::cat")
          ->check_not("aten::batch_norm")
          ->check_not("aten::relu")
          ->run(*graph);
      const at::Tensor got = Forward(frozen, inputs);
      EXPECT_LT(RelativeL2(expected, got), 1e-5) << c.body << " channels_last " << channels_last;
      if (channels_last) {
        EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
      }
    }
  }
}

TEST(FuseConcatBatchNormTest, CandidatesThatCannotFuseStayAndSayWhy) {
  at::manual_seed(7);
  struct Case {
    std::string source, reason;
  };
  for (const Case& c : std::vector<Case>{
           {"  z = torch.cat([x1, x1], 2)\n"
            "  return torch.batch_norm(z, self.w, self.b, self.m, self.v, False, 0.1, 1e-5, "
            "True)\n",
            "dimension 1"},
           {"  z = torch.cat([x1, x1], 1)\n"
            "  y = torch.batch_norm(z, self.w, self.b, self.m, self.v, False, 0.1, 1e-5, True)\n"
            "  return y + z.sum()\n",
            "other uses"},
       }) {
    const int64_t channels = c.reason == "dimension 1" ? 3 : 6;
    auto module = MakeModule("def forward(self, x1):\n" + c.source, BatchNormParameters(channels));
    const std::vector<torch::jit::IValue> inputs = {at::randn({2, 3, 4, 4})};
    const at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = FuseConcatBatchNorm(graph);
    EXPECT_TRUE(report.fused.empty());
    ASSERT_EQ(report.not_fused.size(), 1u);
    EXPECT_NE(report.not_fused[0].reason.find(c.reason), std::string::npos)
        << report.not_fused[0].reason;
    FileCheck().check("aten::cat")->check("aten::batch_norm")->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-6);
  }
}

}  // namespace
}  // namespace ipt::core::passes
