// The production API: a model file and a recipe in, a runnable object out; saved and loaded
// again without re-optimising; clear errors for files and recipes it cannot follow.
#include "core/runtime.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "core/platform/binding.h"
#include "recipes/recipe_yaml.h"
#include "tests/core/test_models.h"
#include "tests/core/test_util.h"

namespace ipt::core {
namespace {

namespace fs = std::filesystem;
using testing::ErrorOf;
using torch::jit::IValue;

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ipt-runtime-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // A conv net saved as TorchScript, as a user's file would be.
  std::string SaveModel() const {
    torch::jit::Module m("Net");
    at::manual_seed(5);
    m.register_parameter("w1", at::randn({8, 3, 3, 3}) * 0.3, false);
    m.register_parameter("w2", at::randn({4, 8}) * 0.3, false);
    m.register_parameter("b2", at::randn({4}), false);
    m.define(R"(
def forward(self, x):
  y = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
  return torch.linear(torch.flatten(torch.adaptive_avg_pool2d(y, [1, 1]), 1), self.w2, self.b2)
)");
    const std::string path = Path("net.pt");
    m.save(path);
    return path;
  }

  fs::path dir_;
};

recipes::Recipe TwoStreams() {
  recipes::Recipe recipe;
  recipe.runtime.streams = 2;
  // This machine may have fewer cores than streams; scatter them over what it has.
  recipe.runtime.cores_per_stream = 1;
  return recipe;
}

TEST_F(RuntimeTest, RunsTheRecipeAndReportsWhatItDid) {
  const std::string model = SaveModel();
  const at::Tensor x = at::randn({5, 3, 10, 10});
  const at::Tensor stock = torch::jit::load(model).forward({x}).toTensor();

  recipes::Recipe recipe;
  if (platform::CurrentAffinity().size() >= 2) recipe = TwoStreams();
  auto runtime = Runtime::Load(model, recipe);
  const RuntimeReport before = runtime->report();
  EXPECT_GT(before.load_ms, 0);
  EXPECT_GT(before.optimize_ms, 0);
  EXPECT_FALSE(before.first_call_ms.has_value());
  EXPECT_EQ(before.streams.size(), static_cast<size_t>(recipe.runtime.streams));
  for (const StreamBinding& s : before.streams) {
    ASSERT_EQ(s.applied.size(), s.cpus.size());
    for (size_t t = 0; t < s.cpus.size(); ++t)
      EXPECT_EQ(s.applied[t], platform::CpuSet{s.cpus.ids()[t]});
  }
  EXPECT_NE(before.plan.find("stream 0: cpus"), std::string::npos) << before.plan;
  EXPECT_EQ(before.applied["dtype"], "fp32");

  const at::Tensor out = runtime->Run({x}).toTensor();
  EXPECT_LT((out - stock).norm().item<double>() / stock.norm().item<double>(), 1e-5);
  ASSERT_TRUE(runtime->report().first_call_ms.has_value());
  EXPECT_GT(*runtime->report().first_call_ms, 0);
}

TEST_F(RuntimeTest, ASavedOptimisedModelLoadsWithoutOptimisingAndGivesTheSameOutputs) {
  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kBf16;
  auto runtime = Runtime::Load(SaveModel(), recipe);
  const at::Tensor x = at::randn({3, 3, 10, 10});
  const at::Tensor expected = runtime->Run({x}).toTensor();
  const std::string saved = Path("net.optimized.pt");
  runtime->SaveOptimized(saved);
  EXPECT_FALSE(fs::exists(saved + ".tmp"));

  auto loaded = Runtime::LoadOptimized(saved);
  EXPECT_EQ(loaded->report().optimize_ms, 0);
  EXPECT_GT(loaded->report().load_ms, 0);
  EXPECT_EQ(loaded->recipe().precision.dtype, recipes::Dtype::kBf16);
  EXPECT_EQ(loaded->report().applied, runtime->report().applied);
  const at::Tensor out = loaded->Run({x}).toTensor();
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(out, expected));
}

