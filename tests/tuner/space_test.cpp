#include "tuner/space.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace ipt::tuner {
namespace {

TEST(SpaceTest, EveryDimensionMapsOntoTheRecipe) {
  recipes::WorkloadRef w;
  w.name = "resnet50";
  Candidate c = {{"dtype", "int8"},
                 {"threads", 2},
                 {"calibration", "histogram"},
                 {"calibration_samples", 64},
                 {"streams", 2},
                 {"cores_per_stream", 1},
                 {"instances", 2},
                 {"micro_batch", 4},
                 {"binding", "scatter"},
                 {"allocator", "jemalloc"},
                 {"omp_wait_policy", "passive"},
                 {"batch", 16},
                 {"memory_format", "channels_last"},
                 {"fusions", {"conv_add_relu"}}};
  recipes::Recipe r = CandidateToRecipe(c, w);
  EXPECT_EQ(r.precision.dtype, recipes::Dtype::kInt8);
  EXPECT_EQ(r.runtime.threads, 2);
  ASSERT_TRUE(r.precision.calibration.has_value());
  EXPECT_EQ(r.precision.calibration->algorithm, "histogram");
  EXPECT_EQ(r.precision.calibration->samples, 64);
  EXPECT_EQ(r.runtime.streams, 2);
  EXPECT_EQ(r.runtime.cores_per_stream, 1);
  EXPECT_EQ(r.runtime.instances, 2);
  EXPECT_EQ(r.runtime.micro_batch, 4);
  EXPECT_EQ(r.runtime.binding, recipes::Binding::kScatter);
  EXPECT_EQ(r.runtime.allocator, recipes::Allocator::kJemalloc);
  EXPECT_EQ(r.runtime.env, (std::map<std::string, std::string>{{"OMP_WAIT_POLICY", "PASSIVE"},
                                                               {"MALLOC_CONF", kJemallocConf}}));
  EXPECT_EQ(r.workload.batch, 16);
  EXPECT_EQ(r.workload.name, "resnet50");
  EXPECT_EQ(r.optimize.memory_format, recipes::MemoryFormat::kChannelsLast);
  EXPECT_EQ(r.optimize.fusions, std::vector<std::string>{"conv_add_relu"});
}

TEST(SpaceTest, AbsentDimensionsKeepDefaultsAndCalibrationOnlyForInt8) {
  recipes::Recipe r = CandidateToRecipe({{"dtype", "bf16"}, {"calibration", "minmax"}}, {});
  EXPECT_EQ(r.precision.dtype, recipes::Dtype::kBf16);
  EXPECT_FALSE(r.precision.calibration.has_value());
  EXPECT_EQ(r.runtime.threads, recipes::Runtime{}.threads);
}

TEST(SpaceTest, SmoothQuantIsAnAlphaOrOffAndOnlyForStaticInt8) {
  recipes::Recipe r = CandidateToRecipe({{"dtype", "int8"}, {"smooth_quant", 0.75}}, {});
  ASSERT_TRUE(r.precision.smooth_quant.has_value());
  EXPECT_EQ(r.precision.smooth_quant->alpha, 0.75);
  EXPECT_FALSE(CandidateToRecipe({{"dtype", "int8"}, {"smooth_quant", "off"}}, {})
                   .precision.smooth_quant.has_value());
  EXPECT_FALSE(CandidateToRecipe({{"dtype", "int8-dynamic"}, {"smooth_quant", 0.5}}, {})
                   .precision.smooth_quant.has_value());
  EXPECT_THROW(CandidateToRecipe({{"dtype", "int8"}, {"smooth_quant", 2}}, {}), Error);
}

TEST(SpaceTest, FallbackDtypeIsFp32OrBf16AndOnlyForInt8) {
  EXPECT_EQ(CandidateToRecipe({{"dtype", "int8"}, {"fallback_dtype", "bf16"}}, {})
                .precision.fallback_dtype,
            recipes::Dtype::kBf16);
  EXPECT_EQ(CandidateToRecipe({{"dtype", "int8-dynamic"}, {"fallback_dtype", "bf16"}}, {})
                .precision.fallback_dtype,
            recipes::Dtype::kBf16);
  EXPECT_EQ(CandidateToRecipe({{"dtype", "bf16"}, {"fallback_dtype", "bf16"}}, {})
                .precision.fallback_dtype,
            recipes::Dtype::kFp32)
      << "nothing falls back outside int8; the recipe would be refused";
  EXPECT_THROW(CandidateToRecipe({{"dtype", "int8"}, {"fallback_dtype", "int8"}}, {}), Error);
}

TEST(SpaceTest, AutoFallbackIsALossOrOffAndOnlyForInt8) {
  recipes::Recipe r = CandidateToRecipe({{"dtype", "int8"}, {"auto_fallback", 0.02}}, {});
  ASSERT_TRUE(r.precision.auto_fallback.has_value());
  EXPECT_EQ(*r.precision.auto_fallback, 0.02);
  r = CandidateToRecipe({{"dtype", "int8-dynamic"}, {"auto_fallback", 0}}, {});
  ASSERT_TRUE(r.precision.auto_fallback.has_value());
  EXPECT_EQ(*r.precision.auto_fallback, 0.0);
  EXPECT_FALSE(CandidateToRecipe({{"dtype", "int8"}, {"auto_fallback", "off"}}, {})
                   .precision.auto_fallback.has_value());
  EXPECT_FALSE(CandidateToRecipe({{"dtype", "fp32"}, {"auto_fallback", 0.02}}, {})
                   .precision.auto_fallback.has_value());
  // `target`: the study's accuracy target, off without one.
  r = CandidateToRecipe({{"dtype", "int8"}, {"auto_fallback", "target"}}, {}, 0.05);
  ASSERT_TRUE(r.precision.auto_fallback.has_value());
  EXPECT_EQ(*r.precision.auto_fallback, 0.05);
  EXPECT_FALSE(CandidateToRecipe({{"dtype", "int8"}, {"auto_fallback", "target"}}, {})
                   .precision.auto_fallback.has_value());
}

TEST(SpaceTest, BadValuesAreErrorsNamingTheDimension) {
  for (const Candidate& bad :
       {Candidate{{"dtype", "fp16"}}, Candidate{{"threads", 0}}, Candidate{{"binding", 3}},
        Candidate{{"colour", "red"}}, Candidate{{"omp_wait_policy", "spin"}},
        Candidate{{"auto_fallback", "on"}}, Candidate{{"auto_fallback", 1.0}}}) {
    try {
      CandidateToRecipe(bad, {});
      ADD_FAILURE() << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(bad.items().begin().key()), std::string::npos)
          << e.what();
    }
  }
}

