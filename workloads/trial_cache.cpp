#include "workloads/calibration_cache.h"

#include <fmt/format.h>

#include <exception>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/sha256.h"
#include "recipes/recipe_yaml.h"

namespace ipt::workloads {
namespace {

constexpr const char* kCacheMagic = "ipex-tune calibration v1";

std::filesystem::path FileFor(const std::filesystem::path& dir, const std::string& key) {
  return dir / (key + ".json");
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
  return Sha256Hex(fmt::format("{}\nexecutable {}\nmodel {}\nworkload {}\nisa {}\n{}", kCacheMagic,
                               executable_hash, model_hash, workload, isa,
                               recipes::ToYaml(sections)));
}

CachedCalibration FindCalibration(const std::filesystem::path& dir, const std::string& key) {
  CachedCalibration r;
  if (dir.empty() || key.empty()) return r;
  r.file = FileFor(dir, key);
  std::error_code ec;
  if (!std::filesystem::exists(r.file, ec)) {
    r.outcome = CacheOutcome::kComputed;
    return r;
  }
  std::string why;
  try {
    std::ifstream in(r.file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nlohmann::json j = nlohmann::json::parse(text);
    if (j.at("magic") != kCacheMagic || j.at("key") != key) {
      why = "names another calibration";
    } else {
      recipes::QParams q;
      q.graph = j.at("graph").get<std::string>();
      for (const auto& [op, p] : j.at("inputs").items()) {
        q.inputs[op] = {p.at("scale").get<double>(), p.at("zero_point").get<int64_t>(),
                        p.at("qmax").get<int64_t>()};
      }
      if (q.graph.empty() || q.inputs.empty()) {
        why = "holds no parameters";
      } else {
        r.qparams = std::move(q);
        r.outcome = CacheOutcome::kHit;
        return r;
      }
    }
  } catch (const std::exception& e) {
    why = fmt::format("cannot be read ({})", e.what());
  }
  r.outcome = CacheOutcome::kCorrupt;
  r.warning = fmt::format("calibration cache file {} {}: calibrating again", r.file.string(), why);
  return r;
}

std::string StoreCalibration(const std::filesystem::path& dir, const std::string& key,
                             const recipes::QParams& qparams) {
  if (dir.empty() || key.empty()) return "no cache";
  nlohmann::json inputs = nlohmann::json::object();
  for (const auto& [op, p] : qparams.inputs) {
    inputs[op] = {{"scale", p.scale}, {"zero_point", p.zero_point}, {"qmax", p.qmax}};
  }
  // nlohmann prints doubles in their shortest exact form: a hit gives the calibrated scales bit
  // for bit, so its outputs equal those of the trial that calibrated.
  const std::string text = nlohmann::json{
      {"magic", kCacheMagic},
      {"key", key},
      {"graph", qparams.graph},
      {"inputs",
       std::move(inputs)}}.dump(1);
  return WriteFileAtomically(FileFor(dir, key),
                             [&](const AppendFn& append) { append(text.data(), text.size()); });
}

}  // namespace ipt::workloads