TEST_F(RuntimeTest, AnInt8ModelIsSavedWithItsCalibrationAndLoadsWithoutRecalibrating) {
  recipes::Recipe recipe;
  recipe.precision.dtype = recipes::Dtype::kInt8;
  RuntimeOptions options;
  options.calibration = [](int64_t batch, int64_t index) -> std::vector<IValue> {
    at::manual_seed(100 + index);
    return {at::randn({batch, 3, 10, 10})};
  };
  auto runtime = Runtime::Load(SaveModel(), recipe, options);
  EXPECT_FALSE(runtime->report().applied["quantized"].empty());
  const at::Tensor x = at::randn({2, 3, 10, 10});
  const at::Tensor expected = runtime->Run({x}).toTensor();
  const std::string saved = Path("net.int8.pt");
  runtime->SaveOptimized(saved);
  auto loaded = Runtime::LoadOptimized(saved);  // no calibration inputs given
  ASSERT_TRUE(loaded->recipe().precision.qparams.has_value()) << "the recipe as applied";
  EXPECT_EQ(loaded->recipe().precision.qparams->inputs.size(),
            runtime->recipe().precision.qparams->inputs.size());
  EXPECT_EQ(loaded->report().applied["qparams"], runtime->report().applied["qparams"]);
  EXPECT_TRUE(at::equal(loaded->Run({x}).toTensor(), expected));
}

TEST_F(RuntimeTest, DlrmOnTwoStreamsReadsItsSplitFromTheModelAndKeepsItWhenSaved) {
  if (platform::CurrentAffinity().size() < 2) GTEST_SKIP() << "needs two CPUs";
  const auto dlrm = workloads::MakeDlrm(testing::SmallDlrm(), {});
  auto runtime = Runtime::Create(dlrm->BuildModel(), TwoStreams());
  const std::vector<recipes::InputSplit> split = {{recipes::InputSplit::Kind::kDim, 0},
                                                  {recipes::InputSplit::Kind::kBagIndices, 0, 2},
                                                  {recipes::InputSplit::Kind::kBagOffsets}};
  EXPECT_EQ(runtime->recipe().runtime.split, split);
  const std::vector<IValue> inputs = dlrm->MakeInputs(9, 0);
  const at::Tensor out = runtime->Run(inputs).toTensor();
  const at::Tensor stock = dlrm->BuildModel().forward(inputs).toTensor();
  EXPECT_LT((out - stock).abs().max().item<double>(), 1e-5);

  const std::string saved = Path("dlrm.optimized.pt");
  runtime->SaveOptimized(saved);
  auto loaded = Runtime::LoadOptimized(saved);
  EXPECT_EQ(loaded->recipe().runtime.split, split);
  EXPECT_TRUE(at::equal(loaded->Run(inputs).toTensor(), out));
}

TEST_F(RuntimeTest, AModelTorchScriptCannotReadBackIsNotSaved) {
  // A traced model has complete shapes, so without prepacking optimize_for_inference turns its
  // convolution into MKLDNN constants.
  const std::string traced = Path("traced.pt");
  const std::string make = std::string(IPT_SOURCE_DIR) + "/tests/app/make_traced_model.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + make + " " + traced).c_str()), 0);
  recipes::Recipe recipe;
  recipe.optimize.weight_prepack = false;
  recipe.optimize.fusions.clear();
  auto runtime = Runtime::Load(traced, recipe);
  ASSERT_GT(runtime->report().applied["op_counts"].value("prim::mkldnn_convolution", 0), 0)
      << runtime->report().applied["op_counts"].dump();
  const std::string saved = Path("mkldnn.pt");
  EXPECT_EQ(ErrorOf([&] { runtime->SaveOptimized(saved); }),
            "cannot save the optimised model to '" + saved +
                "': optimize_for_inference left MKLDNN tensors in it, which TorchScript cannot "
                "load again; set optimize.optimize_for_inference: false in the recipe to save it");
  EXPECT_FALSE(fs::exists(saved));

  // The default recipe lowers the traced convolution onto the core's own op: it saves.
  auto lowered = Runtime::Load(traced, {});
  lowered->SaveOptimized(saved);
  const at::Tensor x = at::randn({2, 3, 16, 16});
  EXPECT_TRUE(
      at::equal(Runtime::LoadOptimized(saved)->Run({x}).toTensor(), lowered->Run({x}).toTensor()));
}

