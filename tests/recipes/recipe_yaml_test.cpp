// Recipe YAML: round trips through real files, defaults, and every kind of rejection with the
// exact line and key path a user would be shown.
#include "recipes/recipe_yaml.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace ipt::recipes {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHead =
    "schema: ipex-tune/recipe/v1\n"
    "workload:\n"
    "  name: resnet50\n";

Recipe FullRecipe() {
  Recipe r;
  r.workload.name = "bert-base";
  r.workload.model_path = "/models/bert base.pt";
  r.workload.model_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  r.workload.batch = 8;
  r.workload.seq_len = 128;
  r.workload.inputs = {{"input_ids", {8, 128}, "int64"}, {"attention_mask", {8, 128}, "int64"}};
  r.machine.fingerprint = "sha256:0a1b2c";
  r.machine.cpu = "Intel(R) Xeon(R) Platinum 8480+";
  r.machine.isa = {"avx512_bf16", "avx512_vnni", "amx_bf16"};
  r.machine.cores = 56;
  r.optimize.freeze = false;
  r.optimize.optimize_for_inference = false;
  r.optimize.fold_conv_bn = false;
  r.optimize.fold_linear_bn = false;
  r.optimize.fusions = {"linear_gelu", "matmul_div_add"};
  r.optimize.weight_prepack = false;
  r.optimize.memory_format = MemoryFormat::kChannelsLast;
  r.precision.dtype = Dtype::kInt8;
  r.precision.calibration = Calibration{"histogram", 128};
  r.precision.fallback = {"aten::softmax", "aten::layer_norm"};
  r.precision.fallback_dtype = Dtype::kBf16;
  r.precision.smooth_quant = SmoothQuant{0.75};
  r.precision.qparams =
      QParams{"5d41402abc4b2a76",
              {{"conv2d.0", {0.0123, 64, 127}}, {"linear.1", {1.0 / 3.0, 0, 255}}},
              {{"conv2d.0", {0.25, 3, 127}}},
              {{"linear.1", {0.5, 2.25, 1.0 / 3.0}}}};
  r.runtime.threads = 56;
  r.runtime.streams = 4;
  r.runtime.cores_per_stream = 14;
  r.runtime.micro_batch = 2;
  r.runtime.binding = Binding::kScatter;
  r.runtime.allocator = Allocator::kJemalloc;
  r.runtime.env = {{"OMP_WAIT_POLICY", "PASSIVE"},
                   {"MALLOC_CONF", "oversize_threshold:1,background_thread:true"}};
  r.runtime.split = {{InputSplit::Kind::kDim, 1},
                     {InputSplit::Kind::kReplicate},
                     {InputSplit::Kind::kBagIndices, 0, 3},
                     {InputSplit::Kind::kBagOffsets}};
  Provenance p;
  p.study = 7;
  p.trial = 42;
  p.created = "2026-11-26T12:00:00Z";
  p.ipex_tune_version = "0.1.0";
  p.objective = Objective::kP90;
  p.latency_bound_ms = 40;
  p.max_accuracy_loss = 0.01;
  p.measured.items_per_s = 30.1;
  p.measured.median_ms = 33.2;
  p.measured.p90_ms = 35;
  p.measured.p99_ms = 37.5;
  p.measured.ci95_items_per_s = std::make_pair(29.5, 30.6);
  p.measured.ci95_latency_ms = std::make_pair(34.5, 35.25);
  p.measured.accuracy_loss = 0.0625;
  p.vs_stock = 1.4;
  r.provenance = p;
  return r;
}

// Schema order, block maps, name lists one per line, shapes and intervals as tuples, and quotes
// exactly where a YAML reader would otherwise see something other than a string.
constexpr const char* kFullYaml = R"(schema: ipex-tune/recipe/v1
workload:
  name: bert-base
  model_path: "/models/bert base.pt"
  model_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  batch: 8
  seq_len: 128
  inputs:
    - name: input_ids
      shape: [8, 128]
      dtype: int64
    - name: attention_mask
      shape: [8, 128]
      dtype: int64
machine:
  fingerprint: "sha256:0a1b2c"
  cpu: "Intel(R) Xeon(R) Platinum 8480+"
  isa:
    - avx512_bf16
    - avx512_vnni
    - amx_bf16
  cores: 56
optimize:
  freeze: false
  optimize_for_inference: false
  fold_conv_bn: false
  fold_linear_bn: false
  fusions:
    - linear_gelu
    - matmul_div_add
  weight_prepack: false
  memory_format: channels_last
precision:
  dtype: int8
  calibration:
    algorithm: histogram
    samples: 128
  fallback:
    - "aten::softmax"
    - "aten::layer_norm"
  fallback_dtype: bf16
  smooth_quant: {alpha: 0.75}
  qparams:
    graph: "5d41402abc4b2a76"
    inputs:
      conv2d.0: {scale: 0.0123, zero_point: 64, qmax: 127}
      linear.1: {scale: 0.3333333333333333, zero_point: 0, qmax: 255}
    accumulators:
      conv2d.0: {scale: 0.25, zero_point: 3, qmax: 127}
    smoothing:
      linear.1: [0.5, 2.25, 0.3333333333333333]
runtime:
  threads: 56
  streams: 4
  cores_per_stream: 14
  micro_batch: 2
  binding: scatter
  allocator: jemalloc
  env:
    MALLOC_CONF: "oversize_threshold:1,background_thread:true"
    OMP_WAIT_POLICY: PASSIVE
  split:
    - {kind: dim, dim: 1}
    - {kind: replicate}
    - {kind: bag_indices, offsets: 3}
    - {kind: bag_offsets}
provenance:
  study: 7
  trial: 42
  created: "2026-11-26T12:00:00Z"
  ipex_tune_version: "0.1.0"
  objective: p90
  latency_bound_ms: 40
  max_accuracy_loss: 0.01
  measured:
    items_per_s: 30.1
    median_ms: 33.2
    p90_ms: 35
    p99_ms: 37.5
    ci95_items_per_s: [29.5, 30.6]
    ci95_latency_ms: [34.5, 35.25]
    accuracy_loss: 0.0625
  vs_stock: 1.4
)";

