#include "core/optimize.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include <functional>
#include <sstream>

#include "base/error.h"
#include "kernels/blocked.h"
#include "tests/core/test_models.h"
#include "workloads/bert.h"
#include "workloads/dlrm.h"
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
  recipe.optimize.weight_prepack = false;
  OptimizedModel model = Optimize(*module_, recipe);
  EXPECT_EQ(model.applied().op_counts.count("aten::batch_norm"), 0u);
  EXPECT_EQ(model.applied().op_counts.at("aten::conv2d"), 53);
  EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-4);
}

TEST_F(OptimizeResNetTest, WithoutFoldingBatchNormsStay) {
  recipes::Recipe recipe;
  recipe.optimize.optimize_for_inference = false;
  recipe.optimize.weight_prepack = false;
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
  EXPECT_GE(Cosine(*reference_, out), 0.999);
}

TEST_F(OptimizeResNetTest, DefaultRecipeRunsEveryConvOnFusedOneDnnKernels) {
  OptimizedModel model = Optimize(*module_, recipes::Recipe{});
  const Applied& applied = model.applied();
  EXPECT_EQ(applied.fusions.fused.at("conv+relu"), 33);
  EXPECT_EQ(applied.fusions.fused.at("conv+add+relu"), 16);
  EXPECT_EQ(applied.fusions.fused.at("conv"), 4);  // the downsample projections
  EXPECT_EQ(applied.op_counts.count("aten::conv2d"), 0u);
  EXPECT_EQ(applied.op_counts.count("aten::batch_norm"), 0u);
  EXPECT_EQ(applied.op_counts.at("ipt::conv2d"), 37);
  // Every residual dies at its add, which then adds into it in place.
  EXPECT_EQ(applied.op_counts.count("ipt::conv2d_sum"), 0u);
  EXPECT_EQ(applied.op_counts.at("ipt::conv2d_sum_"), 16);
  EXPECT_EQ(applied.op_counts.at("ipt::linear"), 1);
  // memory_format auto: blocked activations where the CPU has no AVX-512.
  const bool blocked = kernels::PreferredChannelBlock() == 8;
  EXPECT_EQ(applied.op_counts.count("ipt::blocked_max_pool2d"), blocked ? 1u : 0u);
  EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-4);
  nlohmann::json json = applied.ToJson();
  EXPECT_EQ(json["fusions"]["conv+add+relu"], 16);
  EXPECT_TRUE(json["not_fused"].is_array());
}

TEST_F(OptimizeResNetTest, SwitchingAnySinglePassOffStaysCorrect) {
  std::vector<std::pair<std::string, std::function<void(recipes::Optimize&)>>> switches = {
      {"fold_conv_bn", [](recipes::Optimize& o) { o.fold_conv_bn = false; }},
      {"weight_prepack", [](recipes::Optimize& o) { o.weight_prepack = false; }},
      {"optimize_for_inference", [](recipes::Optimize& o) { o.optimize_for_inference = false; }},
      {"memory_format: contiguous",
       [](recipes::Optimize& o) { o.memory_format = recipes::MemoryFormat::kContiguous; }},
      {"memory_format: channels_last",
       [](recipes::Optimize& o) { o.memory_format = recipes::MemoryFormat::kChannelsLast; }},
  };
  for (const std::string& fusion : recipes::Recipe{}.optimize.fusions) {
    switches.push_back({fusion, [fusion](recipes::Optimize& o) {
                          o.fusions.erase(std::find(o.fusions.begin(), o.fusions.end(), fusion));
                        }});
  }
  for (const auto& [name, off] : switches) {
    recipes::Recipe recipe;
    off(recipe.optimize);
    OptimizedModel model = Optimize(*module_, recipe);
    EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-4) << name << " off";
  }
}

