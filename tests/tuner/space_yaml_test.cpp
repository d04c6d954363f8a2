// Search-space YAML and the model behind it: parsing real files, every rejection with the line
// and key a user would be shown, conditional dimensions, constraint expressions, pruning for a
// machine and enumeration in grid order.
#include "tuner/space_yaml.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"

namespace ipt::tuner {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kExample = R"(schema: ipex-tune/space/v1
dimensions:
  dtype: [fp32, bf16, int8]
  threads: {range: [1, 2]}            # integer range, inclusive, optional step
  calibration: {values: [minmax, histogram], when: {dtype: int8}}   # conditional
  streams: [1, 2]
  cores_per_stream: {values: [1, 2], constraint: "streams * cores_per_stream <= cpus"}
)";

class SpaceYamlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("ipt_space_test." + std::to_string(::getpid()) + "." + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // The message of the kInvalidArgument error that loading `text` from a file throws, with the
  // directory taken off so expectations read "space.yaml:3: ...".
  std::string LoadError(const std::string& text) const {
    const std::string path = Write("space.yaml", text);
    try {
      LoadSpace(path);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      std::string message = e.what();
      const std::string prefix = dir_.string() + "/";
      if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
      return message;
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return "";
  }

  fs::path dir_;
};

std::string Space(const std::string& dimensions) {
  return "schema: ipex-tune/space/v1\ndimensions:\n" + dimensions;
}

TEST_F(SpaceYamlTest, ParsesTheDocumentedExample) {
  const SpaceDefinition space = LoadSpace(Write("space.yaml", kExample));
  ASSERT_EQ(space.dimensions.size(), 5u);
  EXPECT_EQ(space.dimensions[0].name, "dtype");
  EXPECT_EQ(space.dimensions[0].values, (std::vector<json>{"fp32", "bf16", "int8"}));
  EXPECT_EQ(space.dimensions[1].name, "threads");
  EXPECT_EQ(space.dimensions[1].values, (std::vector<json>{1, 2}));
  EXPECT_FALSE(space.dimensions[1].when);
  ASSERT_TRUE(space.dimensions[2].when);
  EXPECT_EQ(space.dimensions[2].when->first, "dtype");
  EXPECT_EQ(space.dimensions[2].when->second, (std::vector<json>{"int8"}));
  EXPECT_EQ(space.dimensions[2].values, (std::vector<json>{"minmax", "histogram"}));
  EXPECT_EQ(space.constraints, (std::vector<std::string>{"streams * cores_per_stream <= cpus"}));

  const json j = space.ToJson();
  EXPECT_EQ(j["schema"], "ipex-tune/space/v1");
  EXPECT_EQ(j["dimensions"][2]["when"], json({{"dimension", "dtype"}, {"values", {"int8"}}}));
  EXPECT_EQ(j, ParseSpace(kExample, "again").ToJson());
}

TEST_F(SpaceYamlTest, ParsesEveryDimensionKind) {
  const SpaceDefinition space = ParseSpace(Space(R"(  dtype: [fp32, int8, int8-dynamic]
  calibration: {values: [histogram], when: {dtype: int8}}
  calibration_samples: {range: [32, 128], step: 32, when: {calibration: histogram}}
  binding: [none, compact, scatter]
  allocator: [default, jemalloc, tcmalloc]
  memory_format: [auto, contiguous, channels_last]
  batch: [1, 8]
  fusions: [[], [linear_gelu], [linear_gelu, add_layernorm]]
constraints:
  - "batch <= 4 or calibration_samples >= 64"
)"),
                                           "s.yaml");
  ASSERT_EQ(space.dimensions.size(), 8u);
  EXPECT_EQ(space.dimensions[2].values, (std::vector<json>{32, 64, 96, 128}));
  EXPECT_EQ(space.dimensions[2].when->second, (std::vector<json>{"histogram"}));
  EXPECT_EQ(space.dimensions[7].values[0], json::array());
  EXPECT_EQ(space.dimensions[7].values[2], json({"linear_gelu", "add_layernorm"}));
  EXPECT_EQ(space.constraints.size(), 1u);
}

TEST_F(SpaceYamlTest, RejectsWithLineAndKey) {
  EXPECT_EQ(LoadError("schema: ipex-tune/space/v1\ndimensions:\n  dtype: [fp32]\nstrategy: tpe\n"),
            "space.yaml:4: strategy: unknown key; allowed keys are schema, dimensions, "
            "constraints");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  thread: [1]\n")),
            "space.yaml:4: dimensions.thread: unknown dimension; known: dtype, threads, "
            "calibration, calibration_samples, streams, cores_per_stream, instances, micro_batch, "
            "binding, allocator, omp_wait_policy, batch, memory_format, fusions, auto_fallback, "
            "smooth_quant, fallback_dtype");
  EXPECT_EQ(LoadError(Space("  dtype: [int8]\n  fallback_dtype: [fp32, fp16]\n")),
            "space.yaml:4: dimensions.fallback_dtype[1]: 'fp16' is not one of fp32, bf16");
  EXPECT_EQ(LoadError(Space("  dtype: [int8]\n  smooth_quant: [off, 1.5]\n")),
            "space.yaml:4: dimensions.smooth_quant[1]: must be off or an alpha in [0, 1]");
  EXPECT_EQ(LoadError(Space("  dtype: [int8]\n  auto_fallback: [off, 2]\n")),
            "space.yaml:4: dimensions.auto_fallback[1]: must be off, target or an accuracy loss in "
            "[0, 1)");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  omp_wait_policy: [passive, spin]\n")),
            "space.yaml:4: dimensions.omp_wait_policy[1]: 'spin' is not one of active, passive");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32,\n          fp16]\n")),
            "space.yaml:4: dimensions.dtype[1]: 'fp16' is not one of fp32, bf16, int8, "
            "int8-dynamic");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  binding: [tight]\n")),
            "space.yaml:4: dimensions.binding[0]: 'tight' is not one of none, compact, scatter");
  EXPECT_EQ(LoadError(Space("  allocator: [mimalloc]\n")),
            "space.yaml:3: dimensions.allocator[0]: 'mimalloc' is not one of default, jemalloc, "
            "tcmalloc");
  EXPECT_EQ(LoadError(Space("  memory_format: [nhwc]\n")),
            "space.yaml:3: dimensions.memory_format[0]: 'nhwc' is not one of auto, contiguous, "
            "channels_last, blocked");
  EXPECT_EQ(LoadError(Space("  threads: [1, 0]\n")),
            "space.yaml:3: dimensions.threads[1]: must be >= 1, got 0");
  EXPECT_EQ(LoadError(Space("  streams: [1, \"2\"]\n")),
            "space.yaml:3: dimensions.streams[1]: expected an integer, got the quoted string "
            "'2'");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  streams: []\n")),
            "space.yaml:4: dimensions.streams: needs at least one value");
  EXPECT_EQ(LoadError(Space("  threads: {values: []}\n")),
            "space.yaml:3: dimensions.threads.values: needs at least one value");
  EXPECT_EQ(LoadError(Space("  batch: [1, 2, 1]\n")),
            "space.yaml:3: dimensions.batch[2]: duplicate value 1");
  EXPECT_EQ(LoadError(Space("  threads: {vals: [1]}\n")),
            "space.yaml:3: dimensions.threads.vals: unknown key; allowed keys are values, "
            "range, step, when, constraint");
  EXPECT_EQ(LoadError(Space("  threads: {}\n")),
            "space.yaml:3: dimensions.threads: needs values or a range");
  EXPECT_EQ(LoadError(Space("  fusions: [linear_gelu]\n")),
            "space.yaml:3: dimensions.fusions[0]: expected a list, got 'linear_gelu'");
  EXPECT_EQ(LoadError("schema: ipex-tune/space/v1\n"),
            "space.yaml:1: dimensions: required key is missing");
  EXPECT_EQ(LoadError("dimensions:\n  dtype: [fp32]\n"),
            "space.yaml:1: schema: required key is missing; expected 'ipex-tune/space/v1'");
  EXPECT_EQ(LoadError("schema: ipex-tune/space/v2\ndimensions: {}\n"),
            "space.yaml:1: schema: unsupported schema 'ipex-tune/space/v2'; expected "
            "'ipex-tune/space/v1'");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  dtype: [bf16]\n")),
            "space.yaml:4: dimensions.dtype: duplicate key");
  EXPECT_EQ(LoadError(""),
            "space.yaml:1: empty document; expected a search space with schema: "
            "ipex-tune/space/v1");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32\n")).rfind("space.yaml:4: YAML syntax error: ", 0), 0u);
}

