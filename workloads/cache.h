// What the on-disk caches of workloads/ share (reference outputs in accuracy.h, built models in
// model_cache.h): where they live, how a lookup ended, and the atomic write that lets concurrent
// processes share a cache without locks.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

namespace ipt::workloads {

// The root of ipex-tune's caches, from the environment's values (null when unset):
// $IPT_CACHE_DIR, else $XDG_CACHE_HOME/ipex-tune, else $HOME/.cache/ipex-tune; empty (no cache)
// when none is set. Empty values count as unset. Each cache is a folder of its own under it.
std::filesystem::path CacheRoot(const char* ipt_cache_dir, const char* xdg_cache_home,
                                const char* home);

enum class CacheOutcome {
  kHit,        // read from the cache
  kComputed,   // not in the cache: computed (or built) and stored
  kCorrupt,    // a file was there but unreadable, truncated or failing its checksum: computed
               // again and replaced
  kNotStored,  // computed, but the cache could not be written (or there is none)
};
// "hit", "computed", "corrupt", "not_stored": the outcome's name in results.
const char* CacheOutcomeName(CacheOutcome outcome);

// Appends `size` bytes at `data` to the file being written. Returns false when that failed; every
// later call then does nothing and returns false too.
using AppendFn = std::function<bool(const void* data, size_t size)>;

// Writes `file` with what `write` appends through the function it is given, to a temporary file
// in the directory of `file` (created when missing), synced, then renamed over `file`: a
// concurrent reader sees the old file, the new one or none, never a part, and of two concurrent
// writers the last rename wins. Returns an empty string, or why `file` could not be written (the
// temporary is then removed). Never throws: an exception of `write` is such a reason.
std::string WriteFileAtomically(const std::filesystem::path& file,
                                const std::function<void(const AppendFn& append)>& write);

}  // namespace ipt::workloads
