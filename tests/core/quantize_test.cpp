// INT8 through the whole core: calibration on a model's own calibration set, the rewrite onto
// the int8 oneDNN ops, saved parameters, fallbacks and dynamic quantization, checked against
// the fp32 model.
#include "core/quantize.h"

#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "base/error.h"
#include "core/calibration/observer.h"
#include "core/optimize.h"
#include "kernels/conv.h"
#include "kernels/linear.h"
#include "kernels/onednn_info.h"
#include "recipes/recipe_yaml.h"
#include "tests/core/test_models.h"
#include "workloads/bert.h"
#include "workloads/dlrm.h"
#include "workloads/workload.h"

namespace ipt::core {
namespace {

using testing::TwoLayerBert;

// A small residual conv net with a linear head: conv+relu, conv+add+relu, and a linear.
torch::jit::Module SmallConvNet() {
  torch::jit::Module m("SmallConvNet");
  at::manual_seed(11);
  m.register_parameter("w1", at::randn({16, 3, 3, 3}) * 0.3, false);
  m.register_parameter("b1", at::randn({16}) * 0.1, false);
  m.register_parameter("w2", at::randn({16, 16, 3, 3}) * 0.1, false);
  m.register_parameter("b2", at::randn({16}) * 0.1, false);
  m.register_parameter("fc_w", at::randn({10, 16}) * 0.3, false);
  m.register_parameter("fc_b", at::randn({10}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.w1, self.b1, 1, 1))
    z = torch.relu(torch.conv2d(y, self.w2, self.b2, 1, 1) + y)
    return torch.linear(torch.mean(z, [2, 3]), self.fc_w, self.fc_b)
)");
  m.eval();
  return m;
}

// conv+relu into conv+relu into conv: two results that only the next convolution reads.
torch::jit::Module ChainConvNet() {
  torch::jit::Module m("ChainConvNet");
  at::manual_seed(13);
  m.register_parameter("w1", at::randn({16, 3, 3, 3}) * 0.3, false);
  m.register_parameter("w2", at::randn({16, 16, 3, 3}) * 0.1, false);
  m.register_parameter("w3", at::randn({8, 16, 1, 1}) * 0.2, false);
  m.define(R"(
def forward(self, x):
    y = torch.relu(torch.conv2d(x, self.w1, None, 1, 1))
    z = torch.relu(torch.conv2d(y, self.w2, None, 1, 1))
    return torch.mean(torch.conv2d(z, self.w3), [2, 3])
)");
  m.eval();
  return m;
}

// ResNet's stem and two blocks: a conv+relu and a max pool, then a block with a downsample (its
// residual a convolution's own output, read by nothing else; its input, the pool's output, read
// by two convolutions), then one with an identity residual (the first block's output, read by a
// convolution before the add), whose result leaves the graph.
torch::jit::Module ResidualConvNet() {
  torch::jit::Module m("ResidualConvNet");
  at::manual_seed(14);
  m.register_parameter("w1", at::randn({16, 3, 3, 3}) * 0.3, false);
  m.register_parameter("w2", at::randn({16, 16, 1, 1}) * 0.2, false);
  m.register_parameter("w3", at::randn({16, 16, 3, 3}) * 0.1, false);
  m.register_parameter("w4", at::randn({16, 16, 1, 1}) * 0.2, false);
  m.register_parameter("w5", at::randn({16, 16, 3, 3}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    y = torch.max_pool2d(torch.relu(torch.conv2d(x, self.w1, None, 1, 1)), [3, 3], [2, 2], [1, 1])
    shortcut = torch.conv2d(y, self.w2)
    z = torch.relu(torch.conv2d(y, self.w3, None, 1, 1) + shortcut)
    a = torch.relu(torch.conv2d(z, self.w4))
    return torch.mean(torch.relu(torch.conv2d(a, self.w5, None, 1, 1) + z), [2, 3])
)");
  m.eval();
  return m;
}

// A max pool whose result an fp32 op reads besides a convolution.
torch::jit::Module PoolReadInFp32Net() {
  torch::jit::Module m("PoolReadInFp32Net");
  at::manual_seed(15);
  m.register_parameter("w1", at::randn({16, 3, 3, 3}) * 0.3, false);
  m.register_parameter("w2", at::randn({16, 16, 1, 1}) * 0.2, false);
  m.define(R"(
def forward(self, x):
    p = torch.max_pool2d(torch.relu(torch.conv2d(x, self.w1, None, 1, 1)), [2, 2])
    return torch.mean(torch.conv2d(p, self.w2), [2, 3]) + torch.mean(p, [2, 3])
)");
  m.eval();
  return m;
}

// DLRM's top MLP in small: a linear reads a layer's output (a few units) beside features a
// hundred times smaller, concatenated into one input, which move the outputs by a few per cent.
torch::jit::Module MixedScaleNet() {
  torch::jit::Module m("MixedScaleNet");
  at::manual_seed(16);
  m.register_parameter("w1", at::randn({16, 8}) * 0.5, false);
  m.register_parameter("b1", at::randn({16}) * 0.1, false);
  at::Tensor w2 = at::randn({32, 40}) * 0.2;
  w2.narrow(1, 16, 24).mul_(5);
  m.register_parameter("w2", w2, false);
  m.register_parameter("b2", at::randn({32}) * 0.01, false);
  m.register_parameter("w3", at::randn({4, 32}) * 0.2, false);
  m.define(R"(
def forward(self, dense, small):
    x = torch.cat([torch.relu(torch.linear(dense, self.w1, self.b1)), small * 0.01], 1)
    return torch.linear(torch.relu(torch.linear(x, self.w2, self.b2)), self.w3)
)");
  m.eval();
  return m;
}

std::vector<torch::jit::IValue> MixedInputs(int64_t batch, int64_t index) {
  at::Generator g = at::detail::createCPUGenerator(2000 + index);
  return {at::randn({batch, 8}, g) * 2, at::randn({batch, 24}, g)};
}

std::vector<torch::jit::IValue> Images(int64_t batch, int64_t index) {
  at::Generator g = at::detail::createCPUGenerator(1000 + index);
  return {at::randn({batch, 3, 12, 12}, g)};
}

at::Tensor Eval(const torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  torch::jit::Module copy = m.clone();
  return copy.forward(inputs).toTensor();
}

double Cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.flatten().to(at::kDouble), b.flatten().to(at::kDouble), 0)
      .item<double>();
}