TEST_F(SpaceYamlTest, RejectsBadRanges) {
  EXPECT_EQ(LoadError(Space("  threads: {range: [4, 2]}\n")),
            "space.yaml:3: dimensions.threads.range: first (4) exceeds last (2)");
  EXPECT_EQ(LoadError(Space("  threads: {range: [0, 2]}\n")),
            "space.yaml:3: dimensions.threads.range[0]: must be >= 1, got 0");
  EXPECT_EQ(LoadError(Space("  threads: {range: [1, 2, 3]}\n")),
            "space.yaml:3: dimensions.threads.range: expected [first, last], got 3 items");
  EXPECT_EQ(LoadError(Space("  threads:\n    range: [1, 8]\n    step: 0\n")),
            "space.yaml:5: dimensions.threads.step: must be >= 1, got 0");
  EXPECT_EQ(LoadError(Space("  threads: {values: [1], step: 2}\n")),
            "space.yaml:3: dimensions.threads.step: a step needs a range");
  EXPECT_EQ(LoadError(Space("  threads: {values: [1], range: [1, 2]}\n")),
            "space.yaml:3: dimensions.threads.range: give either values or range, not both");
  EXPECT_EQ(LoadError(Space("  dtype: {range: [1, 2]}\n")),
            "space.yaml:3: dimensions.dtype.range: a range needs an integer dimension; list the "
            "values of 'dtype'");
  EXPECT_EQ(LoadError(Space("  batch: {range: [1, 100000]}\n")),
            "space.yaml:3: dimensions.batch.range: 100000 values; at most 4096");
}