TEST_F(OptimizeResNetTest, BlockedLayoutKeepsEveryActivationBlockedFromStemToHead) {
  recipes::Recipe recipe;
  recipe.optimize.memory_format = recipes::MemoryFormat::kBlocked;
  OptimizedModel model = Optimize(*module_, recipe);
  const Applied& applied = model.applied();
  bool changed = false;
  for (const PassResult& pass : applied.passes)
    changed |= pass.name == "blocked_layout" && pass.changed;
  EXPECT_TRUE(changed);
  EXPECT_EQ(applied.op_counts.at("ipt::blocked_max_pool2d"), 1);
  // The image goes into the stem plain; the last block's output comes back plain, once.
  EXPECT_EQ(applied.op_counts.count("ipt::to_blocked"), 0u);
  EXPECT_EQ(applied.op_counts.at("ipt::from_blocked"), 1);
  EXPECT_LE(RelativeL2(*reference_, model.Run(*inputs_).toTensor()), 1e-4);

  recipes::Recipe channels_last;
  channels_last.optimize.memory_format = recipes::MemoryFormat::kChannelsLast;
  EXPECT_EQ(Optimize(*module_, channels_last).applied().op_counts.count("ipt::from_blocked"), 0u);
}

TEST_F(OptimizeResNetTest, SavedOptimisedModelLoadsAndGivesTheSameResults) {
  OptimizedModel model = Optimize(*module_, recipes::Recipe{});
  at::Tensor before = model.Run(*inputs_).toTensor();
  std::stringstream stream;
  model.module().save(stream);
  torch::jit::Module loaded = torch::jit::load(stream);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(before, loaded.forward(*inputs_).toTensor()));
}

TEST_F(OptimizeResNetTest, KnobsNotAppliedAreReportedAsFallbacks) {
  recipes::Recipe recipe;
  recipe.optimize.weight_prepack = false;
  recipe.optimize.memory_format = recipes::MemoryFormat::kChannelsLast;
  OptimizedModel model = Optimize(*module_, recipe);
  bool memory_format = false;
  for (const Fallback& f : model.applied().fallbacks)
    memory_format |= f.what == "optimize.memory_format";
  EXPECT_TRUE(memory_format);
  bool fusions = false;
  for (const Fallback& f : model.applied().fallbacks)
    fusions |= f.what == "optimize.fusions: conv_eltwise";
  EXPECT_TRUE(fusions);
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

TEST_F(OptimizeResNetTest, ResultsStayCorrectWhenThreadCountChangesBetweenCalls) {
  OptimizedModel model = Optimize(*module_, recipes::Recipe{});
  SetThreads(2);
  at::Tensor two = model.Run(*inputs_).toTensor();
  SetThreads(1);
  at::Tensor one = model.Run(*inputs_).toTensor();
  EXPECT_LE(RelativeL2(two, one), 1e-5);
  SetThreads(2);
  EXPECT_LE(RelativeL2(two, model.Run(*inputs_).toTensor()), 1e-5);
  EXPECT_THROW(SetThreads(0), Error);
}

}  // namespace
}  // namespace ipt::core