recipes::Recipe Int8(const std::string& algorithm = "minmax", int64_t samples = 16) {
  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kInt8;
  recipe.precision.calibration = recipes::Calibration{algorithm, samples};
  return recipe;
}

// `recipe` saved as YAML to a file and loaded back.
recipes::Recipe ThroughYamlOnDisk(const recipes::Recipe& recipe) {
  auto path = std::filesystem::temp_directory_path() /
              ("ipt-quantize-test-" + std::to_string(::getpid()) + ".yaml");
  recipes::SaveRecipe(recipe, path.string());
  recipes::Recipe loaded = recipes::LoadRecipe(path.string());
  std::filesystem::remove(path);
  return loaded;
}

double RelativeL2(const at::Tensor& reference, const at::Tensor& got) {
  return ((reference - got).norm() / reference.norm()).item<double>();
}

int64_t Count(const Applied& applied, const std::string& kind) {
  auto it = applied.op_counts.find(kind);
  return it == applied.op_counts.end() ? 0 : it->second;
}

TEST(QuantizeTest, EveryCalibrationAlgorithmQuantizesEveryConvAndLinear) {
  torch::jit::Module module = SmallConvNet();
  auto inputs = Images(8, 99);
  at::Tensor reference = Eval(module, inputs);
  for (const std::string& algorithm : calibration::AlgorithmNames()) {
    OptimizedModel model = Optimize(module, Int8(algorithm), Images);
    const Applied& applied = model.applied();
    EXPECT_EQ(Count(applied, "ipt::qconv2d"), 1) << algorithm;
    EXPECT_EQ(Count(applied, "ipt::qconv2d_sum"), 1) << algorithm;
    EXPECT_EQ(Count(applied, "ipt::qlinear"), 1) << algorithm;
    EXPECT_EQ(Count(applied, "ipt::conv2d") + Count(applied, "ipt::linear"), 0) << algorithm;
    EXPECT_EQ(applied.quantized, (std::vector<std::string>{"conv2d.0", "conv2d.1", "linear.0"}));
    ASSERT_TRUE(applied.qparams.has_value());
    EXPECT_EQ(applied.qparams->inputs.size(), 3U);
    EXPECT_EQ(applied.qparams->accumulators.size(), 1U) << "the residual of conv2d.1";
    at::Tensor out = model.Run(inputs).toTensor();
    EXPECT_GT(Cosine(reference, out), 0.99) << algorithm;
    EXPECT_GT((out.argmax(1) == reference.argmax(1)).to(at::kFloat).mean().item<double>(), 0.7)
        << algorithm;
  }
}

TEST(QuantizeTest, SavedParametersReproduceTheCalibratedModelExactlyFromYamlOnDisk) {
  torch::jit::Module module = SmallConvNet();
  auto inputs = Images(4, 50);
  recipes::Recipe recipe = Int8("histogram");
  recipe.workload.name = "small-conv-net";
  OptimizedModel calibrated = Optimize(module, recipe, Images);
  recipe.precision.qparams = calibrated.applied().qparams;
  recipes::Recipe loaded = ThroughYamlOnDisk(recipe);
  // No calibration data: the parameters come from the file alone.
  OptimizedModel production = Optimize(module, loaded);
  EXPECT_EQ(production.applied().calibration_s, 0);
  EXPECT_TRUE(at::equal(production.Run(inputs).toTensor(), calibrated.Run(inputs).toTensor()));
}