TEST_F(SpaceYamlTest, RejectsBadConditions) {
  EXPECT_EQ(LoadError(Space("  dtype: [fp32, int8]\n"
                            "  calibration: {values: [minmax], when: {dtyp: int8}}\n")),
            "space.yaml:4: dimensions.calibration.when.dtyp: unknown dimension 'dtyp'");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32, int8]\n"
                            "  calibration: {values: [minmax], when: {dtype: bf16}}\n")),
            "space.yaml:4: dimensions.calibration.when.dtype: 'dtype' never takes bf16 (its "
            "values: fp32, int8)");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32, int8]\n"
                            "  calibration: {values: [minmax], when: {dtype: fp16}}\n")),
            "space.yaml:4: dimensions.calibration.when.dtype: 'fp16' is not one of fp32, bf16, "
            "int8, int8-dynamic");
  EXPECT_EQ(LoadError(Space("  calibration: {values: [minmax], when: {dtype: int8}}\n"
                            "  dtype: [fp32, int8]\n")),
            "space.yaml:3: dimensions.calibration.when.dtype: 'dtype' must be a dimension "
            "declared before 'calibration'");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32, int8]\n"
                            "  threads: [1]\n"
                            "  calibration:\n"
                            "    values: [minmax]\n"
                            "    when: {dtype: int8, threads: 1}\n")),
            "space.yaml:7: dimensions.calibration.when: expected one dimension and its value or "
            "values, e.g. {dtype: int8}");
}

TEST_F(SpaceYamlTest, RejectsConstraintsThatDoNotParse) {
  EXPECT_EQ(LoadError(Space("  streams: [1, 2]\n"
                            "  cores_per_stream:\n"
                            "    values: [1, 2]\n"
                            "    constraint: \"streams * <= cpus\"\n")),
            "space.yaml:6: dimensions.cores_per_stream.constraint: does not parse: expected an "
            "operand, found '<=' at column 11");
  EXPECT_EQ(LoadError(Space("  dtype: [fp32]\n  streams: [1, 2]\n"
                            "constraints: [\"dtype <= cpus\"]\n")),
            "space.yaml:5: constraints[0]: does not parse: unknown name 'dtype'; a constraint "
            "may use cpus, streams at column 1");
  EXPECT_EQ(LoadError(Space("  streams: [1, 2]\nconstraints:\n  - streams; rm -rf /\n")),
            "space.yaml:5: constraints[0]: does not parse: unexpected character ';' at column 8");
}