namespace ipt::core {
namespace {

using testing::TwoLayerBert;

workloads::WorkloadOptions SeqLen(int64_t seq_len) {
  workloads::WorkloadOptions options;
  options.seq_len = seq_len;
  return options;
}

int64_t Fused(const Applied& applied, const std::string& pattern) {
  auto it = applied.fusions.fused.find(pattern);
  return it == applied.fusions.fused.end() ? 0 : it->second;
}

TEST(OptimizeBertTest, EveryTransformerPatternIsFusedAndMatchesTheReference) {
  auto workload = workloads::MakeBert(TwoLayerBert(), SeqLen(64));
  torch::jit::Module module = workload->BuildModel();
  auto inputs = workload->MakeInputs(3, 0);
  at::Tensor reference = Eval(module, inputs);
  OptimizedModel model = Optimize(module, recipes::Recipe{});
  const Applied& applied = model.applied();
  EXPECT_EQ(Fused(applied, "qkv_merge"), 2);
  EXPECT_EQ(Fused(applied, "attention"), 2);
  EXPECT_EQ(Fused(applied, "add+layer_norm"), 5);  // 2 per layer, 1 in the embeddings
  EXPECT_EQ(Fused(applied, "linear+gelu"), 2);
  EXPECT_EQ(Fused(applied, "linear+tanh"), 1);  // the pooler
  EXPECT_EQ(applied.op_counts.count("aten::linear"), 0u);
  EXPECT_EQ(applied.op_counts.count("aten::softmax"), 0u);
  EXPECT_EQ(applied.op_counts.count("aten::layer_norm"), 0u);
  EXPECT_LE(RelativeL2(reference, model.Run(inputs).toTensor()), 1e-4);
}

TEST(OptimizeBertTest, EverySequenceLengthStaysCorrectWithoutReoptimising) {
  auto workload = workloads::MakeBert(TwoLayerBert(), SeqLen(384));
  torch::jit::Module module = workload->BuildModel();
  OptimizedModel model = Optimize(module, recipes::Recipe{});
  for (int64_t seq_len : {32, 384, 77, 128, 33}) {
    auto inputs = workloads::MakeBert(TwoLayerBert(), SeqLen(seq_len))->MakeInputs(2, 1);
    EXPECT_LE(RelativeL2(Eval(module, inputs), model.Run(inputs).toTensor()), 1e-4) << seq_len;
  }
}

TEST(OptimizeBertTest, SwitchingAnySinglePassOffStaysCorrectAndBf16Agrees) {
  auto workload = workloads::MakeBert(TwoLayerBert(), SeqLen(32));
  torch::jit::Module module = workload->BuildModel();
  auto inputs = workload->MakeInputs(2, 0);
  at::Tensor reference = Eval(module, inputs);
  for (const std::string& fusion : recipes::Recipe{}.optimize.fusions) {
    recipes::Recipe recipe;
    auto& f = recipe.optimize.fusions;
    f.erase(std::find(f.begin(), f.end(), fusion));
    EXPECT_LE(RelativeL2(reference, Optimize(module, recipe).Run(inputs).toTensor()), 1e-4)
        << fusion << " off";
  }
  recipes::Recipe bf16;
  bf16.precision.dtype = recipes::Dtype::kBf16;
  EXPECT_GE(Cosine(reference, Optimize(module, bf16).Run(inputs).toTensor()), 0.999);
}

// libtorch 1.13 has no bf16 CPU kernel for prod (and mish, 3-D pools, reflection pads...): a
// bf16 model computes such ops in fp32, and the aten kinds a recipe's fallback names too.
TEST(OptimizeBf16Test, OpsWithoutBf16KernelsAndTheRecipesFallbackRunInFp32) {
  torch::jit::Module m("ProdSoftmaxNet");
  at::manual_seed(21);
  m.register_parameter("w1", at::randn({16, 8}) * 0.3, false);
  m.register_parameter("w2", at::randn({4, 16}) * 0.3, false);
  m.define(R"(
def forward(self, x):
    h = torch.linear(x, self.w1)
    p = torch.prod(torch.sigmoid(h) + 0.5, 1, True)
    return torch.softmax(torch.linear(h, self.w2) * p, -1)
)");
  m.eval();
  const at::Tensor x = at::randn({8, 8});
  torch::NoGradGuard no_grad;
  const at::Tensor reference = m.forward({x}).toTensor();
  EXPECT_THROW(at::prod(x.to(at::kBFloat16), 1, true), c10::Error) << "prod has no bf16 kernel";
  EXPECT_THROW(at::mish(x.to(at::kBFloat16)), c10::Error) << "mish neither";
  EXPECT_THROW(at::cdist(x.to(at::kBFloat16), x.to(at::kBFloat16)), c10::Error) << "cdist neither";

  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kBf16;
  recipe.precision.fallback = {"aten::softmax"};
  OptimizedModel model = Optimize(m, recipe);
  const at::Tensor out = model.Run({x}).toTensor();
  EXPECT_GT(at::cosine_similarity(out.flatten(), reference.flatten(), 0).item<double>(), 0.999);
  EXPECT_EQ(model.applied().op_counts.at("ipt::floating_to"), 4) << "in and out of each";
  std::map<std::string, std::string> fallbacks;
  for (const Fallback& f : model.applied().fallbacks) fallbacks[f.what] = f.reason;
  EXPECT_NE(fallbacks["aten::prod (1 ops)"].find("no bf16 CPU kernel"), std::string::npos);
  EXPECT_NE(fallbacks["aten::softmax (1 ops)"].find("precision.fallback"), std::string::npos);

  // The message of the error a fallback list gets, or "accepted".
  auto refusal = [&](const std::string& entry) -> std::string {
    recipe.precision.fallback = {entry};
    try {
      Optimize(m, recipe);
    } catch (const Error& e) {
      return e.what();
    }
    return "accepted";
  };
  const std::string int8_name = refusal("linear.0");
  EXPECT_NE(int8_name.find("'linear.0' is not an aten op kind"), std::string::npos) << int8_name;
  const std::string absent = refusal("aten::layer_norm");
  EXPECT_NE(absent.find("no aten::layer_norm is left"), std::string::npos) << absent;
}

// What torch.jit.trace records for a convolution: aten::_convolution, not aten::conv2d.
TEST(OptimizeTracedTest, TracedConvolutionsAreFoldedAndLoweredLikeScriptedOnes) {
  torch::jit::Module m("Traced");
  at::manual_seed(4);
  m.register_parameter("w", at::randn({8, 3, 3, 3}) * 0.3, false);
  m.register_parameter("b", at::randn({8}), false);
  m.define(R"(
def forward(self, x):
  y = torch._convolution(x, self.w, self.b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, False,
                         False, True, True)
  return torch.relu(y)
)");
  m.eval();
  const at::Tensor x = at::randn({2, 3, 9, 9});
  const at::Tensor reference = m.forward({x}).toTensor();
  OptimizedModel optimized = Optimize(m, recipes::Recipe{});
  EXPECT_EQ(optimized.applied().op_counts.count("aten::_convolution"), 0u);
  EXPECT_EQ(optimized.applied().op_counts.at("ipt::conv2d"), 1);
  const at::Tensor out = optimized.Run({x}).toTensor();
  EXPECT_LT((out - reference).norm().item<double>() / reference.norm().item<double>(), 1e-5);
}

TEST(OptimizeDlrmTest, MatchesTheReference) {
  workloads::DlrmConfig config;
  config.table_rows = std::vector<int64_t>(26, 100);
  auto workload = workloads::MakeDlrm(config, {});
  torch::jit::Module module = workload->BuildModel();
  auto inputs = workload->MakeInputs(64, 0);
  at::Tensor reference = Eval(module, inputs);
  OptimizedModel model = Optimize(module, recipes::Recipe{});
  EXPECT_EQ(Fused(model.applied(), "interaction"), 1);
  EXPECT_EQ(Fused(model.applied(), "merged_embedding_bag"), 1);
  EXPECT_EQ(Fused(model.applied(), "linear+relu"), 7);  // 3 bottom, 4 top
  EXPECT_EQ(Fused(model.applied(), "linear+sigmoid"), 1);
  EXPECT_EQ(model.applied().op_counts.count("aten::embedding_bag"), 0u);
  EXPECT_EQ(model.applied().op_counts.count("aten::bmm"), 0u);
  EXPECT_LE(RelativeL2(reference, model.Run(inputs).toTensor()), 1e-4);
  for (const char* fusion : {"interaction", "merge_embedding_bags"}) {
    recipes::Recipe recipe;
    auto& f = recipe.optimize.fusions;
    f.erase(std::find(f.begin(), f.end(), fusion));
    EXPECT_LE(RelativeL2(reference, Optimize(module, recipe).Run(inputs).toTensor()), 1e-4)
        << fusion << " off";
  }
  recipes::Recipe bf16;
  bf16.precision.dtype = recipes::Dtype::kBf16;
  EXPECT_GE(Cosine(reference, Optimize(module, bf16).Run(inputs).toTensor()), 0.999);
}

// A model with a method of its own beside forward, as @torch.jit.export makes in Python: a
// service calling `features` must get the same folding and fusion as forward (other CPU
// extensions optimise forward only and leave the rest unfolded, or drop it when freezing).
class OptimizeMethodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(5);
    module_.register_parameter("w", at::randn({8, 3, 3, 3}) * 0.3, false);
    module_.register_parameter("b", at::randn({8}), false);
    module_.register_buffer("bn_weight", at::rand({8}) + 0.5);
    module_.register_buffer("bn_bias", at::randn({8}));
    module_.register_buffer("bn_mean", at::randn({8}) * 0.1);
    module_.register_buffer("bn_var", at::rand({8}) + 0.5);
    module_.register_parameter("fc_w", at::randn({4, 8}) * 0.3, false);
    module_.register_parameter("fc_b", at::randn({4}), false);
    module_.define(R"(
def features(self, x):
  y = torch.conv2d(x, self.w, self.b, [1, 1], [1, 1])
  y = torch.batch_norm(y, self.bn_weight, self.bn_bias, self.bn_mean, self.bn_var, False, 0.1,
                       1e-5, True)
  return torch.relu(y)

def forward(self, x):
  return torch.linear(self.features(x).mean([2, 3]), self.fc_w, self.fc_b)
)");
    module_.eval();
  }

