#include "core/optimize.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "workloads/workload.h"

namespace ipt::core {
namespace {

at::Tensor Eval(const torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  torch::jit::Module copy = m.clone();
  return copy.forward(inputs).toTensor();
}

double RelativeL2(const at::Tensor& ref, const at::Tensor& got) {
  return ((ref - got).norm() / ref.norm()).item<double>();
}

double Cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.flatten(), b.flatten(), 0).item<double>();
}

class OptimizeResNetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    workload_ = workloads::MakeWorkload("resnet50", {}).release();
    module_ = new torch::jit::Module(workload_->BuildModel());
    inputs_ = new std::vector<torch::jit::IValue>(workload_->MakeInputs(1, 0));
    reference_ = new at::Tensor(Eval(*module_, *inputs_));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete inputs_;
    delete module_;
    delete workload_;
  }
  static workloads::Workload* workload_;
  static torch::jit::Module* module_;
  static std::vector<torch::jit::IValue>* inputs_;
  static at::Tensor* reference_;
};
workloads::Workload* OptimizeResNetTest::workload_ = nullptr;
torch::jit::Module* OptimizeResNetTest::module_ = nullptr;
std::vector<torch::jit::IValue>* OptimizeResNetTest::inputs_ = nullptr;
at::Tensor* OptimizeResNetTest::reference_ = nullptr;

TEST_F(OptimizeResNetTest, StockFp32MatchesEagerAndFoldsEveryBatchNorm) {
  OptimizedModel model = Optimize(*module_, StockRecipe());
  at::Tensor out = model.Run(*inputs_).toTensor();
  EXPECT_LE(RelativeL2(*reference_, out), 1e-4);
  EXPECT_EQ(model.applied().op_counts.count("aten::batch_norm"), 0u);
  EXPECT_EQ(model.applied().dtype, "fp32");
  // optimize_for_inference is reported as run, and changed the graph.
  bool ofi = false;
  for (const PassResult& p : model.applied().passes)
    ofi |= p.name == "optimize_for_inference" && p.changed;
  EXPECT_TRUE(ofi);
}

TEST_F(OptimizeResNetTest, FoldingAloneRemovesBatchNormsAndKeepsNumerics) {
  recipes::Recipe recipe;
  recipe.optimize.optimize_for_inference = false;
  OptimizedModel model = Optimize(*module_, recipe);
  EXPECT_EQ(model.applied().op_counts.count("aten::batch_norm"), 0u);
  EXPECT_EQ(model.applied().op_counts.at("aten::conv2d"), 53);
  EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-4);
}

TEST_F(OptimizeResNetTest, WithoutFoldingBatchNormsStay) {
  recipes::Recipe recipe;
  recipe.optimize.optimize_for_inference = false;
  recipe.optimize.fold_conv_bn = false;
  OptimizedModel model = Optimize(*module_, recipe);
  EXPECT_EQ(model.applied().op_counts.at("aten::batch_norm"), 53);
  EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-5);
}

TEST_F(OptimizeResNetTest, Bf16RunsInBf16AndAgreesWithFp32) {
  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kBf16;
  OptimizedModel model = Optimize(*module_, recipe);
  at::Tensor out = model.Run(*inputs_).toTensor();
  EXPECT_EQ(out.scalar_type(), at::kFloat);  // callers always get fp32 back
  EXPECT_EQ(model.applied().dtype, "bf16");
  EXPECT_GE(Cosine(*reference_, out), 0.99);
}

TEST_F(OptimizeResNetTest, KnobsNotAppliedAreReportedAsFallbacks) {
  recipes::Recipe recipe;
  recipe.optimize.optimize_for_inference = false;
  recipe.optimize.memory_format = recipes::MemoryFormat::kChannelsLast;
  OptimizedModel model = Optimize(*module_, recipe);
  bool memory_format = false;
  for (const Fallback& f : model.applied().fallbacks)
    memory_format |= f.what == "optimize.memory_format";
  EXPECT_TRUE(memory_format);
  // Stock asks only for what libtorch does, so nothing of it falls back.
  EXPECT_TRUE(Optimize(*module_, StockRecipe()).applied().fallbacks.empty());
}

TEST_F(OptimizeResNetTest, UnknownFusionIsAnErrorNamingTheKey) {
  recipes::Recipe recipe;
  recipe.optimize.fusions = {"conv_relu_magic"};
  try {
    Optimize(*module_, recipe);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("optimize.fusions"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("conv_relu_magic"), std::string::npos) << e.what();
  }
}

TEST_F(OptimizeResNetTest, Int8IsRefusedUntilTheCoreHasIt) {
  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kInt8;
  try {
    Optimize(*module_, recipe);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

TEST_F(OptimizeResNetTest, ResultsStayCorrectWhenThreadCountChangesBetweenCalls) {
  OptimizedModel model = Optimize(*module_, StockRecipe());
  SetThreads(2);
  at::Tensor two = model.Run(*inputs_).toTensor();
  SetThreads(1);
  at::Tensor one = model.Run(*inputs_).toTensor();
  EXPECT_LE(RelativeL2(two, one), 1e-5);
  EXPECT_THROW(SetThreads(0), Error);
}

}  // namespace
}  // namespace ipt::core