TEST(ConstraintTest, FollowsPrecedenceAndIntegerArithmetic) {
  const std::vector<std::string> dims = {"threads", "streams"};
  const json c = {{"threads", 4}, {"streams", 2}};
  const auto holds = [&](const std::string& text, int64_t cpus = 4) {
    return Constraint::Parse(text, dims).Holds(c, cpus);
  };
  EXPECT_TRUE(holds("threads + 2 * streams == 8"));
  EXPECT_TRUE(holds("(threads + 2) * streams == 12"));
  EXPECT_TRUE(holds("threads / streams == 2 and 7 / 2 == 3"));
  EXPECT_TRUE(holds("threads - streams - 1 == 1"));  // left-associative
  EXPECT_TRUE(holds("-streams < 0"));
  EXPECT_TRUE(holds("threads > cpus or streams <= 2"));
  EXPECT_FALSE(holds("threads > cpus or streams < 2"));
  EXPECT_TRUE(holds("streams == 1 and threads == 4 or cpus != 1"));  // and binds tighter
  EXPECT_FALSE(holds("streams == 1 and (threads == 4 or cpus != 1)"));
  EXPECT_TRUE(holds("threads >= cpus", 4));
  EXPECT_FALSE(holds("threads >= cpus", 5));
  // Division by zero and overflow reject the candidate rather than throw mid-enumeration.
  EXPECT_FALSE(holds("threads / (streams - 2) >= 0"));
  EXPECT_FALSE(holds("threads * 4611686018427387904 > 0"));
}

TEST(ConstraintTest, DoesNotApplyWithoutItsDimensions) {
  const Constraint c = Constraint::Parse("calibration_samples <= 64", {"calibration_samples"});
  EXPECT_TRUE(c.Holds(json{{"dtype", "fp32"}}, 2));
  EXPECT_FALSE(c.Holds(json{{"dtype", "int8"}, {"calibration_samples", 128}}, 2));
}

