#include "core/passes/blocked_layout.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include "core/passes/lower_onednn.h"
#include "tests/core/passes/pass_test_util.h"

namespace ipt::core::passes {
namespace {

using testing::Forward;
using testing::Freeze;
using testing::MakeModule;
using testing::RelativeL2;
using torch::jit::testing::FileCheck;

// A ResNet in small: a 3-channel stem, a max pool, a residual block, then a grouped conv and a
// mean the blocked region hands its result to.
TEST(BlockedLayoutPassTest, ConvChainStaysBlockedAndReordersOnlyAtItsEdges) {
  at::manual_seed(1);
  std::map<std::string, at::Tensor> params = {{"w0", at::randn({16, 3, 7, 7}) * 0.1},
                                              {"b0", at::randn({16})},
                                              {"w1", at::randn({16, 16, 3, 3}) * 0.1},
                                              {"w2", at::randn({16, 16, 3, 3}) * 0.1},
                                              {"w3", at::randn({16, 8, 1, 1}) * 0.1}};
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.relu(torch.conv2d(x, self.w0, self.b0, [2, 2], [3, 3], [1, 1], 1))\n"
      "  y = torch.max_pool2d(y, [3, 3], [2, 2], [1, 1], [1, 1], False)\n"
      "  z = torch.relu(torch.conv2d(y, self.w1, None, [1, 1], [1, 1], [1, 1], 1))\n"
      "  z = torch.relu(torch.conv2d(z, self.w2, None, [1, 1], [1, 1], [1, 1], 1) + y)\n"
      "  g = torch.conv2d(z, self.w3, None, [1, 1], [0, 0], [1, 1], 2)\n"
      "  return z.mean([2, 3]) + g.mean([2, 3])\n",
      params);
  std::vector<torch::jit::IValue> inputs = {at::randn({2, 3, 40, 36})};
  at::Tensor expected = Forward(module, inputs);
  for (int64_t block : {8, 16}) {
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    LowerToOneDnn(graph, {});
    BlockedLayoutReport report = UseBlockedLayout(graph, block, true);
    EXPECT_EQ(report.blocked_convs, 3) << *graph;  // not the grouped one
    EXPECT_EQ(report.blocked_pools, 1);
    EXPECT_EQ(report.reorders, 1);  // z back to plain, once for both of its plain readers
    FileCheck()
        .check("ipt::conv2d")
        ->check("ipt::blocked_max_pool2d")
        ->check("ipt::conv2d")
        ->check("ipt::conv2d_sum")
        ->check_count("ipt::from_blocked", 1, /*exactly=*/true)
        ->check("ipt::conv2d")
        ->run(*graph);
    FileCheck().check_not("aten::max_pool2d")->check_not("ipt::to_blocked")->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << "block " << block;
  }
}

TEST(BlockedLayoutPassTest, PlainInputsAndAccumulatorsAreBlockedOnceAndOutputsComeBackPlain) {
  at::manual_seed(2);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({8, 8, 3, 3}) * 0.2},
                                              {"v", at::randn({8, 8, 1, 1}) * 0.2}};
  auto module = MakeModule(
      "def forward(self, x, a):\n"
      "  y = torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1) + a\n"
      "  u = torch.conv2d(x, self.v, None, [1, 1], [0, 0], [1, 1], 1)\n"
      "  return y, u\n",
      params);
  std::vector<torch::jit::IValue> inputs = {at::randn({1, 8, 9, 9}), at::randn({1, 8, 9, 9})};
  torch::NoGradGuard no_grad;
  auto expected = module.forward(inputs).toTuple();
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  LowerToOneDnn(graph, {});
  BlockedLayoutReport report = UseBlockedLayout(graph, 8, false);
  EXPECT_EQ(report.blocked_convs, 2);
  EXPECT_EQ(report.reorders, 4);  // x (shared by both convs) and a in; y and u out
  FileCheck()
      .check_count("ipt::to_blocked", 2, /*exactly=*/true)
      ->check_count("ipt::from_blocked", 2, /*exactly=*/true)
      ->run(*graph);
  auto got = frozen.forward(inputs).toTuple();
  for (size_t i = 0; i < 2; ++i) {
    at::Tensor g = got->elements()[i].toTensor();
    EXPECT_EQ(g.dim(), 4);
    EXPECT_TRUE(g.is_contiguous());  // channels_last false: plain NCHW
    EXPECT_LT(RelativeL2(expected->elements()[i].toTensor(), g), 1e-5);
  }
}

TEST(BlockedLayoutPassTest, LeavesAGraphWithoutBlockableConvsAlone) {
  std::map<std::string, at::Tensor> params = {{"w", at::randn({6, 3, 3, 3})}};
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  return torch.max_pool2d(torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1),\n"
      "                          [2, 2], [2, 2], [0, 0], [1, 1], False)\n",
      params);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  LowerToOneDnn(graph, {});
  const std::string before = graph->toString();
  BlockedLayoutReport report = UseBlockedLayout(graph, 8, true);
  EXPECT_FALSE(report.changed());
  EXPECT_EQ(graph->toString(), before);
}

}  // namespace
}  // namespace ipt::core::passes
