#include "core/passes/lower_onednn.h"

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

struct EltwiseCase {
  std::string source;   // applied to `y`
  std::string pattern;  // the fused pattern's name after the anchor
  std::string aten;     // an op that must be gone
};

std::vector<EltwiseCase> EltwiseCases() {
  return {
      {"torch.relu(y)", "relu", "aten::relu"},
      {"torch.relu_(y)", "relu", "aten::relu_"},
      {"torch.leaky_relu(y, 0.1)", "leaky_relu", "aten::leaky_relu"},
      {"torch.gelu(y)", "gelu", "aten::gelu"},
      {"torch.gelu(y, approximate='tanh')", "gelu_tanh", "aten::gelu"},
      {"torch.tanh(y)", "tanh", "aten::tanh"},
      {"torch.sigmoid(y)", "sigmoid", "aten::sigmoid"},
      {"torch.silu(y)", "silu", "aten::silu"},
      {"y * torch.sigmoid(y)", "silu", "aten::sigmoid"},
      {"torch.sigmoid(y) * y", "silu", "aten::mul"},
      {"torch.hardtanh(y, -0.5, 0.5)", "hardtanh", "aten::hardtanh"},
      {"torch.clamp(y, -0.5, 0.5)", "hardtanh", "aten::clamp"},
      {"torch.clamp(y, min=0.0)", "relu", "aten::clamp"},
      {"torch.elu(y, 0.7)", "elu", "aten::elu"},
      {"torch.hardswish(y)", "hardswish", "aten::hardswish"},
  };
}

int64_t Count(const FusionReport& report, const std::string& pattern) {
  auto it = report.fused.find(pattern);
  return it == report.fused.end() ? 0 : it->second;
}

TEST(LowerToOneDnnTest, ConvFusesEveryElementwiseOpAndMatchesAten) {
  at::manual_seed(1);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({8, 4, 3, 3}) * 0.3},
                                              {"b", at::randn({8})}};
  std::vector<torch::jit::IValue> inputs = {at::randn({2, 4, 9, 9})};
  for (const EltwiseCase& c : EltwiseCases()) {
    auto module = MakeModule(
        "def forward(self, x):\n"
        "  y = torch.conv2d(x, self.w, self.b, [1, 1], [1, 1], [1, 1], 1)\n"
        "  return " +
            c.source + "\n",
        params);
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = LowerToOneDnn(graph, {});
    EXPECT_EQ(Count(report, "conv+" + c.pattern), 1) << c.source << "\n" << *graph;
    FileCheck().check("ipt::conv2d")->check_not("aten::conv2d")->run(*graph);
    FileCheck().check_not(c.aten)->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.source;
  }
}

TEST(LowerToOneDnnTest, LinearFusesEveryElementwiseOpAndMatchesAten) {
  at::manual_seed(2);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({24, 16}) * 0.3},
                                              {"b", at::randn({24})}};
  std::vector<torch::jit::IValue> inputs = {at::randn({2, 5, 16})};
  for (const EltwiseCase& c : EltwiseCases()) {
    auto module = MakeModule(
        "def forward(self, x):\n"
        "  y = torch.linear(x, self.w, self.b)\n"
        "  return " +
            c.source + "\n",
        params);
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = LowerToOneDnn(graph, {});
    EXPECT_EQ(Count(report, "linear+" + c.pattern), 1) << c.source << "\n" << *graph;
    FileCheck().check("ipt::linear")->check_not("aten::linear")->check_not(c.aten)->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.source;
  }
}

TEST(LowerToOneDnnTest, AddFusesAsSumWithTheAccumulatorOnEitherSide) {
  at::manual_seed(3);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({4, 4, 3, 3}) * 0.3},
                                              {"lw", at::randn({9, 9}) * 0.3}};
  std::vector<torch::jit::IValue> inputs = {at::randn({1, 4, 9, 9})};
  for (const char* expression :
       {"torch.relu(y + x)", "torch.relu(x + y)", "torch.relu(torch.add(y, x))", "y + x"}) {
    auto module = MakeModule(std::string("def forward(self, x):\n") +
                                 "  y = torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1)\n"
                                 "  return " +
                                 expression + "\n",
                             params);
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = LowerToOneDnn(graph, {});
    const bool relu = std::string(expression).find("relu") != std::string::npos;
    EXPECT_EQ(Count(report, relu ? "conv+add+relu" : "conv+add"), 1) << expression;
    FileCheck().check("ipt::conv2d_sum")->check_not("aten::add")->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << expression;
  }
  // The same for linear, including an accumulator computed after the linear.
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.linear(x, self.lw, None)\n"
      "  z = x * 2.0\n"
      "  return torch.relu(z + y)\n",
      params);
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  EXPECT_EQ(Count(LowerToOneDnn(graph, {}), "linear+add+relu"), 1) << *graph;
  FileCheck().check("ipt::linear_sum")->check_not("aten::add")->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