TEST(ConstraintTest, RejectsWhatIsNotAComparison) {
  const auto error = [](const std::string& text) -> std::string {
    try {
      Constraint::Parse(text, {"streams"});
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(error("streams * 2"), "expected a comparison such as 'streams <= cpus' at column 1");
  EXPECT_EQ(error("1 < streams < 3"),
            "comparisons do not chain; join them with 'and' at column 13");
  EXPECT_EQ(error("streams + (streams < 2) > 0"), "'+' needs numbers at column 9");
  EXPECT_EQ(error("streams and cpus"), "'and' joins comparisons at column 9");
  EXPECT_EQ(error("(streams <= 2"), "expected ')' at column 14");
  EXPECT_EQ(error("streams <="), "expected an operand, found the end at column 11");
  EXPECT_EQ(error("streams <= 2 2"), "unexpected '2' at column 14");
  EXPECT_EQ(error("99999999999999999999 > 0"), "integer too large at column 1");
  EXPECT_EQ(error("__import__ > 0"),
            "unknown name '__import__'; a constraint may use cpus, streams at column 1");
}

TEST(EnumerateTest, ExampleHasTheExpectedCandidatesInGridOrder) {
  const SpaceDefinition space = ParseSpace(kExample, "example");
  // dtype x threads x streams x cores_per_stream, where int8 also has 2 calibrations and
  // streams * cores_per_stream <= cpus keeps 3 of the 4 stream layouts on 2 CPUs.
  const std::vector<json> two = Enumerate(space, 2);
  EXPECT_EQ(two.size(), (2 + 2 + 2 * 2) * 3u);
  EXPECT_EQ(Enumerate(space, 4).size(), (2 + 2 + 2 * 2) * 4u);

  EXPECT_EQ(two[0],
            json({{"dtype", "fp32"}, {"threads", 1}, {"streams", 1}, {"cores_per_stream", 1}}));
  EXPECT_EQ(two[1],
            json({{"dtype", "fp32"}, {"threads", 1}, {"streams", 1}, {"cores_per_stream", 2}}));
  EXPECT_EQ(two[2],
            json({{"dtype", "fp32"}, {"threads", 1}, {"streams", 2}, {"cores_per_stream", 1}}));
  EXPECT_EQ(two[3],
            json({{"dtype", "fp32"}, {"threads", 2}, {"streams", 1}, {"cores_per_stream", 1}}));
  EXPECT_EQ(two[12], json({{"dtype", "int8"},
                           {"threads", 1},
                           {"calibration", "minmax"},
                           {"streams", 1},
                           {"cores_per_stream", 1}}));
  EXPECT_EQ(two[15], json({{"dtype", "int8"},
                           {"threads", 1},
                           {"calibration", "histogram"},
                           {"streams", 1},
                           {"cores_per_stream", 1}}));
  for (const json& c : two) {
    EXPECT_EQ(c.contains("calibration"), c["dtype"] == "int8") << c.dump();
    EXPECT_LE(c["streams"].get<int>() * c["cores_per_stream"].get<int>(), 2) << c.dump();
  }
}

TEST(EnumerateTest, ConditionsChainAndDuplicatesCollapse) {
  SpaceDefinition space;
  space.dimensions = {
      {"dtype", {"fp32", "int8"}, std::nullopt},
      {"calibration", {"minmax", "histogram"}, std::make_pair("dtype", std::vector<json>{"int8"})},
      {"calibration_samples",
       {32, 64},
       std::make_pair("calibration", std::vector<json>{"histogram"})},
      {"threads", {1, 1}, std::nullopt},
  };
  const std::vector<json> all = Enumerate(space, 1);
  ASSERT_EQ(all.size(), 4u);  // fp32; int8 minmax; int8 histogram 32; int8 histogram 64
  EXPECT_EQ(all[0], json({{"dtype", "fp32"}, {"threads", 1}}));
  EXPECT_EQ(all[1], json({{"dtype", "int8"}, {"calibration", "minmax"}, {"threads", 1}}));
  EXPECT_EQ(all[3], json({{"dtype", "int8"},
                          {"calibration", "histogram"},
                          {"calibration_samples", 64},
                          {"threads", 1}}));
}

TEST(SpaceDefinitionTest, JsonRoundTripsAndBadJsonIsCorrupt) {
  SpaceDefinition space;
  space.dimensions = {
      {"dtype", {"fp32", "int8"}, std::nullopt},
      {"calibration", {"minmax"}, std::make_pair("dtype", std::vector<json>{"int8"})},
      {"threads", {1, 2}, std::nullopt}};
  space.constraints = {"threads <= cpus"};
  const SpaceDefinition back = SpaceDefinition::FromJson(space.ToJson());
  EXPECT_EQ(back.ToJson(), space.ToJson());
  EXPECT_EQ(Enumerate(back, 2), Enumerate(space, 2));
  try {
    SpaceDefinition::FromJson(json{{"dimensions", json::array({{{"name", "dtype"}}})}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("not a stored search space"), std::string::npos);
  }
}

TEST(EnumerateTest, InstancesGetCpusOfTheirOwn) {
  SpaceDefinition space;
  space.dimensions = {{"threads", {1, 2}, std::nullopt}, {"instances", {1, 2}, std::nullopt}};
  EXPECT_EQ(Enumerate(space, 2), (std::vector<json>{{{"threads", 1}, {"instances", 1}},
                                                    {{"threads", 1}, {"instances", 2}},
                                                    {{"threads", 2}, {"instances", 1}}}));
  EXPECT_EQ(Enumerate(space, 4).size(), 4u);
  SpaceDefinition without_threads;
  without_threads.dimensions = {{"instances", {1, 2}, std::nullopt}};
  EXPECT_EQ(Enumerate(without_threads, 2).size(), 2u) << "each instance gets an equal share";
}

TEST(EnumerateTest, RefusesWhatCannotBeEnumerated) {
  SpaceDefinition later;
  later.dimensions = {
      {"calibration", {"minmax"}, std::make_pair("dtype", std::vector<json>{"int8"})},
      {"dtype", {"int8"}, std::nullopt}};
  EXPECT_THROW(Enumerate(later, 1), Error);

  SpaceDefinition huge;
  std::vector<json> many;
  for (int i = 1; i <= 1001; ++i) many.emplace_back(i);
  huge.dimensions = {{"threads", many, std::nullopt}, {"batch", many, std::nullopt}};
  try {
    Enumerate(huge, 1);
    ADD_FAILURE() << "enumerated a million candidates";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "the space has more than 1000000 candidates");
  }
}

TEST(PruneTest, DropsWhatTheMachineCannotServeAndSaysWhy) {
  const SpaceDefinition space = ParseSpace(Space(R"(  dtype: [fp32, bf16, int8]
  threads: [1, 2, 4]
  streams: [1, 4]
  cores_per_stream: [1, 2]
)"),
                                           "s.yaml");
  std::vector<PruneNote> notes;
  const SpaceDefinition pruned = Prune(space, {2, false, false}, false, &notes);
  EXPECT_EQ(pruned.dimensions[0].values, (std::vector<json>{"fp32", "int8"}));
  EXPECT_EQ(pruned.dimensions[1].values, (std::vector<json>{1, 2}));
  EXPECT_EQ(pruned.dimensions[2].values, (std::vector<json>{1}));
  EXPECT_EQ(pruned.dimensions[3].values, (std::vector<json>{1, 2}));
  ASSERT_EQ(notes.size(), 4u);
  EXPECT_EQ(notes[0].dimension, "dtype");
  EXPECT_EQ(notes[0].value, "bf16");
  EXPECT_EQ(notes[0].reason, "this CPU has no avx512_bf16: bf16 runs emulated and slower");
  EXPECT_TRUE(notes[0].dropped);
  EXPECT_EQ(notes[1].value, "int8");
  EXPECT_FALSE(notes[1].dropped);
  EXPECT_NE(notes[1].reason.find("avx512_vnni"), std::string::npos);
  EXPECT_EQ(notes[2].dimension, "threads");
  EXPECT_EQ(notes[2].value, 4);
  EXPECT_EQ(notes[2].reason, "exceeds the 2 CPUs this study may use");
  EXPECT_EQ(notes[3].dimension, "streams");

  notes.clear();
  const SpaceDefinition kept = Prune(space, {2, false, true}, true, &notes);
  EXPECT_EQ(kept.dimensions[0].values, (std::vector<json>{"fp32", "bf16", "int8"}));
  ASSERT_EQ(notes.size(), 3u);  // bf16 kept with a warning; threads 4 and streams 4 dropped
  EXPECT_FALSE(notes[0].dropped);

  // A capable machine changes nothing and has nothing to say.
  notes.clear();
  EXPECT_EQ(Prune(space, {8, true, true}, false, &notes).ToJson(), space.ToJson());
  EXPECT_TRUE(notes.empty());
}

TEST(PruneTest, Bf16FallbackNeedsAvx512Bf16AsBf16Does) {
  const SpaceDefinition space = ParseSpace(Space(R"(  dtype: [int8]
  fallback_dtype: {values: [fp32, bf16], when: {dtype: int8}}
)"),
                                           "s.yaml");
  std::vector<PruneNote> notes;
  const SpaceDefinition pruned = Prune(space, {2, false, true}, false, &notes);
  EXPECT_EQ(pruned.dimensions[1].values, (std::vector<json>{"fp32"}));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].dimension, "fallback_dtype");
  EXPECT_TRUE(notes[0].dropped);
  EXPECT_EQ(Prune(space, {2, true, true}, false, nullptr).ToJson(), space.ToJson());
}

TEST(PruneTest, ADimensionLeftEmptyIsUnsupported) {
  const SpaceDefinition space = ParseSpace(Space("  dtype: [bf16]\n"), "s.yaml");
  try {
    Prune(space, {2, false, true}, false, nullptr);
    FAIL() << "pruned to nothing";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_STREQ(e.what(),
                 "dimension 'dtype' has no value left on this machine (bf16: this CPU has no "
                 "avx512_bf16: bf16 runs emulated and slower)");
  }
}

TEST_F(SpaceYamlTest, MissingFileIsNotFound) {
  try {
    LoadSpace((dir_ / "absent.yaml").string());
    FAIL() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace ipt::tuner