// The production side of the tests below, in a process of its own: loads the recipe the
// parent wrote, optimises SmallConvNet without any calibration data and writes its output and
// the ISA oneDNN dispatches to. Disabled so that only the parents run it.
TEST(QuantizeChildProcess, DISABLED_LoadsTheRecipeAndWritesItsOutput) {
  const char* dir = std::getenv("IPT_QUANTIZE_CHILD_DIR");
  ASSERT_NE(dir, nullptr);
  recipes::Recipe recipe = recipes::LoadRecipe(std::string(dir) + "/recipe.yaml");
  OptimizedModel model = Optimize(SmallConvNet(), recipe);
  ASSERT_EQ(model.applied().calibration_s, 0);
  at::Tensor out = model.Run(Images(4, 50)).toTensor();
  std::vector<char> bytes = torch::pickle_save(out);
  std::ofstream(std::string(dir) + "/output.pt", std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::ofstream(std::string(dir) + "/isa.txt") << kernels::QueryOneDnn().effective_isa;
}

struct ChildOutput {
  at::Tensor output;  // SmallConvNet's on Images(4, 50)
  std::string isa;    // oneDNN's in the child
};

// `recipe` applied to SmallConvNet by a fresh process of this test binary, with `env` added to
// its environment.
ChildOutput RunInChildProcess(const recipes::Recipe& recipe, const std::vector<std::string>& env) {
  auto dir =
      std::filesystem::temp_directory_path() / ("ipt-quantize-child-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  recipes::SaveRecipe(recipe, (dir / "recipe.yaml").string());
  std::string filter = "--gtest_filter=QuantizeChildProcess.*";
  std::string also = "--gtest_also_run_disabled_tests";
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  char* argv[] = {self.data(), filter.data(), also.data(), nullptr};
  std::vector<std::string> added = env;
  added.push_back("IPT_QUANTIZE_CHILD_DIR=" + dir.string());
  std::vector<char*> envp;
  for (std::string& e : added) envp.push_back(e.data());
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, envp.data()), 0);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child failed";
  ChildOutput child;
  std::ifstream file(dir / "output.pt", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!bytes.empty()) child.output = torch::pickle_load(bytes).toTensor();
  std::ifstream(dir / "isa.txt") >> child.isa;
  std::filesystem::remove_all(dir);
  return child;
}

TEST(QuantizeTest, RecipeWithSavedParametersGivesIdenticalOutputsInAFreshProcess) {
  torch::jit::Module module = SmallConvNet();
  recipes::Recipe recipe = Int8("entropy");
  recipe.workload.name = "small-conv-net";
  recipe.precision.smooth_quant = recipes::SmoothQuant{0.5};  // its linear's factors too
  OptimizedModel calibrated = Optimize(module, recipe, Images);
  ASSERT_EQ(calibrated.applied().smoothed, std::vector<std::string>{"linear.0"});
  recipe.precision.qparams = calibrated.applied().qparams;
  const ChildOutput child = RunInChildProcess(recipe, {});
  ASSERT_TRUE(child.output.defined());
  EXPECT_TRUE(at::equal(child.output, calibrated.Run(Images(4, 50)).toTensor()));
}

// Issue 4: bf16 stays correct on CPUs without avx512_bf16, only slower. oneDNN capped at
// avx512_core runs its bf16 kernels emulated; capped at avx2 it has none, and the core's ops
// take their aten paths.
TEST(QuantizeTest, Bf16IsCorrectWithOneDnnCappedBelowNativeBf16) {
  recipes::Recipe recipe;
  recipe.workload.name = "small-conv-net";
  recipe.precision.dtype = recipes::Dtype::kBf16;
  const at::Tensor reference = Eval(SmallConvNet(), Images(4, 50));
  for (const char* isa : {"avx512_core", "avx2"}) {
    const ChildOutput child = RunInChildProcess(recipe, {std::string("ONEDNN_MAX_CPU_ISA=") + isa});
    ASSERT_TRUE(child.output.defined()) << isa;
    EXPECT_EQ(child.isa, isa) << "the cap took effect";
    EXPECT_GT(Cosine(reference, child.output), 0.999) << isa;
  }
}

