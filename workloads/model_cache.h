// The on-disk cache of built workload models: a process loads the TorchScript archive an earlier
// one saved instead of building the model again (seeded initialisation and calibration forwards:
// about 5 s for resnet50, 7 to 9 s for bert-base on two cores). docs/accuracy.md describes the
// files.
#pragma once

#include <torch/script.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "workloads/cache.h"
#include "workloads/workload.h"

namespace ipt::workloads {

// Where built models are cached: CacheRoot(...)/models, beside the references; empty (no cache)
// when CacheRoot is empty.
std::filesystem::path ModelCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                    const char* home);

// SHA-256 of the running executable's file (/proc/self/exe). The workloads' builders are linked
// into it statically, so any change to their code changes it, with or without a version bump.
// Empty when the file cannot be read. Reads the whole file (ipex-tune-worker: 2 MB, about 10 ms):
// call it once per process.
std::string ExecutableHash();

// What a cached model is found and trusted by; empty when the model is not to be cached.
struct ModelKey {
  // The file's name, `<workload name>-<hash>.pt`, the hash over the workload's BuildDescription,
  // ipex-tune's version and libtorch's: one file per model configuration, which a rebuilt
  // executable replaces rather than adding another beside it (a model is 0.1 to 1.3 GB).
  std::string file_name;
  // A hash over the same and the executable's hash: what a file must record to be trusted.
  std::string key;
  bool empty() const { return key.empty(); }
};

// The key of `workload`'s built model, for ipex-tune `version` (platform::kIpexTuneVersion: this
// library may not depend on core/platform) and `executable_hash` (ExecutableHash()). Empty when
// the workload has no BuildDescription or `executable_hash` is empty.
ModelKey MakeModelKey(const Workload& workload, std::string_view version,
                      const std::string& executable_hash);

struct CachedModel {
  torch::jit::Module module;
  std::string model_hash;  // ModelHash(module): callers need it and it was computed anyway
  CacheOutcome outcome = CacheOutcome::kComputed;
  std::filesystem::path file;  // empty without a cache
  std::string warning;         // why a file was not trusted or not written; empty otherwise
};

// The model for `key`: loaded from `dir` when a valid file is there, else built by `build` and
// stored (atomically: WriteFileAtomically). A file of another key, left by another executable,
// is replaced without a warning.
//
// Every module returned has been through TorchScript serialization: a built one is saved and
// loaded back in memory before it is returned or stored. Loading renames the graph's values and
// reorders its constants, which changes ModelHash; this way a hit, a miss and a process without a
// cache all give the same ModelHash (a study's identity) and the same outputs bit for bit.
//
// The file is a TorchScript archive (torch::jit::load reads it) whose extra record
// `ipex_tune_cache` holds the key and the ModelHash of the stored module; it is trusted only when
// it names `key` and the loaded module gives that ModelHash, so a truncated, altered or
// unreadable file is rebuilt and replaced, with a warning. Nothing here throws for the cache: a
// cache that cannot be read or written costs a build, said in `warning`; exceptions of `build`,
// and of saving and loading what it built, propagate. An empty `dir` or `key` means no cache
// (kNotStored). Safe to call from several processes at once.
CachedModel LoadOrBuildModel(const std::filesystem::path& dir, const ModelKey& key,
                             const std::function<torch::jit::Module()>& build);

}  // namespace ipt::workloads