TEST(LowerToOneDnnTest, AnAccumulatorThatDiesAtItsAddIsAddedIntoInPlace) {
  at::manual_seed(5);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({8, 8, 3, 3}) * 0.3},
                                              {"v", at::randn({8, 8, 1, 1}) * 0.3}};
  std::vector<torch::jit::IValue> inputs = {at::randn({1, 8, 9, 9})};
  struct Case {
    std::string body;
    int64_t in_place;
  };
  for (const Case& c : {
           // A residual block: y feeds the next conv and then dies at the add.
           Case{"  y = torch.conv2d(x, self.v, None, [1, 1], [0, 0], [1, 1], 1)\n"
                "  z = torch.relu(torch.conv2d(y, self.w, None, [1, 1], [1, 1], [1, 1], 1))\n"
                "  z = torch.conv2d(z, self.w, None, [1, 1], [1, 1], [1, 1], 1)\n"
                "  return torch.relu(z + y)\n",
                1},
           // y is still needed after the add.
           Case{"  y = torch.conv2d(x, self.v, None, [1, 1], [0, 0], [1, 1], 1)\n"
                "  z = torch.conv2d(y, self.w, None, [1, 1], [1, 1], [1, 1], 1) + y\n"
                "  return z * y\n",
                0},
           // A view of y taken before the add and read after it.
           Case{"  y = torch.conv2d(x, self.v, None, [1, 1], [0, 0], [1, 1], 1)\n"
                "  f = y.view([-1])\n"
                "  z = torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1) + y\n"
                "  return z * f.view([1, 8, 9, 9])\n",
                0},
           // The accumulator is the graph's input: not ours to overwrite.
           Case{"  return torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1) + x\n", 0},
       }) {
    auto module = MakeModule("def forward(self, x):\n" + c.body, params);
    at::Tensor x_before = inputs[0].toTensor().clone();
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    LowerToOneDnn(graph, {});
    EXPECT_EQ(AccumulateInPlace(graph), c.in_place) << c.body << *graph;
    FileCheck().check_count("ipt::conv2d_sum_", c.in_place, /*exactly=*/true)->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.body;
    EXPECT_TRUE(at::equal(inputs[0].toTensor(), x_before)) << c.body;
  }
}

TEST(LowerToOneDnnTest, CandidatesThatCannotFuseAreReportedWithTheReason) {
  at::manual_seed(4);
  std::map<std::string, at::Tensor> params = {{"w", at::randn({4, 4, 3, 3}) * 0.3}};
  std::vector<torch::jit::IValue> inputs = {at::randn({1, 4, 6, 6})};
  struct Case {
    std::string body;
    std::string pattern;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"  return torch.relu(y) + y\n", "conv+eltwise", "2 uses"},
           {"  return torch.add(y, x, alpha=2)\n", "conv+add", "alpha"},
           {"  return torch.leaky_relu(y, float(x.size(0)))\n", "conv+eltwise", "non-constant"},
       }) {
    auto module = MakeModule(
        "def forward(self, x):\n  y = torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1)\n" +
            c.body,
        params);
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    FusionReport report = LowerToOneDnn(frozen.get_method("forward").graph(), {});
    EXPECT_EQ(Count(report, "conv"), 1) << c.body;  // lowered, nothing fused
    bool found = false;
    for (const NotFused& n : report.not_fused)
      found |= n.pattern == c.pattern && n.reason.find(c.reason) != std::string::npos;
    EXPECT_TRUE(found) << c.body;
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.body;
  }
}

TEST(LowerToOneDnnTest, AWriteBetweenTheConvAndItsPostOpKeepsThemApart) {
  std::map<std::string, at::Tensor> params = {{"w", at::randn({4, 4, 3, 3})}};
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.conv2d(x, self.w, None, [1, 1], [1, 1], [1, 1], 1)\n"
      "  x.mul_(2.0)\n"
      "  return torch.relu(y) + x\n",
      params);
  // The module mutates its input: each run gets a fresh copy.
  at::Tensor x = at::randn({1, 4, 6, 6});
  at::Tensor expected = Forward(module, {x.clone()});
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = LowerToOneDnn(graph, {});
  EXPECT_EQ(Count(report, "conv"), 1);
  EXPECT_EQ(Count(report, "conv+relu"), 0);
  FileCheck().check("ipt::conv2d")->check("aten::mul_")->check("aten::relu")->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, {x.clone()})), 1e-5);
}

TEST(LowerToOneDnnTest, AViewAfterChannelsLastConvsStillWorks) {
  std::map<std::string, at::Tensor> params = {{"w", at::randn({6, 3, 5, 5})}};
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.relu(torch.conv2d(x, self.w, None, [1, 1], [0, 0], [1, 1], 1))\n"
      "  return y.view([-1, 6 * 8 * 8])\n",
      params);
  std::vector<torch::jit::IValue> inputs = {at::randn({2, 3, 12, 12})};
  at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  LowerToOneDnn(frozen.get_method("forward").graph(), {});
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

TEST(LowerToOneDnnTest, OptionsSwitchEachFusionOff) {
  std::map<std::string, at::Tensor> params = {{"w", at::randn({4, 4, 1, 1})}};
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.conv2d(x, self.w, None, [1, 1], [0, 0], [1, 1], 1)\n"
      "  return torch.relu(y + x)\n",
      params);
  std::vector<torch::jit::IValue> inputs = {at::randn({1, 4, 5, 5})};
  at::Tensor expected = Forward(module, inputs);
  struct Case {
    LoweringOptions options;
    std::string pattern;
  };
  LoweringOptions no_add, no_eltwise, neither, no_conv;
  no_add.conv_add = false;
  no_eltwise.conv_eltwise = false;
  neither.conv_add = neither.conv_eltwise = false;
  no_conv.conv = false;
  for (const auto& [options, pattern] : std::vector<Case>{
           {no_add, "conv"}, {no_eltwise, "conv+add"}, {neither, "conv"}, {no_conv, ""}}) {
    auto frozen = Freeze(module);
    FusionReport report = LowerToOneDnn(frozen.get_method("forward").graph(), options);
    if (pattern.empty()) {
      EXPECT_TRUE(report.fused.empty());
    } else {
      EXPECT_EQ(Count(report, pattern), 1) << pattern;
    }
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << pattern;
  }
}

}  // namespace
}  // namespace ipt::core::passes