TEST(QuantizeTest, SmoothQuantKeepsTheSmallFeaturesOfAMixedInputAndSavesItsFactors) {
  torch::jit::Module module = MixedScaleNet();
  auto inputs = MixedInputs(64, 99);
  at::Tensor reference = Eval(module, inputs);
  recipes::Recipe plain = Int8("minmax", 256);
  plain.workload.name = "mixed-scale-net";
  recipes::Recipe smooth = plain;
  smooth.precision.smooth_quant = recipes::SmoothQuant{0.5};
  OptimizedModel plain_model = Optimize(module, plain, MixedInputs);
  OptimizedModel smooth_model = Optimize(module, smooth, MixedInputs);
  const Applied& applied = smooth_model.applied();
  EXPECT_TRUE(plain_model.applied().smoothed.empty());
  EXPECT_EQ(applied.smoothed, (std::vector<std::string>{"linear.0", "linear.1", "linear.2"}));
  ASSERT_TRUE(applied.qparams.has_value());
  EXPECT_EQ(applied.qparams->smoothing.at("linear.0").size(), 8U);
  EXPECT_EQ(applied.qparams->smoothing.at("linear.1").size(), 40U);
  EXPECT_EQ(applied.qparams->smoothing.at("linear.2").size(), 32U);
  // The small features get factors far below the others'.
  const std::vector<double>& mixed = applied.qparams->smoothing.at("linear.1");
  EXPECT_LT(*std::max_element(mixed.begin() + 16, mixed.end()),
            0.1 * *std::min_element(mixed.begin(), mixed.begin() + 16));
  // What the small features decide: the outputs' change when they are zeroed. One u8 scale
  // rounds them to zero or a level or two; smoothed, most of their effect survives.
  std::vector<torch::jit::IValue> without = {inputs[0], at::zeros_like(inputs[1].toTensor())};
  auto effect = [&](const std::function<at::Tensor(const std::vector<torch::jit::IValue>&)>& f) {
    return f(inputs) - f(without);
  };
  at::Tensor want = effect([&](const auto& in) { return Eval(module, in); });
  const double plain_error =
      RelativeL2(want, effect([&](const auto& in) { return plain_model.Run(in).toTensor(); }));
  const double smooth_error =
      RelativeL2(want, effect([&](const auto& in) { return smooth_model.Run(in).toTensor(); }));
  EXPECT_GT(plain_error, 0.8);
  EXPECT_LT(smooth_error, 0.4) << "plain " << plain_error;
  EXPECT_LT(RelativeL2(reference, smooth_model.Run(inputs).toTensor()),
            0.6 * RelativeL2(reference, plain_model.Run(inputs).toTensor()));

  // Production: the factors come back from the recipe on disk, bit for bit.
  smooth.precision.qparams = applied.qparams;
  recipes::Recipe loaded = ThroughYamlOnDisk(smooth);
  OptimizedModel production = Optimize(module, loaded);
  EXPECT_EQ(production.applied().calibration_s, 0);
  EXPECT_EQ(production.applied().smoothed, applied.smoothed);
  EXPECT_TRUE(at::equal(production.Run(inputs).toTensor(), smooth_model.Run(inputs).toTensor()));

  auto refused = [&](const recipes::Recipe& recipe, const std::string& needle) {
    try {
      Optimize(module, recipe);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  recipes::Recipe unasked = loaded;
  unasked.precision.smooth_quant.reset();
  refused(unasked, "calibrated with precision.smooth_quant, which this recipe does not set");
  recipes::Recipe missing = loaded;
  missing.precision.qparams->smoothing.erase("linear.1");
  refused(missing, "no factors for linear.1");
  recipes::Recipe short_list = loaded;
  short_list.precision.qparams->smoothing["linear.0"].pop_back();
  refused(short_list, "linear.0 has 7 factors for 8 input features");
}

TEST(QuantizeTest, SavedOptimisedModelLoadsAndGivesTheSameResults) {
  OptimizedModel model = Optimize(SmallConvNet(), Int8(), Images);
  std::stringstream buffer;
  model.module().save(buffer);
  torch::jit::Module loaded = torch::jit::load(buffer);
  auto inputs = Images(2, 7);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.forward(inputs).toTensor(), model.Run(inputs).toTensor()));
}

// Results that only int8 convolutions read stay in uint8; the one that leaves the graph, and
// the SmallConvNet activation that is also a residual accumulator, do not.
TEST(QuantizeTest, ConvolutionsFeedingOnlyInt8ConvolutionsHandOnUint8) {
  torch::jit::Module module = ChainConvNet();
  auto inputs = Images(4, 70);
  at::Tensor reference = Eval(module, inputs);
  OptimizedModel model = Optimize(module, Int8(), Images);
  EXPECT_EQ(model.applied().fusions.fused.at("int8 chain"), 2) << model.applied().ToJson().dump();
  at::Tensor out = model.Run(inputs).toTensor();
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_GT(Cosine(reference, out), 0.99);
  std::stringstream buffer;
  model.module().save(buffer);
  torch::jit::Module loaded = torch::jit::load(buffer);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.forward(inputs).toTensor(), out));

  // A result that is both the input and the residual of the next convolution.
  OptimizedModel residual = Optimize(SmallConvNet(), Int8(), Images);
  EXPECT_EQ(residual.applied().fusions.fused.at("int8 chain"), 1);
}

