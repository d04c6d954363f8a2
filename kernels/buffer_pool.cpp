#include "kernels/buffer_pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <list>
#include <mutex>
#include <new>
#include <string>

#include "base/error.h"

namespace ipt::kernels::detail {
namespace {

// Huge-page alignment: with transparent huge pages in madvise mode a buffer this aligned can be
// backed by 2 MiB pages, 512 times fewer faults and TLB entries on first use.
constexpr size_t kAlignment = size_t{2} << 20;

size_t RoundUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

class BufferCache {
 public:
  explicit BufferCache(size_t limit) : limit_(limit) {}

  // A buffer of `bytes` (a multiple of kAlignment), reused when an idle one of that size exists.
  void* Take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if (it->bytes != bytes) continue;
        void* data = it->data;
        idle_bytes_ -= bytes;
        idle_.erase(it);
        return data;
      }
    }
    void* data = std::aligned_alloc(kAlignment, bytes);
    if (data == nullptr) throw std::bad_alloc();
    madvise(data, bytes, MADV_HUGEPAGE);
    return data;
  }

  void Give(void* data, size_t bytes) {
    std::list<Idle> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle_.push_front({data, bytes});
      idle_bytes_ += bytes;
      while (idle_bytes_ > limit_ && !idle_.empty()) {
        idle_bytes_ -= idle_.back().bytes;
        evicted.splice(evicted.end(), idle_, std::prev(idle_.end()));
      }
    }
    for (const Idle& idle : evicted) std::free(idle.data);
  }

  size_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_bytes_;
  }

 private:
  struct Idle {
    void* data;
    size_t bytes;
  };
  const size_t limit_;
  std::mutex mutex_;
  std::list<Idle> idle_;  // most recently freed first
  size_t idle_bytes_ = 0;
};

// Never destroyed: tensors that outlive static destruction still give their buffers back.
BufferCache& Cache() {
  static auto* cache = new BufferCache(RecycledCacheLimit());
  return *cache;
}

}  // namespace

size_t ParseBufferCacheMb(const char* mb) {
  if (mb == nullptr || *mb == '\0') return size_t{1} << 30;
  const std::string text = mb;
  // A typo must not turn the cache off in silence: strtoull would read "1g" as 1 and "x" as 0.
  const bool digits = text.size() <= 9 && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) {
    throw Error(ErrorCode::kInvalidArgument,
                "IPT_BUFFER_CACHE_MB='" + text +
                    "' is not a whole number of MiB below 10^9 (0 turns the buffer cache off; "
                    "unset: 1024)");
  }
  return static_cast<size_t>(std::stoull(text)) << 20;
}

size_t RecycledCacheLimit() {
  static const size_t limit = ParseBufferCacheMb(std::getenv("IPT_BUFFER_CACHE_MB"));
  return limit;
}

size_t RecycledCacheBytes() { return Cache().idle_bytes(); }

at::Tensor EmptyRecycled(at::IntArrayRef sizes, const at::TensorOptions& options,
                         at::MemoryFormat format) {
  int64_t numel = 1;
  for (int64_t size : sizes) numel *= size;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  if (bytes < kMinRecycledBytes || RecycledCacheLimit() == 0)
    return at::empty(sizes, options.memory_format(format));
  const size_t capacity = RoundUp(bytes);
  void* data = Cache().Take(capacity);
  std::vector<int64_t> strides;
  if (format == at::MemoryFormat::ChannelsLast) {
    strides = c10::get_channels_last_strides_2d(sizes);
  } else {
    strides.assign(sizes.size(), 1);
    for (int64_t i = static_cast<int64_t>(sizes.size()) - 2; i >= 0; --i)
      strides[i] = strides[i + 1] * std::max<int64_t>(sizes[i + 1], 1);
  }
  return at::from_blob(
      data, sizes, strides, [capacity](void* p) { Cache().Give(p, capacity); }, options);
}

}  // namespace ipt::kernels::detail
