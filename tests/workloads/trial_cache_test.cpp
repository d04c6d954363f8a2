#include "workloads/trial_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/workloads/test_util.h"
#include "workloads/model_cache.h"

namespace ipt::workloads {
namespace {

recipes::Recipe Int8Recipe() {
  recipes::Recipe r;
  r.precision.dtype = recipes::Dtype::kInt8;
  r.precision.calibration = recipes::Calibration{};
  return r;
}

recipes::QParams SomeQParams() {
  recipes::QParams q;
  q.graph = "7bb4cfedcd1d8e48";
  // Scales with every bit significant: a cached value must come back exactly.
  q.inputs["conv2d.0"] = {0.1 + 0.2, 57, 127};
  q.inputs["linear.3"] = {1.0 / 3.0 * 1e-7, 0, 255};
  q.accumulators["conv2d.0"] = {0.7 / 3.0, 131, 255};
  q.smoothing["linear.3"] = {0.1 + 0.2, 1.0 / 3.0 * 1e-7, 12.5};
  return q;
}

std::string Key(const recipes::Recipe& r) { return CalibrationKey("exe", "model", "w", "avx2", r); }

TEST(CalibrationCacheDirTest, IsBesideTheModels) {
  EXPECT_EQ(CalibrationCacheDir("/c", "/x", "/h"), "/c/calibrations");
  EXPECT_EQ(CalibrationCacheDir(nullptr, nullptr, "/h"), "/h/.cache/ipex-tune/calibrations");
  EXPECT_EQ(CalibrationCacheDir(nullptr, nullptr, nullptr), "");
  EXPECT_EQ(CalibrationCacheDir("/c", nullptr, nullptr).parent_path(),
            ModelCacheDir("/c", nullptr, nullptr).parent_path());
}

TEST(CalibrationKeyTest, ChangesWithWhatDecidesTheParametersOnly) {
  const recipes::Recipe base = Int8Recipe();
  const std::string key = Key(base);
  EXPECT_EQ(key.size(), 64U);
  EXPECT_EQ(Key(base), key) << "deterministic";

  EXPECT_NE(CalibrationKey("exe2", "model", "w", "avx2", base), key);
  EXPECT_NE(CalibrationKey("exe", "model2", "w", "avx2", base), key);
  EXPECT_NE(CalibrationKey("exe", "model", "w2", "avx2", base), key);
  EXPECT_NE(CalibrationKey("exe", "model", "w", "avx512_core_vnni", base), key) << "u8, not u7";
  recipes::Recipe r = base;
  r.precision.calibration->algorithm = "histogram";
  EXPECT_NE(Key(r), key);
  r = base;
  r.precision.calibration->samples = 64;
  EXPECT_NE(Key(r), key);
  r = base;
  r.precision.fallback = {"linear.0"};
  EXPECT_NE(Key(r), key);
  r = base;
  r.precision.smooth_quant = recipes::SmoothQuant{0.5};
  EXPECT_NE(Key(r), key) << "smoothed inputs have other ranges";
  r = base;
  r.optimize.fusions.pop_back();
  EXPECT_NE(Key(r), key) << "another graph";

  // How the model runs and what a recipe already carries do not change its calibration.
  r = base;
  r.runtime.threads = 2;
  r.runtime.allocator = recipes::Allocator::kJemalloc;
  r.runtime.env["OMP_WAIT_POLICY"] = "PASSIVE";
  r.workload.batch = 16;
  r.precision.qparams = SomeQParams();
  r.precision.fallback_dtype = recipes::Dtype::kBf16;  // calibration observes the fp32 graph
  EXPECT_EQ(Key(r), key);

  EXPECT_EQ(CalibrationKey("", "model", "w", "avx2", base), "") << "unknown executable";
  EXPECT_EQ(CalibrationKey("exe", "", "w", "avx2", base), "") << "unknown model";
}

class CalibrationCacheTest : public testing_util::TempDirTest {
 protected:
  CalibrationCacheTest() : TempDirTest("ipt_trial_cache") {}
};

TEST_F(CalibrationCacheTest, StoredParametersComeBackExactly) {
  const std::string key = Key(Int8Recipe());
  CachedCalibration miss = FindCalibration(dir_, key);
  EXPECT_EQ(miss.outcome, CacheOutcome::kComputed);
  EXPECT_FALSE(miss.qparams.has_value());
  EXPECT_TRUE(miss.warning.empty());

  ASSERT_EQ(StoreCalibration(dir_, key, SomeQParams()), "");
  CachedCalibration hit = FindCalibration(dir_, key);
  ASSERT_EQ(hit.outcome, CacheOutcome::kHit) << hit.warning;
  EXPECT_EQ(hit.file, dir_ / (key + ".json"));
  ASSERT_TRUE(hit.qparams.has_value());
  const recipes::QParams want = SomeQParams();
  EXPECT_EQ(hit.qparams->graph, want.graph);
  ASSERT_EQ(hit.qparams->inputs.size(), want.inputs.size());
  ASSERT_EQ(hit.qparams->accumulators.size(), want.accumulators.size());
  for (const auto& [got_ops, want_ops] :
       {std::pair{&hit.qparams->inputs, &want.inputs},
        std::pair{&hit.qparams->accumulators, &want.accumulators}}) {
    for (const auto& [op, p] : *want_ops) {
      const recipes::ActivationQParams& got = got_ops->at(op);
      EXPECT_EQ(got.scale, p.scale) << op;  // bit for bit, not near
      EXPECT_EQ(got.zero_point, p.zero_point) << op;
      EXPECT_EQ(got.qmax, p.qmax) << op;
    }
  }
  EXPECT_EQ(hit.qparams->smoothing, want.smoothing);
  EXPECT_EQ(Files().size(), 1U) << "no temporary left behind";
}

TEST_F(CalibrationCacheTest, ParametersOfAModelThatKeepsEveryOpAreAHit) {
  // A fallback list that keeps every op calibrates nothing; that is an answer, not damage.
  recipes::QParams none;
  none.graph = "7bb4cfedcd1d8e48";
  const std::string key = Key(Int8Recipe());
  ASSERT_EQ(StoreCalibration(dir_, key, none), "");
  CachedCalibration hit = FindCalibration(dir_, key);
  EXPECT_EQ(hit.outcome, CacheOutcome::kHit) << hit.warning;
  ASSERT_TRUE(hit.qparams.has_value());
  EXPECT_EQ(hit.qparams->graph, none.graph);
  EXPECT_TRUE(hit.qparams->inputs.empty());
}

TEST_F(CalibrationCacheTest, DamagedOrForeignFilesAreNotTrusted) {
  recipes::Recipe other = Int8Recipe();
  other.precision.calibration->algorithm = "entropy";
  const std::string key = Key(Int8Recipe());
  ASSERT_EQ(StoreCalibration(dir_, Key(other), SomeQParams()), "");
  // Another key's file under this key's name: copied, as a stray or swapped file would be.
  std::filesystem::copy_file(dir_ / (Key(other) + ".json"), dir_ / (key + ".json"));
  CachedCalibration foreign = FindCalibration(dir_, key);
  EXPECT_EQ(foreign.outcome, CacheOutcome::kCorrupt);
  EXPECT_FALSE(foreign.qparams.has_value());
  EXPECT_NE(foreign.warning.find("names another calibration"), std::string::npos)
      << foreign.warning;

  std::string text;
  {
    std::ifstream in(dir_ / (Key(other) + ".json"));
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(dir_ / (key + ".json"), std::ios::trunc) << text.substr(0, text.size() / 2);
  CachedCalibration truncated = FindCalibration(dir_, key);
  EXPECT_EQ(truncated.outcome, CacheOutcome::kCorrupt);
  EXPECT_NE(truncated.warning.find("cannot be read"), std::string::npos) << truncated.warning;
  EXPECT_NE(truncated.warning.find(key), std::string::npos) << "names the file";

  // Storing again replaces the damaged file.
  ASSERT_EQ(StoreCalibration(dir_, key, SomeQParams()), "");
  EXPECT_EQ(FindCalibration(dir_, key).outcome, CacheOutcome::kHit);
}

TEST_F(CalibrationCacheTest, FallbackSearchesAreKeyedByCalibrationKeptDtypeTargetAndEvaluationSet) {
  constexpr recipes::Dtype kFp32 = recipes::Dtype::kFp32;
  const std::string calibration = Key(Int8Recipe());
  const std::string key = FallbackSearchKey(calibration, kFp32, 0.01, 1, 16);
  EXPECT_EQ(key.size(), 64U);
  EXPECT_NE(FallbackSearchKey(Key(Int8Recipe()) + "x", kFp32, 0.01, 1, 16), key);
  EXPECT_NE(FallbackSearchKey(calibration, recipes::Dtype::kBf16, 0.01, 1, 16), key);
  EXPECT_NE(FallbackSearchKey(calibration, kFp32, 0.02, 1, 16), key);
  EXPECT_NE(FallbackSearchKey(calibration, kFp32, 0.01, 2, 8), key);
  EXPECT_NE(FallbackSearchKey(calibration, kFp32, 0.01, 1, 32), key);
  EXPECT_EQ(FallbackSearchKey("", kFp32, 0.01, 1, 16), "");
  EXPECT_NE(key, calibration) << "a file of its own beside the calibration";

  EXPECT_EQ(FindFallbackSearch(dir_, key).outcome, CacheOutcome::kComputed);
  ASSERT_EQ(StoreFallbackSearch(dir_, key, {"conv2d.3", "linear.0"}, R"({"met": true})"), "");
  CachedFallbackSearch hit = FindFallbackSearch(dir_, key);
  ASSERT_EQ(hit.outcome, CacheOutcome::kHit) << hit.warning;
  EXPECT_EQ(*hit.kept, (std::vector<std::string>{"conv2d.3", "linear.0"}));
  EXPECT_EQ(hit.report, R"({"met":true})");

  std::ofstream(dir_ / (key + ".json"), std::ios::trunc) << "[1, 2";
  CachedFallbackSearch damaged = FindFallbackSearch(dir_, key);
  EXPECT_EQ(damaged.outcome, CacheOutcome::kCorrupt);
  EXPECT_FALSE(damaged.kept.has_value());
  EXPECT_NE(damaged.warning.find("computing it again"), std::string::npos) << damaged.warning;
  EXPECT_NE(StoreFallbackSearch(dir_, key, {}, "not json"), "");
}

TEST(AccuracyKeyTest, ChangesWithWhatComputesTheNumbersOnly) {
  const recipes::Recipe base = Int8Recipe();
  const std::string calibration = Key(base);
  const std::string key = AccuracyKey(calibration, base, 2, 1, 1, 16);
  EXPECT_EQ(key.size(), 64U);
  EXPECT_NE(key, calibration);
  EXPECT_NE(AccuracyKey(calibration, base, 1, 1, 1, 16), key) << "threads order the sums";
  EXPECT_NE(AccuracyKey(calibration, base, 2, 2, 1, 16), key) << "streams split the batch";
  EXPECT_NE(AccuracyKey(calibration, base, 2, 1, 8, 2), key) << "another evaluation set";
  recipes::Recipe r = base;
  r.precision.qparams = SomeQParams();
  EXPECT_NE(AccuracyKey(calibration, r, 2, 1, 1, 16), key) << "parameters of its own";
  r = base;
  r.precision.auto_fallback = 0.01;
  EXPECT_NE(AccuracyKey(calibration, r, 2, 1, 1, 16), key) << "ops kept in fp32";
  r = base;
  r.runtime.allocator = recipes::Allocator::kTcmalloc;
  r.runtime.env["OMP_WAIT_POLICY"] = "ACTIVE";
  EXPECT_EQ(AccuracyKey(calibration, r, 2, 1, 1, 16), key) << "the environment computes nothing";
  EXPECT_EQ(AccuracyKey("", base, 2, 1, 1, 16), "");
}

TEST_F(CalibrationCacheTest, AccuracyComesBackAsStored) {
  const std::string key = AccuracyKey(Key(Int8Recipe()), Int8Recipe(), 2, 1, 1, 16);
  EXPECT_EQ(FindAccuracy(dir_, key).outcome, CacheOutcome::kComputed);
  const std::string accuracy = R"({"loss":0.0625,"relative_l2":0.06566943502407542})";
  ASSERT_EQ(StoreAccuracy(dir_, key, accuracy), "");
  const CachedDocument hit = FindAccuracy(dir_, key);
  ASSERT_EQ(hit.outcome, CacheOutcome::kHit) << hit.warning;
  EXPECT_EQ(*hit.json, accuracy) << "doubles bit for bit";
  EXPECT_NE(StoreAccuracy(dir_, key, "{oops"), "");
  EXPECT_EQ(FindAccuracy(dir_, key).outcome, CacheOutcome::kHit) << "a refused write leaves it";
}

TEST_F(CalibrationCacheTest, NoDirectoryOrKeyMeansNoCache) {
  EXPECT_EQ(FindCalibration("", Key(Int8Recipe())).outcome, CacheOutcome::kNotStored);
  EXPECT_EQ(FindCalibration(dir_, "").outcome, CacheOutcome::kNotStored);
  EXPECT_NE(StoreCalibration("", Key(Int8Recipe()), SomeQParams()), "");
  EXPECT_FALSE(std::filesystem::exists(dir_));
}

}  // namespace
}  // namespace ipt::workloads