// Residuals stay uint8: every convolution result (the shortcut, each block's output) is handed
// on quantized, the first block adds into its uint8 shortcut in place, and the second, whose
// result leaves the graph in fp32, adds its uint8 residual into a fresh fp32 output. The
// activation that two convolutions read is handed to both in uint8 (their calibrated inputs
// agree). Parameters saved without residuals (an older recipe) still apply, with fp32 residuals
// added in place.
TEST(QuantizeTest, Int8ResidualsStayUint8AndAddInPlace) {
  torch::jit::Module module = ResidualConvNet();
  auto inputs = Images(4, 71);
  at::Tensor reference = Eval(module, inputs);
  OptimizedModel model = Optimize(module, Int8(), Images);
  const Applied& applied = model.applied();
  EXPECT_EQ(Count(applied, "ipt::qconv2d_sum_"), 1) << applied.ToJson().dump();
  EXPECT_EQ(Count(applied, "ipt::qconv2d_sum"), 1);
  EXPECT_EQ(applied.fusions.fused.at("int8 chain"), 4);
  EXPECT_EQ(applied.fusions.fused.at("int8 max pool"), 1);
  EXPECT_EQ(Count(applied, "ipt::qmax_pool2d"), 1);
  EXPECT_EQ(Count(applied, "aten::max_pool2d"), 0);
  ASSERT_TRUE(applied.qparams.has_value());
  EXPECT_EQ(applied.qparams->accumulators.size(), 2U);
  at::Tensor out = model.Run(inputs).toTensor();
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_GT(Cosine(reference, out), 0.99);
  EXPECT_TRUE(at::equal(model.Run(inputs).toTensor(), out)) << "the add does not build up";
  std::stringstream buffer;
  model.module().save(buffer);
  torch::jit::Module loaded = torch::jit::load(buffer);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.forward(inputs).toTensor(), out));

  recipes::Recipe older = Int8();
  older.precision.qparams = applied.qparams;
  older.precision.qparams->accumulators.clear();
  OptimizedModel fp32_residuals = Optimize(module, older);
  EXPECT_EQ(Count(fp32_residuals.applied(), "ipt::qconv2d_sum_"), 2);
  EXPECT_EQ(fp32_residuals.applied().fusions.fused.at("int8 chain"), 2) << "y and a only";
  EXPECT_GT(Cosine(reference, fp32_residuals.Run(inputs).toTensor()), 0.99);
}

TEST(QuantizeTest, AMaxPoolAnFp32OpReadsStaysFp32) {
  torch::jit::Module module = PoolReadInFp32Net();
  auto inputs = Images(4, 72);
  OptimizedModel model = Optimize(module, Int8(), Images);
  const Applied& applied = model.applied();
  EXPECT_EQ(Count(applied, "aten::max_pool2d"), 1) << applied.ToJson().dump();
  EXPECT_EQ(Count(applied, "ipt::qmax_pool2d"), 0);
  EXPECT_EQ(applied.fusions.fused.count("int8 chain"), 0U);
  EXPECT_EQ(applied.fusions.fused.count("int8 max pool"), 0U);
  EXPECT_GT(Cosine(Eval(module, inputs), model.Run(inputs).toTensor()), 0.99);
}

TEST(QuantizeTest, ParametersForAnotherGraphAreRefusedNamingBothDigests) {
  torch::jit::Module module = SmallConvNet();
  recipes::Recipe recipe = Int8();
  recipe.precision.qparams = Optimize(module, recipe, Images).applied().qparams;
  // The same model with the conv+add fusion off has other ops: the parameters do not fit.
  recipe.optimize.fusions = {"conv_eltwise", "linear_eltwise"};
  try {
    Optimize(module, recipe);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("calibrated for another graph"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(recipe.precision.qparams->graph), std::string::npos);
  }
}

TEST(QuantizeTest, StaticInt8WithoutDataOrParametersIsAClearError) {
  try {
    Optimize(SmallConvNet(), Int8());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("calibration data"), std::string::npos) << e.what();
  }
}

TEST(QuantizeTest, UnknownAlgorithmAndFallbackNamesAreErrorsNamingWhatExists) {
  torch::jit::Module module = SmallConvNet();
  try {
    Optimize(module, Int8("kl"), Images);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("precision.calibration.algorithm"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("entropy"), std::string::npos) << e.what();
  }
  recipes::Recipe recipe = Int8();
  recipe.precision.fallback = {"conv2d.7"};
  try {
    Optimize(module, recipe, Images);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d.0, conv2d.1, linear.0"), std::string::npos)
        << e.what();
  }
}

TEST(QuantizeTest, FallbackKeepsNamedOpsAndWholeKindsInFp32) {
  torch::jit::Module module = SmallConvNet();
  recipes::Recipe recipe = Int8();
  recipe.precision.fallback = {"conv2d.0", "linear"};
  OptimizedModel model = Optimize(module, recipe, Images);
  EXPECT_EQ(model.applied().quantized, std::vector<std::string>{"conv2d.1"});
  EXPECT_EQ(model.applied().kept_fp32, (std::vector<std::string>{"conv2d.0", "linear.0"}));
  EXPECT_EQ(Count(model.applied(), "ipt::conv2d"), 1);
  EXPECT_EQ(Count(model.applied(), "ipt::linear"), 1);
  EXPECT_EQ(Count(model.applied(), "ipt::qconv2d_sum"), 1);
  auto inputs = Images(4, 3);
  EXPECT_GT(Cosine(Eval(module, inputs), model.Run(inputs).toTensor()), 0.99);
}

