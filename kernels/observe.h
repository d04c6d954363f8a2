// Calibration hook: the op `ipt::observe(x, slot)` returns x unchanged and hands it to the sink
// installed here. The core inserts it into a copy of the graph while calibrating, never into a
// model it returns.
#pragma once

#include <ATen/ATen.h>

#include <functional>

namespace ipt::kernels {

using ObserveSink = std::function<void(int64_t slot, const at::Tensor& value)>;

// Installs a sink for its lifetime. One at a time per process: a second throws
// ipt::Error(kBusy).
class ScopedObserveSink {
 public:
  explicit ScopedObserveSink(ObserveSink sink);
  ~ScopedObserveSink();
  ScopedObserveSink(const ScopedObserveSink&) = delete;
  ScopedObserveSink& operator=(const ScopedObserveSink&) = delete;
};

// What ipt::observe runs; without a sink it only passes x through.
at::Tensor Observe(const at::Tensor& value, int64_t slot);

}  // namespace ipt::kernels