// Everything optional left out: no model_path, seq_len, inputs, calibration or provenance.
constexpr const char* kMinimalYaml = R"(schema: ipex-tune/recipe/v1
workload:
  name: resnet50
  model_sha256: ""
  batch: 1
machine:
  fingerprint: ""
  cpu: ""
  isa: []
  cores: 0
optimize:
  freeze: true
  optimize_for_inference: true
  fold_conv_bn: true
  fold_linear_bn: true
  fusions:
    - qkv_merge
    - attention
    - add_layernorm
    - interaction
    - merge_embedding_bags
    - concat_bn_relu
    - conv_eltwise
    - conv_add
    - linear_eltwise
    - linear_add
    - matmul_add
  weight_prepack: true
  memory_format: auto
precision:
  dtype: fp32
  fallback: []
runtime:
  threads: 0
  streams: 1
  cores_per_stream: 0
  binding: compact
  allocator: default
  env: {}
)";

class RecipeYamlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("ipt_recipes_test." + std::to_string(::getpid()) + "." + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::string WriteFile(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::binary) << text;
    return Path(name);
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::vector<std::string> Listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

// The message of the kInvalidArgument error that parsing `text` as "r.yaml" throws.
std::string ParseError(const std::string& text) {
  try {
    ParseRecipe(text, "r.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

TEST(RecipeEnumTest, SpellingsRoundTripAndUnknownIsNullopt) {
  for (Dtype d : {Dtype::kFp32, Dtype::kBf16, Dtype::kInt8, Dtype::kInt8Dynamic}) {
    EXPECT_EQ(ParseDtype(ToString(d)), d);
  }
  for (MemoryFormat m : {MemoryFormat::kAuto, MemoryFormat::kContiguous,
                         MemoryFormat::kChannelsLast, MemoryFormat::kBlocked}) {
    EXPECT_EQ(ParseMemoryFormat(ToString(m)), m);
  }
  for (Binding b : {Binding::kNone, Binding::kCompact, Binding::kScatter}) {
    EXPECT_EQ(ParseBinding(ToString(b)), b);
  }
  for (Allocator a : {Allocator::kDefault, Allocator::kJemalloc, Allocator::kTcmalloc}) {
    EXPECT_EQ(ParseAllocator(ToString(a)), a);
  }
  EXPECT_STREQ(ToString(Dtype::kInt8Dynamic), "int8-dynamic");
  EXPECT_STREQ(ToString(MemoryFormat::kChannelsLast), "channels_last");
  EXPECT_EQ(DtypeSpellings(), "fp32, bf16, int8, int8-dynamic");
  EXPECT_EQ(MemoryFormatSpellings(), "auto, contiguous, channels_last, blocked");
  EXPECT_EQ(BindingSpellings(), "none, compact, scatter");
  EXPECT_EQ(AllocatorSpellings(), "default, jemalloc, tcmalloc");
  // Spellings are case-sensitive: the file format has one spelling per value.
  EXPECT_EQ(ParseDtype("FP32"), std::nullopt);
  EXPECT_EQ(ParseDtype("fp16"), std::nullopt);
  EXPECT_EQ(ParseMemoryFormat("nhwc"), std::nullopt);
  EXPECT_EQ(ParseBinding(""), std::nullopt);
  EXPECT_EQ(ParseAllocator("mimalloc"), std::nullopt);
}

TEST_F(RecipeYamlTest, FullRecipeWritesTheDocumentedLayout) {
  EXPECT_EQ(ToYaml(FullRecipe()), kFullYaml);
}

TEST_F(RecipeYamlTest, FullRecipeRoundTripsThroughAFile) {
  const Recipe original = FullRecipe();
  const std::string path = Path("bert.yaml");
  SaveRecipe(original, path);
  EXPECT_EQ(ReadFile(path), ToYaml(original));

  const Recipe r = LoadRecipe(path);
  EXPECT_EQ(ToYaml(r), ToYaml(original));

  EXPECT_EQ(r.schema, kRecipeSchema);
  EXPECT_EQ(r.workload.name, "bert-base");
  EXPECT_EQ(r.workload.model_path, "/models/bert base.pt");
  EXPECT_EQ(r.workload.model_sha256, original.workload.model_sha256);
  EXPECT_EQ(r.workload.batch, 8);
  EXPECT_EQ(r.workload.seq_len, 128);
  ASSERT_EQ(r.workload.inputs.size(), 2u);
  EXPECT_EQ(r.workload.inputs[0].name, "input_ids");
  EXPECT_EQ(r.workload.inputs[0].shape, (std::vector<int64_t>{8, 128}));
  EXPECT_EQ(r.workload.inputs[1].name, "attention_mask");
  EXPECT_EQ(r.workload.inputs[1].dtype, "int64");
  EXPECT_EQ(r.machine.fingerprint, "sha256:0a1b2c");
  EXPECT_EQ(r.machine.cpu, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(r.machine.isa, (std::vector<std::string>{"avx512_bf16", "avx512_vnni", "amx_bf16"}));
  EXPECT_EQ(r.machine.cores, 56);
  EXPECT_FALSE(r.optimize.freeze);
  EXPECT_FALSE(r.optimize.optimize_for_inference);
  EXPECT_FALSE(r.optimize.fold_conv_bn);
  EXPECT_FALSE(r.optimize.fold_linear_bn);
  EXPECT_EQ(r.optimize.fusions, (std::vector<std::string>{"linear_gelu", "matmul_div_add"}));
  EXPECT_FALSE(r.optimize.weight_prepack);
  EXPECT_EQ(r.optimize.memory_format, MemoryFormat::kChannelsLast);
  EXPECT_EQ(r.precision.dtype, Dtype::kInt8);
  ASSERT_TRUE(r.precision.calibration.has_value());
  EXPECT_EQ(r.precision.calibration->algorithm, "histogram");
  EXPECT_EQ(r.precision.calibration->samples, 128);
  EXPECT_EQ(r.precision.fallback, (std::vector<std::string>{"aten::softmax", "aten::layer_norm"}));
  ASSERT_TRUE(r.precision.qparams.has_value());
  EXPECT_EQ(r.precision.qparams->graph, "5d41402abc4b2a76");
  ASSERT_EQ(r.precision.qparams->inputs.size(), 2U);
  const ActivationQParams& linear = r.precision.qparams->inputs.at("linear.1");
  EXPECT_EQ(linear.scale, 1.0 / 3.0);  // bit for bit: production must use what was calibrated
  EXPECT_EQ(linear.zero_point, 0);
  EXPECT_EQ(r.precision.qparams->inputs.at("conv2d.0").qmax, 127);
  ASSERT_EQ(r.precision.qparams->accumulators.size(), 1U);
  EXPECT_EQ(r.precision.qparams->accumulators.at("conv2d.0").zero_point, 3);
  EXPECT_EQ(r.precision.fallback_dtype, Dtype::kBf16);
  ASSERT_TRUE(r.precision.smooth_quant.has_value());
  EXPECT_EQ(r.precision.smooth_quant->alpha, 0.75);
  EXPECT_EQ(r.precision.qparams->smoothing.at("linear.1"),
            (std::vector<double>{0.5, 2.25, 1.0 / 3.0}));
  EXPECT_EQ(r.runtime.threads, 56);
  EXPECT_EQ(r.runtime.streams, 4);
  EXPECT_EQ(r.runtime.cores_per_stream, 14);
  EXPECT_EQ(r.runtime.micro_batch, 2);
  EXPECT_EQ(r.runtime.binding, Binding::kScatter);
  EXPECT_EQ(r.runtime.allocator, Allocator::kJemalloc);
  EXPECT_EQ(r.runtime.env, original.runtime.env);
  EXPECT_EQ(r.runtime.split, original.runtime.split);
  ASSERT_TRUE(r.provenance.has_value());
  EXPECT_EQ(r.provenance->study, 7);
  EXPECT_EQ(r.provenance->trial, 42);
  EXPECT_EQ(r.provenance->created, "2026-11-26T12:00:00Z");
  EXPECT_EQ(r.provenance->ipex_tune_version, "0.1.0");
  EXPECT_EQ(r.provenance->measured.items_per_s, 30.1);
  EXPECT_EQ(r.provenance->measured.median_ms, 33.2);
  EXPECT_EQ(r.provenance->measured.p90_ms, 35.0);
  EXPECT_EQ(r.provenance->measured.ci95_items_per_s, std::make_pair(29.5, 30.6));
  EXPECT_EQ(r.provenance->objective, Objective::kP90);
  EXPECT_EQ(r.provenance->latency_bound_ms, 40.0);
  EXPECT_EQ(r.provenance->max_accuracy_loss, 0.01);
  EXPECT_EQ(r.provenance->measured.accuracy_loss, 0.0625);
  EXPECT_EQ(r.provenance->measured.p99_ms, 37.5);
  EXPECT_EQ(r.provenance->measured.ci95_latency_ms, std::make_pair(34.5, 35.25));
  EXPECT_EQ(r.provenance->vs_stock, 1.4);
}

TEST_F(RecipeYamlTest, DoublesRoundTripBitForBit) {
  Recipe recipe;
  recipe.workload.name = "resnet50";
  Provenance p;
  p.measured.items_per_s = 0.1 + 0.2;  // 0.30000000000000004
  p.measured.median_ms = 1.0 / 3.0;
  p.measured.p90_ms = 4.9406564584124654e-324;  // smallest subnormal
  p.measured.ci95_items_per_s = std::make_pair(-0.0, 1.7976931348623157e308);
  p.vs_stock = 123456789.12345678;
  recipe.provenance = p;
  const std::string path = Path("d.yaml");
  SaveRecipe(recipe, path);
  const Provenance back = *LoadRecipe(path).provenance;
  EXPECT_EQ(back.measured.items_per_s, p.measured.items_per_s);
  EXPECT_EQ(back.measured.median_ms, p.measured.median_ms);
  EXPECT_EQ(back.measured.p90_ms, p.measured.p90_ms);
  EXPECT_EQ(back.measured.ci95_items_per_s, p.measured.ci95_items_per_s);
  EXPECT_TRUE(std::signbit(back.measured.ci95_items_per_s->first));
  EXPECT_EQ(back.vs_stock, p.vs_stock);
  EXPECT_NE(ReadFile(path).find("items_per_s: 0.30000000000000004\n"), std::string::npos);
}

TEST_F(RecipeYamlTest, StringsThatLookLikeOtherTypesAreQuotedAndRoundTrip) {
  Recipe recipe;
  recipe.workload.name = "yes";
  recipe.workload.model_sha256 = "1.0";
  recipe.machine.fingerprint = "null";
  recipe.machine.cpu = "a: b # c";
  recipe.machine.isa = {"true", "~", "0x1F", "Off", ".inf", "-", "line\nbreak", "tab\tand \"q\""};
  recipe.optimize.fusions = {"conv_relu", "123"};
  recipe.runtime.env = {{"Y", ""}, {"N", "no"}, {"OMP_NUM_THREADS", "4"}};
  const std::string text = ToYaml(recipe);
  EXPECT_NE(text.find("  name: \"yes\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  model_sha256: \"1.0\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  fingerprint: \"null\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    - \"true\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    - conv_relu\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    - \"123\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    \"Y\": \"\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    OMP_NUM_THREADS: \"4\"\n"), std::string::npos) << text;

  const Recipe back = ParseRecipe(text, "q.yaml");
  EXPECT_EQ(back.workload.name, "yes");
  EXPECT_EQ(back.workload.model_sha256, "1.0");
  EXPECT_EQ(back.machine.fingerprint, "null");
  EXPECT_EQ(back.machine.cpu, "a: b # c");
  EXPECT_EQ(back.machine.isa, recipe.machine.isa);
  EXPECT_EQ(back.optimize.fusions, recipe.optimize.fusions);
  EXPECT_EQ(back.runtime.env, recipe.runtime.env);
  EXPECT_EQ(ToYaml(back), text);
}

TEST_F(RecipeYamlTest, MissingSectionsTakeTheDefaults) {
  const Recipe r = LoadRecipe(WriteFile("min.yaml", kHead));
  const Recipe d;
  EXPECT_EQ(r.workload.name, "resnet50");
  EXPECT_EQ(r.workload.model_path, "");
  EXPECT_EQ(r.workload.model_sha256, "");
  EXPECT_EQ(r.workload.batch, 1);
  EXPECT_FALSE(r.workload.seq_len.has_value());
  EXPECT_TRUE(r.workload.inputs.empty());
  EXPECT_EQ(r.machine.fingerprint, "");
  EXPECT_TRUE(r.machine.isa.empty());
  EXPECT_EQ(r.machine.cores, 0);
  EXPECT_EQ(r.optimize.freeze, d.optimize.freeze);
  EXPECT_EQ(r.optimize.optimize_for_inference, d.optimize.optimize_for_inference);
  EXPECT_EQ(r.optimize.fold_conv_bn, d.optimize.fold_conv_bn);
  EXPECT_EQ(r.optimize.fold_linear_bn, d.optimize.fold_linear_bn);
  EXPECT_EQ(r.optimize.fusions, d.optimize.fusions);  // every fusion of the core
  EXPECT_EQ(r.optimize.weight_prepack, d.optimize.weight_prepack);
  EXPECT_EQ(r.optimize.memory_format, MemoryFormat::kAuto);
  EXPECT_EQ(r.precision.dtype, Dtype::kFp32);
  EXPECT_FALSE(r.precision.calibration.has_value());
  EXPECT_TRUE(r.precision.fallback.empty());
  EXPECT_EQ(r.runtime.threads, 0);
  EXPECT_EQ(r.runtime.streams, 1);
  EXPECT_EQ(r.runtime.instances, 1);
  EXPECT_EQ(ToYaml(r).find("instances"), std::string::npos) << "one process: not written";
  EXPECT_EQ(r.runtime.cores_per_stream, 0);
  EXPECT_EQ(r.runtime.binding, Binding::kCompact);
  EXPECT_EQ(r.runtime.allocator, Allocator::kDefault);
  EXPECT_TRUE(r.runtime.env.empty());
  EXPECT_FALSE(r.provenance.has_value());
  EXPECT_EQ(ToYaml(r), kMinimalYaml);
  EXPECT_EQ(ToYaml(ParseRecipe(kMinimalYaml, "m.yaml")), kMinimalYaml);
}

TEST_F(RecipeYamlTest, PartialSectionsKeepTheOtherDefaults) {
  const Recipe r = ParseRecipe(std::string(kHead) +
                                   "optimize: {fusions: [conv_relu]}\n"
                                   "runtime:\n"
                                   "  streams: 2\n"
                                   "  instances: 3\n"
                                   "provenance:\n"
                                   "  trial: 3\n",
                               "p.yaml");
  EXPECT_EQ(r.optimize.fusions, std::vector<std::string>{"conv_relu"});
  EXPECT_TRUE(r.optimize.freeze);
  EXPECT_EQ(r.runtime.streams, 2);
  EXPECT_EQ(r.runtime.instances, 3);
  EXPECT_EQ(ParseRecipe(ToYaml(r), "again.yaml").runtime.instances, 3);
  EXPECT_EQ(r.runtime.binding, Binding::kCompact);
  ASSERT_TRUE(r.provenance.has_value());
  EXPECT_EQ(r.provenance->trial, 3);
  EXPECT_EQ(r.provenance->study, 0);
  EXPECT_FALSE(r.provenance->measured.ci95_items_per_s.has_value());
  EXPECT_FALSE(r.provenance->vs_stock.has_value());
  EXPECT_FALSE(r.provenance->max_accuracy_loss.has_value()) << "written before accuracy targets";
  EXPECT_FALSE(r.provenance->measured.accuracy_loss.has_value());
}

TEST_F(RecipeYamlTest, FlowStyleInputIsAccepted) {
  const Recipe r = ParseRecipe(
      "schema: ipex-tune/recipe/v1\n"
      "workload: {name: model, model_path: m.pt, batch: 4, inputs: [{name: x, shape: [4, 3, "
      "224, 224]}]}\n"
      "runtime: {threads: 2, env: {OMP_WAIT_POLICY: PASSIVE, KMP_BLOCKTIME: 1}}\n",
      "f.yaml");
  ASSERT_EQ(r.workload.inputs.size(), 1u);
  EXPECT_EQ(r.workload.inputs[0].shape, (std::vector<int64_t>{4, 3, 224, 224}));
  EXPECT_EQ(r.workload.inputs[0].dtype, "float32");
  EXPECT_EQ(r.runtime.env.at("KMP_BLOCKTIME"), "1");
}

TEST_F(RecipeYamlTest, Int8WithoutCalibrationGetsTheDefaultOne) {
  const Recipe r = ParseRecipe(std::string(kHead) + "precision: {dtype: int8}\n", "i.yaml");
  ASSERT_TRUE(r.precision.calibration.has_value());
  EXPECT_EQ(r.precision.calibration->algorithm, "minmax");
  EXPECT_EQ(r.precision.calibration->samples, 32);
  EXPECT_NE(ToYaml(r).find("  calibration:\n    algorithm: minmax\n    samples: 32\n"),
            std::string::npos);

  const Recipe dyn =
      ParseRecipe(std::string(kHead) + "precision: {dtype: int8-dynamic}\n", "i.yaml");
  EXPECT_FALSE(dyn.precision.calibration.has_value());
  EXPECT_EQ(ToYaml(dyn).find("calibration"), std::string::npos);
}

TEST_F(RecipeYamlTest, OutputIsDeterministic) {
  Recipe a = FullRecipe();
  Recipe b = FullRecipe();
  // Same content built in another order.
  b.runtime.env.clear();
  b.runtime.env["OMP_WAIT_POLICY"] = "PASSIVE";
  b.runtime.env["MALLOC_CONF"] = "oversize_threshold:1,background_thread:true";
  EXPECT_EQ(ToYaml(a), ToYaml(a));
  EXPECT_EQ(ToYaml(a), ToYaml(b));
  SaveRecipe(a, Path("a.yaml"));
  SaveRecipe(b, Path("b.yaml"));
  EXPECT_EQ(ReadFile(Path("a.yaml")), ReadFile(Path("b.yaml")));
  // A loaded recipe writes back the bytes it was read from.
  SaveRecipe(LoadRecipe(Path("a.yaml")), Path("c.yaml"));
  EXPECT_EQ(ReadFile(Path("c.yaml")), ReadFile(Path("a.yaml")));
}

TEST_F(RecipeYamlTest, SaveIsAtomicAndLeavesNoTemporaryFile) {
  const std::string path = Path("r.yaml");
  WriteFile("r.yaml", "old contents that are not a recipe\n");
  SaveRecipe(FullRecipe(), path);
  EXPECT_EQ(Listing(), std::vector<std::string>{"r.yaml"});
  EXPECT_EQ(ReadFile(path), kFullYaml);

  Recipe small;
  small.workload.name = "resnet50";
  SaveRecipe(small, path);
  EXPECT_EQ(Listing(), std::vector<std::string>{"r.yaml"});
  EXPECT_EQ(ReadFile(path), kMinimalYaml);
}

TEST_F(RecipeYamlTest, SaveIntoAMissingDirectoryIsAnIoErrorNamingThePath) {
  const std::string path = Path("no/such/dir/r.yaml");
  try {
    SaveRecipe(FullRecipe(), path);
    FAIL() << "saved into a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(Listing().empty());
}

TEST_F(RecipeYamlTest, SaveOverADirectoryFailsAndCleansUp) {
  fs::create_directory(Path("taken"));
  try {
    SaveRecipe(FullRecipe(), Path("taken"));
    FAIL() << "renamed a file over a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find(Path("taken")), std::string::npos) << e.what();
  }
  EXPECT_EQ(Listing(), std::vector<std::string>{"taken"});
}

TEST_F(RecipeYamlTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = Path("absent.yaml");
  try {
    LoadRecipe(path);
    FAIL() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(std::string(e.what()), "recipe file '" + path + "' does not exist");
  }
}

TEST_F(RecipeYamlTest, UnreadableFileIsAnIoError) {
  // A directory opens but cannot be read, even for root.
  try {
    LoadRecipe(dir_.string());
    FAIL() << "loaded a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
  }
}

TEST_F(RecipeYamlTest, LoadErrorsNameTheFileAndLine) {
  const std::string path = WriteFile("bad.yaml", std::string(kHead) + "  batch: 0\n");
  try {
    LoadRecipe(path);
    FAIL() << "accepted batch 0";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), path + ":4: workload.batch: must be >= 1, got 0");
  }
}

TEST_F(RecipeYamlTest, SyntaxErrorReportsItsLine) {
  const std::string path = WriteFile("syntax.yaml", std::string(kHead) + " batch: 1\n");
  try {
    LoadRecipe(path);
    FAIL() << "accepted bad indentation";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), path + ":4: YAML syntax error: end of map not found");
  }
  EXPECT_EQ(ParseError("schema: ipex-tune/recipe/v1\nworkload: {name: x}\nmachine: [a, b\n"),
            "r.yaml:4: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(ParseError(std::string(kHead) + "machine: *undefined\n"),
            "r.yaml:4: YAML syntax error: the referenced anchor is not defined");
}

struct BadCase {
  const char* what;
  std::string text;
  std::string message;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.what; }

class RecipeRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(RecipeRejectTest, MessageNamesLineAndKeyPath) {
  EXPECT_EQ(ParseError(GetParam().text), GetParam().message) << GetParam().text;
}

const std::string kH = kHead;

// Test names say which case failed: Ranges/RecipeRejectTest.MessageNamesLineAndKeyPath/streams.
std::string CaseName(const ::testing::TestParamInfo<BadCase>& info) {
  std::string name;
  for (const char c : std::string(info.param.what)) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Documents, RecipeRejectTest,
    ::testing::Values(
        BadCase{"empty", "",
                "r.yaml:1: empty document; expected a recipe with schema: "
                "ipex-tune/recipe/v1"},
        BadCase{"comment only", "# nothing here\n",
                "r.yaml:1: empty document; expected a recipe with schema: ipex-tune/recipe/v1"},
        BadCase{"bare separator", "---\n",
                "r.yaml:1: empty document; expected a recipe with schema: ipex-tune/recipe/v1"},
        BadCase{"top-level list", "- schema\n- workload\n",
                "r.yaml:1: expected a map at the top level, got a list"},
        BadCase{"top-level scalar", "\n\nrecipe\n",
                "r.yaml:3: expected a map at the top level, got 'recipe'"},
        BadCase{"two documents", kH + "---\n" + kH,
                "r.yaml:5: expected one recipe, found 2 YAML documents"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Schema, RecipeRejectTest,
    ::testing::Values(
        BadCase{"wrong schema", "schema: ipex-tune/recipe/v2\nworkload: {name: x}\n",
                "r.yaml:1: schema: unsupported schema 'ipex-tune/recipe/v2'; expected "
                "'ipex-tune/recipe/v1'"},
        // A future version's keys must not hide the real problem.
        BadCase{"wrong schema before unknown keys",
                "stages: []\nschema: ipex-tune/recipe/v2\nworkload: {name: x}\n",
                "r.yaml:2: schema: unsupported schema 'ipex-tune/recipe/v2'; expected "
                "'ipex-tune/recipe/v1'"},
        BadCase{"missing schema", "# a recipe\nworkload: {name: x}\n",
                "r.yaml:2: schema: required key is missing; expected 'ipex-tune/recipe/v1'"},
        BadCase{"schema not a string", "schema: [ipex-tune/recipe/v1]\nworkload: {name: x}\n",
                "r.yaml:1: schema: expected a string, got a list"},
        BadCase{"missing workload", "schema: ipex-tune/recipe/v1\nmachine: {cores: 2}\n",
                "r.yaml:1: workload: required key is missing"},
        BadCase{"missing workload name", "schema: ipex-tune/recipe/v1\nworkload:\n  batch: 2\n",
                "r.yaml:2: workload.name: required key is missing"},
        BadCase{"empty workload name", "schema: ipex-tune/recipe/v1\nworkload:\n  name: ''\n",
                "r.yaml:3: workload.name: must not be empty"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    UnknownKeys, RecipeRejectTest,
    ::testing::Values(
        BadCase{"top level", kH + "runtim:\n  threads: 2\n",
                "r.yaml:4: runtim: unknown key; allowed keys are schema, workload, machine, "
                "optimize, precision, runtime, provenance"},
        BadCase{"workload", kH + "  bacth: 8\n",
                "r.yaml:4: workload.bacth: unknown key; allowed keys are name, model_path, "
                "model_sha256, batch, seq_len, inputs"},
        BadCase{"input", kH + "  inputs:\n    - name: x\n      shape: [1, 3]\n      layout: nchw\n",
                "r.yaml:7: workload.inputs[0].layout: unknown key; allowed keys are name, shape, "
                "dtype"},
        BadCase{"machine", kH + "machine: {cores: 2, sockets: 1}\n",
                "r.yaml:4: machine.sockets: unknown key; allowed keys are fingerprint, cpu, isa, "
                "cores"},
        BadCase{"optimize", kH + "optimize:\n  freeze: true\n  jit: true\n",
                "r.yaml:6: optimize.jit: unknown key; allowed keys are freeze, "
                "optimize_for_inference, fold_conv_bn, fold_linear_bn, fusions, weight_prepack, "
                "memory_format"},
        BadCase{"calibration",
                kH + "precision:\n  dtype: int8\n  calibration:\n    algorithm: minmax\n"
                     "    bins: 99\n",
                "r.yaml:8: precision.calibration.bins: unknown key; allowed keys are "
                "algorithm, samples, averaging_constant, percentile"},
        BadCase{"runtime", kH + "runtime:\n  threads: 2\n  numa: 0\n",
                "r.yaml:6: runtime.numa: unknown key; allowed keys are instances, threads, "
                "streams, cores_per_stream, micro_batch, binding, allocator, env, split"},
        BadCase{"measured",
                kH + "provenance:\n  study: 1\n  measured:\n    items_per_s: 1.5\n    p95_ms: 3\n",
                "r.yaml:8: provenance.measured.p95_ms: unknown key; allowed keys are "
                "items_per_s, median_ms, p90_ms, p99_ms, ci95_items_per_s, ci95_latency_ms, "
                "accuracy_loss"},
        BadCase{"objective", kH + "provenance:\n  objective: p95\n",
                "r.yaml:5: provenance.objective: 'p95' is not one of throughput, p50, p90, p99"},
        BadCase{"latency bound", kH + "provenance:\n  latency_bound_ms: 0\n",
                "r.yaml:5: provenance.latency_bound_ms: must be > 0"},
        BadCase{"accuracy target", kH + "provenance:\n  max_accuracy_loss: 1.5\n",
                "r.yaml:5: provenance.max_accuracy_loss: must be between 0 and 1"},
        BadCase{"measured accuracy loss",
                kH + "provenance:\n  measured:\n    accuracy_loss: -0.1\n",
                "r.yaml:6: provenance.measured.accuracy_loss: must be between 0 and 1"},
        BadCase{"duplicate", kH + "  batch: 1\n  batch: 2\n",
                "r.yaml:5: workload.batch: duplicate key"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    WrongTypes, RecipeRejectTest,
    ::testing::Values(
        BadCase{"string for integer", kH + "  batch: eight\n",
                "r.yaml:4: workload.batch: expected an integer, got 'eight'"},
        BadCase{"quoted integer", kH + "  batch: \"8\"\n",
                "r.yaml:4: workload.batch: expected an integer, got the quoted string '8'"},
        BadCase{"fraction for integer", kH + "  seq_len: 1.5\n",
                "r.yaml:4: workload.seq_len: expected an integer, got '1.5'"},
        BadCase{"empty value", kH + "  batch:\nmachine: {}\n",
                "r.yaml:4: workload.batch: expected an integer, got null"},
        BadCase{"map for list", kH + "optimize:\n  fusions:\n    conv_relu: true\n",
                "r.yaml:5: optimize.fusions: expected a list, got a map"},
        BadCase{"list for map", kH + "runtime: [1, 2]\n",
                "r.yaml:4: runtime: expected a map, got a list"},
        BadCase{"scalar for section", kH + "precision: int8\n",
                "r.yaml:4: precision: expected a map, got 'int8'"},
        BadCase{"map in string list", kH + "optimize:\n  fusions: [conv_relu, {linear: gelu}]\n",
                "r.yaml:5: optimize.fusions[1]: expected a string, got a map"},
        BadCase{"list for string", kH + "machine:\n  cpu: [a, b]\n",
                "r.yaml:5: machine.cpu: expected a string, got a list"},
        BadCase{"bad boolean", kH + "optimize:\n  freeze: maybe\n",
                "r.yaml:5: optimize.freeze: expected true or false, got 'maybe'"},
        BadCase{"bad number", kH + "provenance:\n  vs_stock: fast\n",
                "r.yaml:5: provenance.vs_stock: expected a number, got 'fast'"},
        BadCase{"infinite number", kH + "provenance:\n  measured: {median_ms: .inf}\n",
                "r.yaml:5: provenance.measured.median_ms: must be a finite number, got '.inf'"},
        BadCase{"interval of three",
                kH + "provenance:\n  measured:\n    ci95_items_per_s: [1, 2, 3]\n",
                "r.yaml:6: provenance.measured.ci95_items_per_s: expected [low, high], got 3 "
                "items"},
        BadCase{"shape as string", kH + "  inputs: [{name: x, shape: 1x3x224x224}]\n",
                "r.yaml:4: workload.inputs[0].shape: expected a list, got '1x3x224x224'"},
        BadCase{"input without shape", kH + "  inputs:\n    - name: x\n",
                "r.yaml:5: workload.inputs[0].shape: required key is missing"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Enums, RecipeRejectTest,
    ::testing::Values(
        BadCase{"dtype", kH + "machine:\n  cores: 2\nprecision:\n  dtype: fp16\n",
                "r.yaml:7: precision.dtype: 'fp16' is not one of fp32, bf16, int8, int8-dynamic"},
        BadCase{"memory format", kH + "optimize: {memory_format: nhwc}\n",
                "r.yaml:4: optimize.memory_format: 'nhwc' is not one of auto, contiguous, "
                "channels_last, blocked"},
        BadCase{"binding", kH + "runtime:\n  binding: spread\n",
                "r.yaml:5: runtime.binding: 'spread' is not one of none, compact, scatter"},
        BadCase{"allocator", kH + "runtime:\n  allocator: mimalloc\n",
                "r.yaml:5: runtime.allocator: 'mimalloc' is not one of default, jemalloc, "
                "tcmalloc"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Ranges, RecipeRejectTest,
    ::testing::Values(
        BadCase{"batch", kH + "  batch: 0\n", "r.yaml:4: workload.batch: must be >= 1, got 0"},
        BadCase{"seq_len", kH + "  seq_len: -5\n",
                "r.yaml:4: workload.seq_len: must be >= 1, got -5"},
        BadCase{"shape dim", kH + "  inputs:\n    - name: x\n      shape: [1, 0, 224]\n",
                "r.yaml:6: workload.inputs[0].shape[1]: must be >= 1, got 0"},
        BadCase{"cores", kH + "machine: {cores: -1}\n",
                "r.yaml:4: machine.cores: must be >= 0, got -1"},
        BadCase{"threads", kH + "runtime:\n  threads: -1\n",
                "r.yaml:5: runtime.threads: must be >= 0, got -1"},
        BadCase{"streams", kH + "runtime:\n  threads: 2\n  streams: 0\n",
                "r.yaml:6: runtime.streams: must be >= 1, got 0"},
        BadCase{"instances", kH + "runtime:\n  instances: 0\n",
                "r.yaml:5: runtime.instances: must be >= 1, got 0"},
        BadCase{"cores_per_stream", kH + "runtime:\n  cores_per_stream: -2\n",
                "r.yaml:5: runtime.cores_per_stream: must be >= 0, got -2"},
        BadCase{"micro_batch", kH + "runtime:\n  micro_batch: -1\n",
                "r.yaml:5: runtime.micro_batch: must be >= 0, got -1"},
        BadCase{"calibration samples",
                kH + "precision:\n  dtype: int8\n  calibration:\n    samples: 0\n",
                "r.yaml:7: precision.calibration.samples: must be >= 1, got 0"},
        BadCase{"integer overflow", kH + "  batch: 99999999999999999999\n",
                "r.yaml:4: workload.batch: expected an integer, got '99999999999999999999'"},
        BadCase{"interval upside down",
                kH + "provenance:\n  measured: {ci95_items_per_s: [3, 2]}\n",
                "r.yaml:5: provenance.measured.ci95_items_per_s: low bound exceeds high bound"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Consistency, RecipeRejectTest,
    ::testing::Values(
        BadCase{"percentile out of range",
                kH + "precision:\n  dtype: int8\n  calibration: {algorithm: percentile, "
                     "percentile: 120}\n",
                "r.yaml:6: precision.calibration.percentile: must be in (0, 100]"},
        BadCase{"qparams with fp32", kH + "precision:\n  qparams: {graph: abc}\n",
                "r.yaml:5: precision.qparams: only allowed when dtype is int8, not fp32"},
        BadCase{"auto_fallback with bf16",
                kH + "precision:\n  dtype: bf16\n  auto_fallback: 0.01\n",
                "r.yaml:6: precision.auto_fallback: only allowed when dtype is int8 or "
                "int8-dynamic, not bf16"},
        BadCase{"auto_fallback out of range",
                kH + "precision:\n  dtype: int8\n  auto_fallback: 1.5\n",
                "r.yaml:6: precision.auto_fallback: must be an accuracy loss in [0, 1)"},
        BadCase{"qparams without graph",
                kH + "precision:\n  dtype: int8\n  qparams:\n    inputs: {}\n",
                "r.yaml:6: precision.qparams: needs the graph digest it was calibrated for"},
        BadCase{"qparams scale",
                kH + "precision:\n  dtype: int8\n  qparams:\n    graph: abc\n    inputs:\n"
                     "      conv2d.0: {scale: 0, zero_point: 0, qmax: 255}\n",
                "r.yaml:9: precision.qparams.inputs.conv2d.0.scale: must be positive"},
        BadCase{"qparams qmax",
                kH + "precision:\n  dtype: int8\n  qparams:\n    graph: abc\n    inputs:\n"
                     "      conv2d.0: {scale: 1, zero_point: 0, qmax: 100}\n",
                "r.yaml:9: precision.qparams.inputs.conv2d.0: qmax must be 127 or 255"},
        BadCase{"qparams accumulator zero point",
                kH + "precision:\n  dtype: int8\n  qparams:\n    graph: abc\n    accumulators:\n"
                     "      conv2d.0: {scale: 1, zero_point: 200, qmax: 127}\n",
                "r.yaml:9: precision.qparams.accumulators.conv2d.0: zero_point is above qmax"},
        BadCase{"smooth_quant with int8-dynamic",
                kH + "precision:\n  dtype: int8-dynamic\n  smooth_quant: {alpha: 0.5}\n",
                "r.yaml:6: precision.smooth_quant: only allowed when dtype is int8, not "
                "int8-dynamic"},
        BadCase{"fallback_dtype with bf16",
                kH + "precision:\n  dtype: bf16\n  fallback_dtype: bf16\n",
                "r.yaml:6: precision.fallback_dtype: only allowed when dtype is int8 or "
                "int8-dynamic, not bf16"},
        BadCase{"fallback_dtype int8",
                kH + "precision:\n  dtype: int8\n  fallback_dtype: int8-dynamic\n",
                "r.yaml:6: precision.fallback_dtype: must be fp32 or bf16, not int8-dynamic"},
        BadCase{"smooth_quant alpha",
                kH + "precision:\n  dtype: int8\n  smooth_quant: {alpha: 1.5}\n",
                "r.yaml:6: precision.smooth_quant.alpha: must be in [0, 1]"},
        BadCase{"smooth_quant unknown key",
                kH + "precision:\n  dtype: int8\n  smooth_quant: {beta: 0.5}\n",
                "r.yaml:6: precision.smooth_quant.beta: unknown key; allowed keys are alpha"},
        BadCase{"qparams smoothing factor",
                kH + "precision:\n  dtype: int8\n  qparams:\n    graph: abc\n    smoothing:\n"
                     "      linear.0: [1.5, -2]\n",
                "r.yaml:9: precision.qparams.smoothing.linear.0[1]: a smoothing factor must be "
                "positive"},
        BadCase{"qparams smoothing empty",
                kH + "precision:\n  dtype: int8\n  qparams:\n    graph: abc\n    smoothing:\n"
                     "      linear.0: []\n",
                "r.yaml:9: precision.qparams.smoothing.linear.0: needs a factor per input feature"},
        BadCase{"calibration with bf16",
                kH + "precision:\n  dtype: bf16\n  calibration:\n    samples: 8\n",
                "r.yaml:6: precision.calibration: only allowed when dtype is int8, not bf16"},
        BadCase{"calibration with default dtype", kH + "precision:\n  calibration: {samples: 8}\n",
                "r.yaml:5: precision.calibration: only allowed when dtype is int8, not fp32"},
        // Key order in the file does not matter: dtype is read before calibration is judged.
        BadCase{"calibration before int8-dynamic",
                kH + "precision:\n  calibration: {samples: 8}\n  dtype: int8-dynamic\n",
                "r.yaml:5: precision.calibration: only allowed when dtype is int8, not "
                "int8-dynamic"},
        BadCase{"duplicate input name",
                kH + "  inputs:\n    - {name: x, shape: [1]}\n    - {name: x, shape: [2]}\n",
                "r.yaml:6: workload.inputs[1]: duplicate input name 'x'"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Env, RecipeRejectTest,
    ::testing::Values(
        BadCase{"list value",
                kH + "runtime:\n  env:\n    OMP_WAIT_POLICY: PASSIVE\n    KMP_AFFINITY: [a, b]\n",
                "r.yaml:7: runtime.env.KMP_AFFINITY: must be a scalar, got a list"},
        BadCase{"map value", kH + "runtime:\n  env:\n    MALLOC_CONF:\n      narenas: 1\n",
                "r.yaml:6: runtime.env.MALLOC_CONF: must be a scalar, got a map"},
        BadCase{"empty value", kH + "runtime:\n  env:\n    OMP_WAIT_POLICY:\n",
                "r.yaml:6: runtime.env.OMP_WAIT_POLICY: must be a scalar, got null"},
        BadCase{"leading digit", kH + "runtime:\n  env:\n    1THREADS: x\n",
                "r.yaml:6: runtime.env.1THREADS: not an environment variable name (expected "
                "[A-Za-z_][A-Za-z0-9_]*)"},
        BadCase{"dash", kH + "runtime:\n  env: {OMP-WAIT: x}\n",
                "r.yaml:5: runtime.env.OMP-WAIT: not an environment variable name (expected "
                "[A-Za-z_][A-Za-z0-9_]*)"},
        BadCase{"env not a map", kH + "runtime:\n  env: [OMP_WAIT_POLICY=PASSIVE]\n",
                "r.yaml:5: runtime.env: expected a map, got a list"}),
    CaseName);

INSTANTIATE_TEST_SUITE_P(
    Split, RecipeRejectTest,
    ::testing::Values(
        BadCase{"unknown kind", kH + "runtime:\n  split:\n    - {kind: rows}\n",
                "r.yaml:6: runtime.split[0].kind: 'rows' is not one of dim, replicate, "
                "bag_indices, bag_offsets"},
        BadCase{"missing kind", kH + "runtime:\n  split:\n    - {dim: 1}\n",
                "r.yaml:6: runtime.split[0].kind: required key is missing"},
        BadCase{"negative dim", kH + "runtime:\n  split:\n    - {kind: dim, dim: -1}\n",
                "r.yaml:6: runtime.split[0].dim: must be >= 0, got -1"},
        BadCase{"dim on replicate", kH + "runtime:\n  split:\n    - {kind: replicate, dim: 0}\n",
                "r.yaml:6: runtime.split[0].dim: only a split of kind dim takes a dim"},
        BadCase{"indices without offsets", kH + "runtime:\n  split:\n    - {kind: bag_indices}\n",
                "r.yaml:6: runtime.split[0].offsets: required key is missing"},
        BadCase{"offsets not an offsets input",
                kH + "runtime:\n  split:\n    - {kind: bag_indices, offsets: 1}\n"
                     "    - {kind: dim}\n",
                "r.yaml:6: runtime.split[0]: offsets: 1 is not the position of a bag_offsets "
                "input of this split"}),
    CaseName);

}  // namespace
}  // namespace ipt::recipes

namespace ipt::recipes {
namespace {

TEST(RecipeAutoFallbackTest, RoundTripsAndIsWrittenOnlyWhenSet) {
  Recipe r;
  r.workload.name = "resnet50";
  r.precision.dtype = Dtype::kInt8Dynamic;
  EXPECT_EQ(ToYaml(r).find("auto_fallback"), std::string::npos);
  r.precision.auto_fallback = 0.015;
  const std::string text = ToYaml(r);
  EXPECT_NE(text.find("auto_fallback: 0.015"), std::string::npos) << text;
  Recipe back = ParseRecipe(text, "r.yaml");
  ASSERT_TRUE(back.precision.auto_fallback.has_value());
  EXPECT_EQ(*back.precision.auto_fallback, 0.015);
}

TEST(InputSpecTest, ParsesWhatUsersType) {
  InputSpec s = ParseInputSpec("x:1x3x224x224:float32");
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(s.shape, (std::vector<int64_t>{1, 3, 224, 224}));
  EXPECT_EQ(s.dtype, "float32");
  EXPECT_EQ(ParseInputSpec("ids:8x128:int64").dtype, "int64");
  EXPECT_EQ(ParseInputSpec("y:4").dtype, "float32");
  EXPECT_EQ(FormatInputSpec(ParseInputSpec("ids:8x128:int64")), "ids:8x128:int64");
}

TEST(InputSpecTest, RejectsMalformedSpecsSayingWhichPart) {
  auto message = [](const std::string& text) {
    try {
      ParseInputSpec(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("x").find("wrong number"), std::string::npos);
  EXPECT_NE(message(":1x3").find("name is empty"), std::string::npos);
  EXPECT_NE(message("x:1x0x3").find("dimension '0'"), std::string::npos);
  EXPECT_NE(message("x:1xx3").find("dimension ''"), std::string::npos);
  EXPECT_NE(message("x:1x3:float16").find("dtype 'float16'"), std::string::npos);
  EXPECT_NE(message("x:1:float32:extra").find("wrong number"), std::string::npos);
}

TEST(InputSpecTest, RecipeInputDtypeIsValidated) {
  try {
    ParseRecipe(
        "schema: ipex-tune/recipe/v1\nworkload:\n  name: model\n  inputs:\n"
        "    - {name: x, shape: [1, 3], dtype: half}\n",
        "r.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml:5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'half'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipt::recipes
