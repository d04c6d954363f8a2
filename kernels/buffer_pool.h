// Recycled memory for large activations. glibc serves every allocation over 32 MiB with a fresh
// mmap, which the kernel zeroes page by page on first touch and unmaps on free: at ResNet-50 bs16
// (51 MB activations) 18% of the process's time went to page faults. The kernels take their
// large outputs and scratchpads from a process-wide cache of freed buffers instead, so a model
// called again with the same shapes reuses the same memory. Private to kernels/.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>

namespace ipt::kernels::detail {

// Like at::empty(sizes, options.memory_format(format)) (uninitialised). Buffers of at least
// kMinRecycledBytes come from the cache and go back to it when the tensor dies; the cache holds at
// most RecycledCacheLimit() bytes of idle buffers and frees the oldest beyond that.
at::Tensor EmptyRecycled(at::IntArrayRef sizes, const at::TensorOptions& options,
                         at::MemoryFormat format = at::MemoryFormat::Contiguous);

constexpr size_t kMinRecycledBytes = size_t{1} << 20;

// Bytes of idle buffers kept: IPT_BUFFER_CACHE_MB when set (0 turns the cache off), else 1 GiB.
// A value that is not a whole number of MiB throws ipt::Error naming the variable.
size_t RecycledCacheLimit();

// IPT_BUFFER_CACHE_MB's value (nullptr or empty: unset) as bytes; ipt::Error (kInvalidArgument)
// when it is not a whole number.
size_t ParseBufferCacheMb(const char* mb);

// Idle bytes held now (for tests).
size_t RecycledCacheBytes();

}  // namespace ipt::kernels::detail
