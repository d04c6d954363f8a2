// The process environment a recipe's runtime asks for: OpenMP threads, the allocator (preloaded)
// and extra variables. Applied to a worker before exec; the worker reports what it really got.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "recipes/recipe.h"

namespace ipt::tuner {

// Where the preloadable allocators live; tests point it elsewhere.
struct AllocatorPaths {
  std::string jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
  std::string tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
};

// OMP_NUM_THREADS from `threads`; LD_PRELOAD for jemalloc or tcmalloc; then runtime.env, which
// wins over both. Throws ipt::Error(kUnsupported) naming the library when the recipe's
// allocator is not installed: a trial must not silently run with another allocator.
std::map<std::string, std::string> WorkerEnvironment(const recipes::Runtime& runtime,
                                                     int64_t threads,
                                                     const AllocatorPaths& paths = {});

}  // namespace ipt::tuner
