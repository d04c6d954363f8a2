// Binding threads and processes to CPUs: reading and setting affinity masks, and an RAII scope
// that pins the calling thread and puts its old mask back.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>

#include "core/platform/cpu_set.h"

namespace ipt::platform {

// CPUs the calling thread may run on, as the kernel reports them (sched_getaffinity). Cgroup
// cpusets and offline CPUs are already masked out. Throws ipt::Error kIo if the kernel refuses.
CpuSet CurrentAffinity();

// Affinity of another thread or process; nullopt when `pid` does not exist (or no longer does).
// A zombie that has not been reaped still answers. Throws ipt::Error kIo for other failures
// (EPERM).
std::optional<CpuSet> AffinityOf(pid_t pid);

// A kernel cpu_set_t sized for a CpuSet (CPU_ALLOC), for callers that must call
// sched_setaffinity where they cannot allocate, e.g. between fork and exec: build it before the
// fork, use data()/size_bytes() after. Move-only.
class CpuMask {
 public:
  explicit CpuMask(const CpuSet& cpus);
  ~CpuMask();
  CpuMask(CpuMask&& other) noexcept;
  CpuMask& operator=(CpuMask&& other) noexcept;
  CpuMask(const CpuMask&) = delete;
  CpuMask& operator=(const CpuMask&) = delete;

  const cpu_set_t* data() const { return mask_; }
  std::size_t size_bytes() const { return size_bytes_; }

 private:
  cpu_set_t* mask_ = nullptr;
  std::size_t size_bytes_ = 0;
};

// Pins the calling thread to `cpus` for the lifetime of the object, then restores the mask the
// thread had before (on that same thread, whichever thread runs the destructor).
//
// The kernel silently drops CPUs the process may not use (cgroup cpuset, offline), so applied()
// is what the kernel reports after the call; compare it with what you asked for.
// Throws ipt::Error kInvalidArgument, naming the set, when `cpus` is empty or contains no CPU
// this process may use; kIo for any other refusal. Not copyable or movable: the scope is lexical.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const CpuSet& cpus);
  ~ScopedAffinity();
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

  const CpuSet& applied() const { return applied_; }
  const CpuSet& previous() const { return previous_; }

 private:
  pid_t tid_;
  CpuSet previous_;
  CpuMask restore_mask_;  // built up front so the destructor cannot fail to allocate
  CpuSet applied_;
};

}  // namespace ipt::platform