  at::Tensor Reference(const std::string& method) {
    torch::NoGradGuard no_grad;
    return module_.clone().get_method(method)({x_}).toTensor();
  }

  torch::jit::Module module_{"TwoMethods"};
  at::Tensor x_ = at::randn({2, 3, 9, 9});
};

TEST_F(OptimizeMethodsTest, EveryMethodIsFoldedFusedAndMatchesTheReference) {
  OptimizedModel model = Optimize(module_, recipes::Recipe{});
  EXPECT_EQ(model.applied().methods, (std::vector<std::string>{"forward", "features"}));
  torch::jit::testing::FileCheck()
      .check_not("aten::batch_norm")
      ->check("ipt::conv2d")
      ->check_not("aten::relu")
      ->run(*model.module().get_method("features").graph());
  EXPECT_LE(RelativeL2(Reference("features"), model.RunMethod("features", {x_}).toTensor()), 1e-4);
  EXPECT_LE(RelativeL2(Reference("forward"), model.Run({x_}).toTensor()), 1e-4);

  recipes::Recipe bf16;
  bf16.precision.dtype = recipes::Dtype::kBf16;
  OptimizedModel bf16_model = Optimize(module_, bf16);
  EXPECT_GE(Cosine(Reference("features"), bf16_model.RunMethod("features", {x_}).toTensor()),
            0.999);

  recipes::Recipe stock = StockRecipe();
  EXPECT_LE(RelativeL2(Reference("features"),
                       Optimize(module_, stock).RunMethod("features", {x_}).toTensor()),
            1e-4);
}

TEST_F(OptimizeMethodsTest, Int8SaysOtherMethodsStayFp32AndUnknownMethodsAreNamed) {
  recipes::Recipe dynamic;
  dynamic.precision.dtype = recipes::Dtype::kInt8Dynamic;
  OptimizedModel model = Optimize(module_, dynamic);
  const auto& fallbacks = model.applied().fallbacks;
  EXPECT_TRUE(std::any_of(fallbacks.begin(), fallbacks.end(),
                          [](const Fallback& f) { return f.what == "method features"; }));
  EXPECT_LE(RelativeL2(Reference("features"), model.RunMethod("features", {x_}).toTensor()), 1e-4);
  try {
    model.RunMethod("encode", {x_});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("forward, features"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipt::core
