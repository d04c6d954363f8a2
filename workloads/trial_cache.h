// On-disk caches of what a trial derives from its model and recipe, so that the trials of a study
// that differ only in how they run (threads, allocator, wait policy, streams) do not derive it
// again in each worker process:
// - calibrated int8 parameters (calibration is 3.3 of an int8 trial's 6.9 s of set-up on
//   ResNet-50 here, docs/tuner-quality.md);
// - the automatic int8 fallback's search (a minute on ResNet-50);
// - the accuracy check's result (16 ResNet-50 calls: 1 to 3.8 s of a 3 to 6 s set-up).
// Each entry is a small JSON file `<key>.json` under CacheRoot(...)/calibrations, written
// atomically (WriteFileAtomically) and trusted only when it names its key.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "recipes/recipe.h"
#include "workloads/cache.h"

namespace ipt::workloads {

// Where these caches live: CacheRoot(...)/calibrations, beside the models and references; empty
// (no cache) when CacheRoot is empty.
std::filesystem::path CalibrationCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                          const char* home);

// What identifies a calibration: the executable (observers, algorithms and the workload's
// calibration inputs are all compiled into it: ExecutableHash()), the model (ModelHash), the
// workload's name, the oneDNN ISA (which picks u8 or u7 activations) and the recipe's optimize
// and precision sections without their qparams and auto_fallback (they decide the graph being
// calibrated and how). Empty, meaning "do not cache", when `executable_hash` or `model_hash` is
// empty.
std::string CalibrationKey(const std::string& executable_hash, const std::string& model_hash,
                           const std::string& workload, const std::string& isa,
                           const recipes::Recipe& recipe);

struct CachedCalibration {
  std::optional<recipes::QParams> qparams;  // set on a hit
  CacheOutcome outcome = CacheOutcome::kNotStored;
  std::filesystem::path file;  // empty without a cache
  std::string warning;         // why a file was not trusted; empty otherwise
};

// Looks `key` up in `dir`. A hit gives the parameters; a missing file is kComputed (the caller
// calibrates and stores), an unreadable one or one of another key kCorrupt with a warning (the
// caller calibrates and replaces it). Never throws. An empty `dir` or `key` is kNotStored.
CachedCalibration FindCalibration(const std::filesystem::path& dir, const std::string& key);

// Writes `qparams` for `key` into `dir` atomically (WriteFileAtomically). Returns an empty string
// or why the file could not be written. Never throws.
std::string StoreCalibration(const std::filesystem::path& dir, const std::string& key,
                             const recipes::QParams& qparams);

// The automatic fallback's search: its key is the calibration's (whose recipe sections include
// the recipe's own fallback), the dtype it keeps ops in, the target loss and the evaluation set
// (`batch` items per call, `batches` calls) it was judged on.
std::string FallbackSearchKey(const std::string& calibration_key, recipes::Dtype kept_dtype,
                              double max_loss, int64_t batch, int64_t batches);

// A cached JSON document, or why there is none (as CachedCalibration).
struct CachedDocument {
  std::optional<std::string> json;  // the document's text, on a hit
  CacheOutcome outcome = CacheOutcome::kNotStored;
  std::filesystem::path file;
  std::string warning;
};

struct CachedFallbackSearch {
  std::optional<std::vector<std::string>> kept;  // set on a hit
  std::string report;                            // the search's report (JSON text) on a hit
  CacheOutcome outcome = CacheOutcome::kNotStored;
  std::string warning;
};

// As FindCalibration and StoreCalibration, for a search's result.
CachedFallbackSearch FindFallbackSearch(const std::filesystem::path& dir, const std::string& key);
std::string StoreFallbackSearch(const std::filesystem::path& dir, const std::string& key,
                                const std::vector<std::string>& kept, const std::string& report);

// The accuracy check: its key is the calibration's with the recipe's whole precision section
// (qparams and auto_fallback decide the numbers too), the threads and streams that compute it
// (they can change the order of floating-point sums; the allocator and wait policy cannot) and
// the evaluation set.
std::string AccuracyKey(const std::string& calibration_key, const recipes::Recipe& recipe,
                        int64_t threads, int64_t streams, int64_t batch, int64_t batches);

// As FindCalibration and StoreCalibration, for the accuracy result as JSON text.
CachedDocument FindAccuracy(const std::filesystem::path& dir, const std::string& key);
std::string StoreAccuracy(const std::filesystem::path& dir, const std::string& key,
                          const std::string& accuracy_json);

}  // namespace ipt::workloads