TEST(SpaceTest, ConfigHashIgnoresKeyOrderAndStockIsRecognised) {
  Candidate a = {{"dtype", "fp32"}, {"threads", 2}};
  Candidate b = nlohmann::json::parse(R"({"threads": 2, "dtype": "fp32"})");
  EXPECT_EQ(ConfigHash(a), ConfigHash(b));
  EXPECT_NE(ConfigHash(a), ConfigHash({{"dtype", "fp32"}, {"threads", 1}}));
  EXPECT_TRUE(IsStock(StockCandidate(2)));
  EXPECT_FALSE(IsStock(a));
  EXPECT_EQ(Describe(a), "dtype=fp32 threads=2");
}

TEST(SpaceTest, DefaultSpaceParsesAndPrunesToTheMachine) {
  SpaceDefinition space = DefaultSpace("resnet50");
  std::vector<PruneNote> notes;
  SpaceDefinition pruned = Prune(space, {2, false, false}, false, &notes);
  auto candidates = Enumerate(pruned, 2);
  // {fp32, int8} x (1 thread x 1 stream, 2 threads x 1 or 2 streams): bf16 dropped without
  // avx512_bf16, threads above 2 dropped, never more streams than threads.
  EXPECT_EQ(candidates.size(), 6u);
  bool bf16_note = false;
  for (const PruneNote& n : notes) bf16_note |= n.value == "bf16";
  EXPECT_TRUE(bf16_note);
  for (const Candidate& c : candidates) {
    EXPECT_EQ(c.contains("auto_fallback"), c["dtype"] == "int8") << c.dump();
    EXPECT_EQ(c.contains("smooth_quant"), c["dtype"] == "int8") << c.dump();
    if (c["dtype"] == "int8") {
      recipes::Recipe r = CandidateToRecipe(c, {}, 0.01);
      EXPECT_EQ(*r.precision.auto_fallback, 0.01) << "int8 falls back to meet the study's target";
      EXPECT_EQ(r.precision.smooth_quant->alpha, 0.5);
    }
  }
  // {fp32, bf16, int8} x (1x1, 2x{1,2}, 4x{1,2,4}).
  EXPECT_EQ(Enumerate(Prune(space, {4, true, true}, false, nullptr), 4).size(), 18u);
}

}  // namespace
}  // namespace ipt::tuner
