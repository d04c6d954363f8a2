#include "workloads/trial_cache.h"

#include <fmt/format.h>

#include <exception>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/sha256.h"
#include "recipes/qparams_json.h"
#include "recipes/recipe_yaml.h"

namespace ipt::workloads {
namespace {

constexpr const char* kCalibrationMagic = "ipex-tune calibration v2";
constexpr const char* kFallbackMagic = "ipex-tune fallback search v1";
constexpr const char* kAccuracyMagic = "ipex-tune accuracy v1";

// A document in `dir` under `key`: {"magic", "key", "value"}. `what` names it in warnings.
CachedDocument FindDocument(const std::filesystem::path& dir, const std::string& key,
                            const char* magic, const char* what) {
  CachedDocument r;
  if (dir.empty() || key.empty()) return r;
  r.file = dir / (key + ".json");
  std::error_code ec;
  if (!std::filesystem::exists(r.file, ec)) {
    r.outcome = CacheOutcome::kComputed;
    return r;
  }
  std::string why;
  try {
    std::ifstream in(r.file);
    const nlohmann::json j = nlohmann::json::parse(
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
    if (j.at("magic") != magic || j.at("key") != key) {
      why = fmt::format("names another {}", what);
    } else {
      r.json = j.at("value").dump();
      r.outcome = CacheOutcome::kHit;
      return r;
    }
  } catch (const std::exception& e) {
    why = fmt::format("cannot be read ({})", e.what());
  }
  r.outcome = CacheOutcome::kCorrupt;
  r.warning = fmt::format("{} cache file {} {}: computing it again", what, r.file.string(), why);
  return r;
}

// nlohmann prints doubles in their shortest exact form, so a value comes back bit for bit.
std::string StoreDocument(const std::filesystem::path& dir, const std::string& key,
                          const char* magic, const nlohmann::json& value) {
  if (dir.empty() || key.empty()) return "no cache";
  const std::string text = nlohmann::json{{"magic", magic}, {"key", key}, {"value", value}}.dump(1);
  return WriteFileAtomically(dir / (key + ".json"),
                             [&](const AppendFn& append) { append(text.data(), text.size()); });
}

}  // namespace

std::filesystem::path CalibrationCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                          const char* home) {
  std::filesystem::path root = CacheRoot(ipt_cache_dir, xdg_cache_home, home);
  return root.empty() ? root : root / "calibrations";
}

std::string CalibrationKey(const std::string& executable_hash, const std::string& model_hash,
                           const std::string& workload, const std::string& isa,
                           const recipes::Recipe& recipe) {
  if (executable_hash.empty() || model_hash.empty()) return {};
  // The two sections through the recipe writer, which prints every field: a new field changes
  // the text and so the key, without this function knowing about it.
  recipes::Recipe sections;
  sections.optimize = recipe.optimize;
  sections.precision = recipe.precision;
  sections.precision.qparams.reset();
  sections.precision.auto_fallback.reset();  // its search calibrates as without it
  // Calibration observes the fp32 graph whatever the kept ops compute in.
  sections.precision.fallback_dtype = recipes::Dtype::kFp32;
  return Sha256Hex(fmt::format("{}\nexecutable {}\nmodel {}\nworkload {}\nisa {}\n{}",
                               kCalibrationMagic, executable_hash, model_hash, workload, isa,
                               recipes::ToYaml(sections)));
}

CachedCalibration FindCalibration(const std::filesystem::path& dir, const std::string& key) {
  const CachedDocument doc = FindDocument(dir, key, kCalibrationMagic, "calibration");
  CachedCalibration r{std::nullopt, doc.outcome, doc.file, doc.warning};
  if (!doc.json) return r;
  // No inputs is a valid calibration: a fallback list that keeps every op leaves none.
  try {
    r.qparams = recipes::QParamsFromJson(nlohmann::json::parse(*doc.json));
    return r;
  } catch (const std::exception&) {
  }
  r.outcome = CacheOutcome::kCorrupt;
  r.warning = fmt::format("calibration cache file {} holds no parameters: computing it again",
                          r.file.string());
  return r;
}

std::string StoreCalibration(const std::filesystem::path& dir, const std::string& key,
                             const recipes::QParams& qparams) {
  return StoreDocument(dir, key, kCalibrationMagic, recipes::QParamsToJson(qparams));
}

std::string FallbackSearchKey(const std::string& calibration_key, recipes::Dtype kept_dtype,
                              double max_loss, int64_t batch, int64_t batches) {
  if (calibration_key.empty()) return {};
  // The target in its shortest exact decimal form: 0.01 and 0.010000001 are other searches.
  return Sha256Hex(fmt::format(
      "{}\ncalibration {}\nkept in {}\nmax_loss {}\nbatch {}\nbatches {}\n", kFallbackMagic,
      calibration_key, recipes::ToString(kept_dtype), max_loss, batch, batches));
}

CachedFallbackSearch FindFallbackSearch(const std::filesystem::path& dir, const std::string& key) {
  const CachedDocument doc = FindDocument(dir, key, kFallbackMagic, "fallback search");
  CachedFallbackSearch r{std::nullopt, "", doc.outcome, doc.warning};
  if (!doc.json) return r;
  try {
    const nlohmann::json j = nlohmann::json::parse(*doc.json);
    r.kept = j.at("kept").get<std::vector<std::string>>();
    r.report = j.at("report").dump();
    return r;
  } catch (const std::exception&) {
  }
  r.kept.reset();
  r.outcome = CacheOutcome::kCorrupt;
  r.warning = fmt::format("fallback search cache file {} holds no search: computing it again",
                          doc.file.string());
  return r;
}

std::string StoreFallbackSearch(const std::filesystem::path& dir, const std::string& key,
                                const std::vector<std::string>& kept, const std::string& report) {
  try {
    return StoreDocument(dir, key, kFallbackMagic,
                         {{"kept", kept}, {"report", nlohmann::json::parse(report)}});
  } catch (const std::exception& e) {
    return fmt::format("the report is not JSON ({})", e.what());
  }
}

std::string AccuracyKey(const std::string& calibration_key, const recipes::Recipe& recipe,
                        int64_t threads, int64_t streams, int64_t batch, int64_t batches) {
  if (calibration_key.empty()) return {};
  recipes::Recipe precision;
  precision.precision = recipe.precision;
  return Sha256Hex(fmt::format(
      "{}\ncalibration {}\nthreads {}\nstreams {}\nbatch {}\nbatches {}\n{}", kAccuracyMagic,
      calibration_key, threads, streams, batch, batches, recipes::ToYaml(precision)));
}

CachedDocument FindAccuracy(const std::filesystem::path& dir, const std::string& key) {
  return FindDocument(dir, key, kAccuracyMagic, "accuracy");
}

std::string StoreAccuracy(const std::filesystem::path& dir, const std::string& key,
                          const std::string& accuracy_json) {
  try {
    return StoreDocument(dir, key, kAccuracyMagic, nlohmann::json::parse(accuracy_json));
  } catch (const std::exception& e) {
    return fmt::format("the accuracy is not JSON ({})", e.what());
  }
}

}  // namespace ipt::workloads