// Static int8 keeping `fallback` in bf16.
recipes::Recipe KeptInBf16(const std::vector<std::string>& fallback) {
  recipes::Recipe recipe = Int8();
  recipe.precision.fallback = fallback;
  recipe.precision.fallback_dtype = recipes::Dtype::kBf16;
  return recipe;
}

// The dtype of each kept conv's and linear's weights, in graph order.
std::vector<at::ScalarType> KeptWeightDtypes(OptimizedModel& model) {
  std::vector<at::ScalarType> dtypes;
  torch::jit::Module module = model.module();
  for (torch::jit::Node* node : module.get_method("forward").graph()->nodes()) {
    const std::string kind = node->kind().toQualString();
    if (kind.rfind("ipt::conv2d", 0) != 0 && kind.rfind("ipt::linear", 0) != 0) continue;
    c10::IValue context = *torch::jit::toIValue(node->inputs().back());
    dtypes.push_back(kind.rfind("ipt::conv2d", 0) == 0
                         ? context.toCustomClass<kernels::ConvContext>()->weight().scalar_type()
                         : context.toCustomClass<kernels::LinearContext>()->weight().scalar_type());
  }
  return dtypes;
}

TEST(QuantizeTest, Bf16FallbackRunsTheKeptOpsOnBf16Kernels) {
  torch::jit::Module module = SmallConvNet();
  recipes::Recipe recipe = KeptInBf16({"conv2d.0", "linear"});
  OptimizedModel model = Optimize(module, recipe, Images);
  EXPECT_EQ(model.applied().quantized, std::vector<std::string>{"conv2d.1"});
  EXPECT_EQ(model.applied().kept_bf16, (std::vector<std::string>{"conv2d.0", "linear.0"}));
  EXPECT_TRUE(model.applied().kept_fp32.empty());
  EXPECT_EQ(model.applied().ToJson()["kept_bf16"], nlohmann::json({"conv2d.0", "linear.0"}));
  EXPECT_EQ(KeptWeightDtypes(model), (std::vector<at::ScalarType>{at::kBFloat16, at::kBFloat16}));
  EXPECT_EQ(Count(model.applied(), "aten::to"), 4) << "into and out of each kept op";

  // The same parameters with the ops kept in fp32: close, but not the same arithmetic.
  recipes::Recipe saved = recipe;
  saved.workload.name = "small-conv-net";
  saved.precision.qparams = model.applied().qparams;
  recipes::Recipe in_fp32 = saved;
  in_fp32.precision.fallback_dtype = recipes::Dtype::kFp32;
  auto inputs = Images(4, 3);
  const at::Tensor out = model.Run(inputs).toTensor();
  const at::Tensor fp32 = Optimize(module, in_fp32).Run(inputs).toTensor();
  EXPECT_GT(Cosine(out, fp32), 0.999);
  EXPECT_FALSE(at::equal(out, fp32));

  EXPECT_TRUE(at::equal(Optimize(module, ThroughYamlOnDisk(saved)).Run(inputs).toTensor(), out))
      << "the fallback dtype and parameters through YAML on disk";
  std::stringstream buffer;
  model.module().save(buffer);
  torch::jit::Module loaded = torch::jit::load(buffer);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.forward(inputs).toTensor(), out)) << "bf16 weights saved";
}

TEST(QuantizeTest, Bf16FallbackComputesAsBf16ArithmeticAndChainsKeptOpsInBf16) {
  torch::jit::Module module = MixedScaleNet();
  recipes::Recipe recipe = KeptInBf16({"linear"});
  OptimizedModel model = Optimize(module, recipe, MixedInputs);
  EXPECT_TRUE(model.applied().quantized.empty());
  EXPECT_EQ(model.applied().kept_bf16.size(), 3U);
  ASSERT_TRUE(model.applied().qparams.has_value());
  EXPECT_TRUE(model.applied().qparams->inputs.empty()) << "nothing left to calibrate";
  // Into and out of linear.0 (a cat follows), into linear.1, out of linear.2: linear.1 hands
  // linear.2 its bf16 result as it is.
  EXPECT_EQ(Count(model.applied(), "aten::to"), 4);

  // The model's arithmetic in aten: bf16 operands, fp32 sums and bias, each result rounded to
  // bf16.
  auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kFloat); };
  auto w = [&](const char* name) { return module.attr(name).toTensor(); };
  auto inputs = MixedInputs(8, 5);
  const at::Tensor dense = inputs[0].toTensor(), small = inputs[1].toTensor();
  at::Tensor h = bf(at::relu(at::linear(bf(dense), bf(w("w1")), w("b1"))));
  h = at::cat({h, small * 0.01}, 1);
  h = bf(at::relu(at::linear(bf(h), bf(w("w2")), w("b2"))));
  const at::Tensor reference = bf(at::linear(h, bf(w("w3"))));
  const at::Tensor out = model.Run(inputs).toTensor();
  const double fp32_distance = RelativeL2(reference, Eval(module, inputs));
  EXPECT_LT(RelativeL2(reference, out), fp32_distance / 10)
      << "bf16 rounding moves the outputs by " << fp32_distance;

  // Dynamic int8 keeps a linear in bf16 the same way.
  recipe.precision.dtype = recipes::Dtype::kInt8Dynamic;
  recipe.precision.calibration.reset();
  recipe.precision.fallback = {"linear.2"};
  OptimizedModel dynamic = Optimize(module, recipe);
  EXPECT_EQ(dynamic.applied().quantized, (std::vector<std::string>{"linear.0", "linear.1"}));
  EXPECT_EQ(dynamic.applied().kept_bf16, std::vector<std::string>{"linear.2"});
  EXPECT_EQ(KeptWeightDtypes(dynamic), std::vector<at::ScalarType>{at::kBFloat16});
  EXPECT_GT(Cosine(Eval(module, inputs), dynamic.Run(inputs).toTensor()), 0.99);
}

