#include "workloads/cache.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace ipt::workloads {

std::filesystem::path CacheRoot(const char* ipt_cache_dir, const char* xdg_cache_home,
                                const char* home) {
  auto set = [](const char* value) { return value != nullptr && *value != '\0'; };
  if (set(ipt_cache_dir)) return ipt_cache_dir;
  if (set(xdg_cache_home)) return std::filesystem::path(xdg_cache_home) / "ipex-tune";
  if (set(home)) return std::filesystem::path(home) / ".cache/ipex-tune";
  return {};
}

const char* CacheOutcomeName(CacheOutcome outcome) {
  switch (outcome) {
    case CacheOutcome::kHit:
      return "hit";
    case CacheOutcome::kComputed:
      return "computed";
    case CacheOutcome::kCorrupt:
      return "corrupt";
    case CacheOutcome::kNotStored:
      return "not_stored";
  }
  return "unknown";
}

std::string WriteFileAtomically(const std::filesystem::path& file,
                                const std::function<void(const AppendFn& append)>& write) {
  const std::filesystem::path dir = file.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fmt::format("cannot create {}: {}", dir.string(), ec.message());
  std::string temp = file.string() + ".tmp.XXXXXX";
  int fd = mkstemp(temp.data());
  if (fd < 0) {
    return fmt::format("cannot create a file in {}: {}", dir.string(), std::strerror(errno));
  }
  std::string why;
  AppendFn append = [fd, &temp, &why](const void* data, size_t size) {
    if (!why.empty()) return false;
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t written = ::write(fd, bytes, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        why = fmt::format("cannot write {}: {}", temp,
                          written < 0 ? std::strerror(errno) : "no space written");
        return false;
      }
      bytes += written;
      size -= static_cast<size_t>(written);
    }
    return true;
  };
  try {
    write(append);
  } catch (const std::exception& e) {
    // libtorch's messages go on with a backtrace: the first line says what failed.
    std::string what = e.what();
    if (why.empty())
      why = fmt::format("cannot write {}: {}", temp, what.substr(0, what.find('\n')));
  }
  // Durable before it is visible under the final name.
  if (why.empty() && fsync(fd) != 0) {
    why = fmt::format("cannot sync {}: {}", temp, std::strerror(errno));
  }
  if (close(fd) != 0 && why.empty()) why = fmt::format("cannot close {}", temp);
  if (why.empty()) {
    std::filesystem::rename(temp, file, ec);
    if (ec) why = fmt::format("cannot rename {} to {}: {}", temp, file.string(), ec.message());
  }
  if (!why.empty()) std::filesystem::remove(temp, ec);
  return why;
}

}  // namespace ipt::workloads
