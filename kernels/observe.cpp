#include "kernels/observe.h"

#include <mutex>
#include <utility>

#include "base/error.h"

namespace ipt::kernels {
namespace {

std::mutex& SinkMutex() {
  static std::mutex mutex;
  return mutex;
}

ObserveSink& Sink() {
  static ObserveSink sink;
  return sink;
}

}  // namespace

ScopedObserveSink::ScopedObserveSink(ObserveSink sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  if (Sink()) throw Error(ErrorCode::kBusy, "a calibration is already running in this process");
  Sink() = std::move(sink);
}

ScopedObserveSink::~ScopedObserveSink() {
  std::lock_guard<std::mutex> lock(SinkMutex());
  Sink() = nullptr;
}

at::Tensor Observe(const at::Tensor& value, int64_t slot) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  if (Sink()) Sink()(slot, value);
  return value;
}

}  // namespace ipt::kernels