TEST(QuantizeTest, Bf16FallbackAddsResidualsInBf16AndInPlace) {
  torch::jit::Module module = ResidualConvNet();
  recipes::Recipe recipe = KeptInBf16({"conv2d"});
  OptimizedModel model = Optimize(module, recipe, Images);
  EXPECT_EQ(model.applied().kept_bf16.size(), 5U);
  EXPECT_EQ(Count(model.applied(), "ipt::conv2d_sum_"), 2) << "both residuals added in place";

  // The same bf16 arithmetic in aten: each convolution's result, residual added, rounded to
  // bf16. In the first block either convolution may be the one that adds the other's rounded
  // result: the closer of the two counts.
  auto bf = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kFloat); };
  auto conv = [&](const at::Tensor& x, const char* w, int64_t padding) {
    return at::conv2d(bf(x), bf(module.attr(w).toTensor()), {}, 1, padding);
  };
  auto inputs = Images(2, 7);
  const at::Tensor x = inputs[0].toTensor();
  const at::Tensor y = at::max_pool2d(bf(at::relu(conv(x, "w1", 1))), {3, 3}, {2, 2}, {1, 1});
  const at::Tensor out = model.Run(inputs).toTensor();
  double distance = 1;
  for (bool shortcut_added : {true, false}) {
    const at::Tensor z = bf(at::relu(shortcut_added ? conv(y, "w3", 1) + bf(conv(y, "w2", 0))
                                                    : bf(conv(y, "w3", 1)) + conv(y, "w2", 0)));
    const at::Tensor a = bf(at::relu(conv(z, "w4", 0)));
    distance =
        std::min(distance, RelativeL2(at::mean(bf(at::relu(conv(a, "w5", 1) + z)), {2, 3}), out));
  }
  const double fp32_distance = RelativeL2(Eval(module, inputs), out);
  EXPECT_LT(distance, fp32_distance / 10) << "bf16 rounding moves the outputs by " << fp32_distance;
}

TEST(QuantizeTest, Bf16FallbackSeesAnInPlaceOpBetweenTwoKeptOps) {
  torch::jit::Module m("InPlaceBetweenNet");
  at::manual_seed(17);
  m.register_parameter("w1", at::randn({16, 16}) * 0.3, false);
  m.register_parameter("b1", at::randn({16}) * 0.1, false);
  m.register_parameter("w2", at::randn({8, 16}) * 0.3, false);
  m.define(R"(
def forward(self, x):
    y = torch.linear(x, self.w1, self.b1)
    y.relu_()
    return torch.linear(y, self.w2) + torch.sum(y, 1, True)
)");
  m.eval();
  recipes::Recipe recipe = KeptInBf16({"linear"});
  auto data = [](int64_t batch, int64_t index) -> std::vector<torch::jit::IValue> {
    at::Generator g = at::detail::createCPUGenerator(3000 + index);
    return {at::randn({batch, 16}, g)};
  };
  OptimizedModel model = Optimize(m, recipe, data);
  ASSERT_EQ(Count(model.applied(), "aten::relu_"), 1) << "the in-place op this test is about";
  auto inputs = data(8, 1);
  EXPECT_GT(Cosine(Eval(m, inputs), model.Run(inputs).toTensor()), 0.999)
      << "the second linear must read the relu'd values";
}

