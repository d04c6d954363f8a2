#include "kernels/parallel.h"

#include <ATen/Parallel.h>

#include <mutex>
#include <set>

namespace ipt::kernels {

int ParallelForThreads() {
  std::mutex mutex;
  std::set<int> threads;
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(at::get_thread_num());
  });
  return static_cast<int>(threads.size());
}

}  // namespace ipt::kernels
