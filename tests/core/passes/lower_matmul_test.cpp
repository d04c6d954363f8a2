#include "core/passes/lower_matmul.h"

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

TEST(ParseEinsumProductTest, MatrixProductsAndTheirTransposesOnly) {
  struct Case {
    const char* equation;
    bool product, transpose_a, transpose_b;
  };
  for (const Case& c : std::vector<Case>{
           {"ij,jk->ik", true, false, false},
           {"bij,bjk->bik", true, false, false},
           {"bqd,bkd->bqk", true, false, true},
           {"bji,bjk->bik", true, true, false},
           {"bji,bkj->bik", true, true, true},
           {"b h q d, b h k d -> b h q k", true, false, true},
           {"...ij,...jk->...ik", true, false, false},
           {"ij->ji", false, false, false},
           {"ij,jk", false, false, false},
           {"ii,ij->ij", false, false, false},
           {"bij,bjk->bki", false, false, false},
           {"bij,jk->bik", false, false, false},
           {"bij,cjk->bik", false, false, false},
           {"ij,jk,kl->il", false, false, false},
           {"ij,ij->ij", false, false, false},
           {"...ij,jk->...ik", false, false, false},
       }) {
    auto product = ParseEinsumProduct(c.equation);
    ASSERT_EQ(product.has_value(), c.product) << c.equation;
    if (!product) continue;
    EXPECT_EQ(product->transpose_a, c.transpose_a) << c.equation;
    EXPECT_EQ(product->transpose_b, c.transpose_b) << c.equation;
  }
}

struct LoweringCase {
  std::string body;     // returns the result from inputs x, y and parameter c
  std::string pattern;  // what the report must count once
  std::vector<int64_t> x, y;
};

TEST(LowerMatmulTest, EveryProductWithItsAddBecomesOneOpAndMatchesAten) {
  at::manual_seed(2);
  const std::map<std::string, at::Tensor> params = {{"c", at::randn({6})}};
  for (const LoweringCase& c : std::vector<LoweringCase>{
           {"torch.matmul(x, y)", "matmul", {5, 4}, {4, 6}},
           {"torch.matmul(x, y) + self.c", "matmul+add", {2, 3, 5, 4}, {4, 6}},
           {"self.c + torch.bmm(x, y)", "bmm+add", {3, 5, 4}, {3, 4, 6}},
           {"torch.bmm(x, y) + torch.bmm(x, y)", "bmm", {3, 5, 4}, {3, 4, 6}},
           {"torch.einsum('bij,bjk->bik', [x, y])", "einsum", {3, 5, 4}, {3, 4, 6}},
           {"torch.einsum('bqd,bkd->bqk', [x, y]) + self.c", "einsum+add", {3, 5, 4}, {3, 6, 4}},
           {"torch.einsum('bdq,bkd->bqk', [x, y]) + self.c", "einsum+add", {3, 4, 5}, {3, 6, 4}},
       }) {
    auto module = MakeModule("def forward(self, x, y):\n  return " + c.body + "\n", params);
    const std::vector<torch::jit::IValue> inputs = {at::randn(c.x), at::randn(c.y)};
    const at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = LowerMatmul(graph, /*fuse_add=*/true);
    EXPECT_GE(report.fused[c.pattern], 1) << c.body;
    FileCheck()
        .check("ipt::matmul")
        ->check_not("aten::matmul")
        ->check_not("aten::bmm")
        ->check_not("aten::einsum")
        ->run(*graph);
    if (c.pattern.find("+add") != std::string::npos)
      FileCheck().check_not("aten::add")->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.body;
  }
}

TEST(LowerMatmulTest, AddsThatCannotBeFoldedStayAndSayWhy) {
  at::manual_seed(3);
  const std::map<std::string, at::Tensor> params = {{"c", at::randn({6})}};
  struct Case {
    std::string body, reason;
  };
  for (const Case& c : std::vector<Case>{
           {"torch.add(torch.matmul(x, y), self.c, alpha=2)", "alpha"},
           {"torch.matmul(x, y) + 1.5", "number"},
       }) {
    auto module = MakeModule("def forward(self, x, y):\n  return " + c.body + "\n", params);
    const std::vector<torch::jit::IValue> inputs = {at::randn({5, 4}), at::randn({4, 6})};
    const at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    FusionReport report = LowerMatmul(graph, true);
    EXPECT_EQ(report.fused["matmul"], 1) << c.body;
    ASSERT_EQ(report.not_fused.size(), 1u) << c.body;
    EXPECT_EQ(report.not_fused[0].pattern, "matmul+add");
    EXPECT_NE(report.not_fused[0].reason.find(c.reason), std::string::npos)
        << report.not_fused[0].reason;
    FileCheck().check("ipt::matmul")->check("aten::add")->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.body;
  }
}

TEST(LowerMatmulTest, EinsumsThatAreNotProductsStayAndFuseAddOffKeepsTheAdd) {
  at::manual_seed(4);
  auto module = MakeModule(
      "def forward(self, x, y):\n"
      "  z = torch.einsum('bij,bij->bij', [x, x])\n"
      "  return torch.bmm(z, y) + self.c\n",
      {{"c", at::randn({6})}});
  const std::vector<torch::jit::IValue> inputs = {at::randn({3, 5, 4}), at::randn({3, 4, 6})};
  const at::Tensor expected = Forward(module, inputs);
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  FusionReport report = LowerMatmul(graph, /*fuse_add=*/false);
  EXPECT_EQ(report.fused["bmm"], 1);
  EXPECT_EQ(report.fused.count("bmm+add"), 0u);
  ASSERT_EQ(report.not_fused.size(), 1u);
  EXPECT_EQ(report.not_fused[0].pattern, "einsum");
  EXPECT_NE(report.not_fused[0].reason.find("'bij,bij->bij' is not a (batched) matrix product"),
            std::string::npos);
  FileCheck().check("aten::einsum")->check("ipt::matmul")->check("aten::add")->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

}  // namespace
}  // namespace ipt::core::passes