TEST(QuantizeTest, InfOrNanInCalibrationDataNamesTheOp) {
  auto bad = [](int64_t batch, int64_t index) {
    auto inputs = Images(batch, index);
    inputs[0].toTensor()[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
    return inputs;
  };
  try {
    Optimize(SmallConvNet(), Int8(), bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("conv2d.0"), std::string::npos) << e.what();
  }
}

TEST(QuantizeTest, OneThreadAndTwoThreadsGiveIdenticalInt8Results) {
  OptimizedModel model = Optimize(SmallConvNet(), Int8(), Images);
  auto inputs = Images(4, 21);
  SetThreads(1);
  at::Tensor one = model.Run(inputs).toTensor();
  SetThreads(2);
  EXPECT_TRUE(at::equal(one, model.Run(inputs).toTensor()));
}

// On the pooled vectors (ReturnPooledVectors says why); the benchmark measures the logits' cosine
// and class agreement on BERT-base's evaluation set.
TEST(QuantizeTest, BertStaticAndDynamicKeepThePooledVectors) {
  workloads::WorkloadOptions options;
  options.seq_len = 64;
  auto workload = workloads::MakeBert(TwoLayerBert(), options);
  torch::jit::Module module = workload->BuildModel();
  testing::ReturnPooledVectors(module, TwoLayerBert().hidden);
  auto inputs = workload->MakeInputs(16, 0);
  at::Tensor reference = Eval(module, inputs);
  auto calibration = [&](int64_t batch, int64_t index) {
    return workload->MakeCalibrationInputs(batch, index);
  };
  for (const std::string algorithm : {"minmax", "histogram", "percentile"}) {
    OptimizedModel model = Optimize(module, Int8(algorithm), calibration);
    EXPECT_EQ(Count(model.applied(), "ipt::linear"), 0) << algorithm;
    EXPECT_GT(Count(model.applied(), "ipt::qlinear"), 0) << algorithm;
    at::Tensor out = model.Run(inputs).toTensor();
    EXPECT_GT(Cosine(reference, out), 0.99) << algorithm;
    EXPECT_LT(RelativeL2(reference, out), 0.05) << algorithm;
  }
  recipes::Recipe dynamic;
  dynamic.precision.dtype = recipes::Dtype::kInt8Dynamic;
  OptimizedModel model = Optimize(module, dynamic);
  EXPECT_FALSE(model.applied().qparams.has_value());
  EXPECT_EQ(Count(model.applied(), "ipt::linear"), 0);
  at::Tensor out = model.Run(inputs).toTensor();
  EXPECT_GT(Cosine(reference, out), 0.99);
  EXPECT_LT(RelativeL2(reference, out), 0.05);
}

TEST(QuantizeTest, DlrmPredictionsAgreeAfterStaticInt8) {
  workloads::DlrmConfig config;
  config.table_rows = std::vector<int64_t>(26, 100);
  auto workload = workloads::MakeDlrm(config, {});
  torch::jit::Module module = workload->BuildModel();
  auto inputs = workload->MakeInputs(256, 0);
  at::Tensor reference = Eval(module, inputs);
  OptimizedModel model = Optimize(module, Int8("minmax", 256), [&](int64_t batch, int64_t index) {
    return workload->MakeCalibrationInputs(batch, index);
  });
  EXPECT_EQ(Count(model.applied(), "ipt::qlinear"), 8);
  EXPECT_EQ(Count(model.applied(), "ipt::qmerged_embedding_bag_sum"), 1);
  EXPECT_EQ(Count(model.applied(), "ipt::merged_embedding_bag_sum"), 0);
  EXPECT_NE(std::find(model.applied().quantized.begin(), model.applied().quantized.end(),
                      "embedding_bag.0"),
            model.applied().quantized.end());
  at::Tensor out = model.Run(inputs).toTensor();
  EXPECT_LT((out - reference).abs().max().item<double>(), 0.1);
  EXPECT_GE(((out > 0.5) == (reference > 0.5)).to(at::kFloat).mean().item<double>(), 0.97);
  std::stringstream buffer;
  model.module().save(buffer);
  torch::jit::Module loaded = torch::jit::load(buffer);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(loaded.forward(inputs).toTensor(), out)) << "tables saved in int8";

  // The tables kept in fp32 by kind; the linears' saved parameters still apply (the digest
  // covers convolutions and linears only).
  recipes::Recipe fp32_tables = Int8();
  fp32_tables.precision.fallback = {"embedding_bag"};
  fp32_tables.precision.qparams = model.applied().qparams;
  OptimizedModel kept = Optimize(module, fp32_tables);
  EXPECT_EQ(Count(kept.applied(), "ipt::merged_embedding_bag_sum"), 1);
  EXPECT_EQ(kept.applied().kept_fp32, std::vector<std::string>{"embedding_bag.0"});
  EXPECT_LT((kept.Run(inputs).toTensor() - reference).abs().max().item<double>(), 0.1);

  // In bf16: every table's sums converted back to fp32 for the interaction.
  recipes::Recipe bf16_tables = fp32_tables;
  bf16_tables.precision.fallback_dtype = recipes::Dtype::kBf16;
  OptimizedModel bf16 = Optimize(module, bf16_tables);
  EXPECT_EQ(bf16.applied().kept_bf16, std::vector<std::string>{"embedding_bag.0"});
  EXPECT_EQ(Count(bf16.applied(), "aten::to"), 26);
  const at::Tensor bf16_out = bf16.Run(inputs).toTensor();
  EXPECT_LT((bf16_out - reference).abs().max().item<double>(), 0.1);
  EXPECT_FALSE(at::equal(bf16_out, kept.Run(inputs).toTensor()));
}

}  // namespace
}  // namespace ipt::core
