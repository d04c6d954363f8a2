// The on-disk cache of calibrated int8 parameters: the trials of a study that quantize one model
// the same way (same optimize and precision sections, different threads, allocator or wait
// policy) calibrate once. Calibration is most of an int8 trial's set-up: 3.3 of its 6.9 s on
// ResNet-50 here (docs/tuner-quality.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "recipes/recipe.h"
#include "workloads/cache.h"

namespace ipt::workloads {

// Where calibrations are cached: CacheRoot(...)/calibrations, beside the models and references;
// empty (no cache) when CacheRoot is empty.
std::filesystem::path CalibrationCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                          const char* home);

// What identifies a calibration: the executable (observers, algorithms and the workload's
// calibration inputs are all compiled into it: ExecutableHash()), the model (ModelHash), the
// workload's name, the oneDNN ISA (which picks u8 or u7 activations) and the recipe's optimize
// and precision sections without their qparams and auto_fallback (they decide the graph being
// calibrated and how).
// Empty, meaning "do not cache", when `executable_hash` or `model_hash` is empty.
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

}  // namespace ipt::workloads
