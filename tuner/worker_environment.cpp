#include "tuner/worker_environment.h"

#include <fmt/format.h>

#include <filesystem>

#include "base/error.h"

namespace ipt::tuner {

std::map<std::string, std::string> WorkerEnvironment(const recipes::Runtime& runtime,
                                                     int64_t threads, const AllocatorPaths& paths) {
  std::map<std::string, std::string> env = {{"OMP_NUM_THREADS", std::to_string(threads)}};
  std::string preload;
  switch (runtime.allocator) {
    case recipes::Allocator::kDefault:
      break;
    case recipes::Allocator::kJemalloc:
      preload = paths.jemalloc;
      break;
    case recipes::Allocator::kTcmalloc:
      preload = paths.tcmalloc;
      break;
  }
  if (!preload.empty()) {
    if (!std::filesystem::exists(preload)) {
      throw Error(ErrorCode::kUnsupported,
                  fmt::format("runtime.allocator: {} is not installed ({} is missing)",
                              recipes::ToString(runtime.allocator), preload));
    }
    env["LD_PRELOAD"] = preload;
  }
  for (const auto& [name, value] : runtime.env) env[name] = value;
  return env;
}

}  // namespace ipt::tuner
