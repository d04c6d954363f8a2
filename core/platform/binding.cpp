// Affinity system calls behind CpuSet; see binding.h.
#include "core/platform/binding.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.h"

namespace ipt::platform {
namespace {

// The kernel's mask may be wider than cpu_set_t's 1024 bits (EINVAL when the buffer is too
// small), so the buffer grows until the kernel accepts it. Returns false with errno set on other
// failures.
bool GetAffinity(pid_t pid, CpuSet& out) {
  for (int capacity = CPU_SETSIZE; capacity <= CpuSet::kMaxCpuId + 1; capacity *= 2) {
    cpu_set_t* mask = CPU_ALLOC(capacity);
    if (mask == nullptr) throw Error(ErrorCode::kInternal, "out of memory for a CPU mask");
    const std::size_t bytes = CPU_ALLOC_SIZE(capacity);
    CPU_ZERO_S(bytes, mask);
    if (sched_getaffinity(pid, bytes, mask) == 0) {
      std::vector<int> ids;
      for (int cpu = 0; cpu < capacity; ++cpu) {
        if (CPU_ISSET_S(cpu, bytes, mask)) ids.push_back(cpu);
      }
      CPU_FREE(mask);
      out = CpuSet(std::move(ids));
      return true;
    }
    const int error = errno;
    CPU_FREE(mask);
    if (error != EINVAL) {
      errno = error;
      return false;
    }
  }
  errno = EINVAL;
  return false;
}

}  // namespace

CpuSet CurrentAffinity() {
  CpuSet cpus;
  if (!GetAffinity(0, cpus)) {
    throw Error(ErrorCode::kIo, std::string("sched_getaffinity: ") + std::strerror(errno));
  }
  return cpus;
}

std::optional<CpuSet> AffinityOf(pid_t pid) {
  CpuSet cpus;
  if (GetAffinity(pid, cpus)) return cpus;
  if (errno == ESRCH) return std::nullopt;
  throw Error(ErrorCode::kIo,
              "sched_getaffinity(" + std::to_string(pid) + "): " + std::strerror(errno));
}

CpuMask::CpuMask(const CpuSet& cpus) {
  const int capacity = cpus.max() + 1 > 0 ? cpus.max() + 1 : 1;
  mask_ = CPU_ALLOC(capacity);
  if (mask_ == nullptr) throw Error(ErrorCode::kInternal, "out of memory for a CPU mask");
  size_bytes_ = CPU_ALLOC_SIZE(capacity);
  CPU_ZERO_S(size_bytes_, mask_);
  for (int cpu : cpus) CPU_SET_S(cpu, size_bytes_, mask_);
}

CpuMask::~CpuMask() {
  if (mask_ != nullptr) CPU_FREE(mask_);
}

CpuMask::CpuMask(CpuMask&& other) noexcept : mask_(other.mask_), size_bytes_(other.size_bytes_) {
  other.mask_ = nullptr;
  other.size_bytes_ = 0;
}

CpuMask& CpuMask::operator=(CpuMask&& other) noexcept {
  if (this != &other) {
    if (mask_ != nullptr) CPU_FREE(mask_);
    mask_ = other.mask_;
    size_bytes_ = other.size_bytes_;
    other.mask_ = nullptr;
    other.size_bytes_ = 0;
  }
  return *this;
}

ScopedAffinity::ScopedAffinity(const CpuSet& cpus)
    : tid_(gettid()), previous_(CurrentAffinity()), restore_mask_(previous_) {
  if (cpus.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "cannot bind a thread to an empty CPU set");
  }
  const CpuMask mask(cpus);
  if (sched_setaffinity(tid_, mask.size_bytes(), mask.data()) != 0) {
    const int error = errno;
    if (error == EINVAL) {
      throw Error(ErrorCode::kInvalidArgument, "CPU set " + cpus.ToString() +
                                                   " has no CPU this process may use (it runs on " +
                                                   previous_.ToString() + ")");
    }
    throw Error(ErrorCode::kIo,
                "binding to CPU set " + cpus.ToString() + ": " + std::strerror(error));
  }
  CpuSet applied;
  if (!GetAffinity(tid_, applied)) {
    const int error = errno;
    sched_setaffinity(tid_, restore_mask_.size_bytes(), restore_mask_.data());
    throw Error(ErrorCode::kIo, std::string("sched_getaffinity: ") + std::strerror(error));
  }
  applied_ = std::move(applied);
}

ScopedAffinity::~ScopedAffinity() {
  // Best effort: if a cgroup shrank meanwhile the old mask may be refused, and a destructor has
  // nobody to tell.
  sched_setaffinity(tid_, restore_mask_.size_bytes(), restore_mask_.data());
}

}  // namespace ipt::platform