TEST_F(RuntimeTest, FilesItCannotUseAreRefusedNamingThem) {
  const std::string missing = Path("missing.pt");
  EXPECT_EQ(ErrorOf([&] { Runtime::Load(missing, {}); }), "model '" + missing + "' does not exist");
  const std::string garbage = Path("garbage.pt");
  std::ofstream(garbage) << "not a zip archive";
  EXPECT_EQ(ErrorOf([&] {
              Runtime::Load(garbage, {});
            }).rfind("'" + garbage + "' is not a TorchScript archive: ", 0),
            0u);
  const std::string plain = SaveModel();
  EXPECT_EQ(ErrorOf([&] { Runtime::LoadOptimized(plain); }),
            "'" + plain +
                "' is a TorchScript model but not one saved by Runtime::SaveOptimized "
                "(it carries no recipe): load it with Runtime::Load and a recipe");
}

TEST_F(RuntimeTest, ARecipeThatDoesNotFitTheCpusIsRefusedNamingTheNumbers) {
  recipes::Recipe recipe;
  recipe.runtime.streams = 1000;
  const std::string error = ErrorOf([&] { Runtime::Load(SaveModel(), recipe); });
  EXPECT_EQ(error.rfind("recipe runtime (streams 1000, cores_per_stream 0) does not fit CPUs ", 0),
            0u)
      << error;
}

TEST_F(RuntimeTest, EnvironmentTheProcessWasNotStartedWithIsAWarning) {
  recipes::Recipe recipe;
  recipe.runtime.env = {{"IPT_RUNTIME_TEST_UNSET", "1"}};
  recipe.runtime.allocator = recipes::Allocator::kTcmalloc;
  auto runtime = Runtime::Load(SaveModel(), recipe);
  const std::vector<std::string> warnings = runtime->report().warnings;
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].rfind("runtime.allocator is tcmalloc but this process runs ", 0), 0u);
  EXPECT_EQ(warnings[1],
            "runtime.env IPT_RUNTIME_TEST_UNSET=1 is not set in this process (it is unset): "
            "OpenMP and the allocator read it only at start, so set it before the process "
            "starts");
}

TEST(MachineDifferencesTest, NamesWhatDiffersFromTheRecipesMachine) {
  platform::CpuInfo cpu;
  cpu.model_name = "AMD EPYC 9B45";
  cpu.isa_flags = {"avx2", "fma"};
  platform::Topology topology;  // no CPUs: 0 physical cores
  recipes::MachineRef recorded;
  EXPECT_TRUE(MachineDifferences(recorded, cpu, topology, "k").empty()) << "no fingerprint";
  recorded.fingerprint = "k";
  EXPECT_TRUE(MachineDifferences(recorded, cpu, topology, "k").empty()) << "same key";
  recorded.fingerprint = "other";
  EXPECT_EQ(MachineDifferences(recorded, cpu, topology, "k"),
            (std::vector<std::string>{"the machine fingerprint differs (same CPU, ISA and cores: "
                                      "another topology or other libtorch, oneDNN or ipex-tune "
                                      "versions)"}));
  recorded.cpu = "Intel(R) Xeon(R) Platinum 8480+";
  recorded.isa = {"avx2", "avx512_bf16", "amx_bf16"};
  recorded.cores = 56;
  EXPECT_EQ(
      MachineDifferences(recorded, cpu, topology, "k"),
      (std::vector<std::string>{
          "the recipe was measured on CPU 'Intel(R) Xeon(R) Platinum 8480+', this one is 'AMD "
          "EPYC 9B45'",
          "this CPU lacks avx512_bf16, amx_bf16, which the recipe's machine had",
          "this CPU has fma, which the recipe's machine lacked",
          "the recipe's machine had 56 physical cores, this one has 0"}));
}

TEST_F(RuntimeTest, ARecipeFromAnotherMachineWarnsAndStillRuns) {
  recipes::Recipe recipe;
  recipe.machine.fingerprint = "not-this-machine";
  recipe.machine.cpu = "Some Other CPU";
  auto runtime = Runtime::Load(SaveModel(), recipe);
  const std::vector<std::string> warnings = runtime->report().warnings;
  ASSERT_FALSE(warnings.empty());
  EXPECT_EQ(warnings[0].rfind(
                "machine: the recipe was measured on CPU 'Some Other CPU', this one is '", 0),
            0u)
      << warnings[0];
  EXPECT_EQ(runtime->Run({at::randn({1, 3, 8, 8})}).toTensor().size(1), 4);
}

}  // namespace
}  // namespace ipt::core
