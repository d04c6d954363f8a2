// INT8 calibration: an Observer watches one tensor (an activation) over the calibration batches
// and says which float range to quantize it with; ChooseQParams (qparams.h) turns the range into
// scale and zero point. Each algorithm is selectable by name in a recipe. No libtorch: callers
// pass raw float32 data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/calibration/qparams.h"

namespace ipt::calibration {

enum class Algorithm {
  kMinMax,               // running min and max (torch.ao.quantization.MinMaxObserver)
  kMovingAverageMinMax,  // moving average of batch min and max (MovingAverageMinMaxObserver)
  kHistogram,            // L2-optimal range over a histogram (HistogramObserver)
  kEntropy,              // KL-optimal symmetric threshold over a histogram of |x| (TensorRT)
  kPercentile,           // percentiles of a histogram
};

struct AlgorithmSpec {
  Algorithm algorithm = Algorithm::kMinMax;
  // kMovingAverageMinMax: weight of each batch's min and max after the first, in (0, 1].
  // PyTorch's default 0.01 follows the first batches closely and a late outlier weakly.
  double averaging_constant = 0.01;
  // kPercentile: the percent of values the range keeps, in [50, 100]. 99.99 clips the most
  // extreme 0.01% (per side for affine ranges); 100 is MinMax at histogram resolution.
  double percentile = 99.99;
  // kHistogram, kEntropy, kPercentile: histogram bins, in [256, 1 << 20]. More bins resolve the
  // range more finely; the L2 search costs O(bins) per step and entropy O(bins^2) per
  // Calibrated() (about 40 ms at 2048).
  int64_t bins = 2048;
};

// Recipe spellings: "minmax", "moving_average_minmax", "histogram", "entropy", "percentile".
// Throws ipt::Error kInvalidArgument naming the known ones for anything else.
Algorithm ParseAlgorithm(std::string_view name);
std::string_view ToString(Algorithm algorithm);
std::vector<std::string> AlgorithmNames();

// Watches one tensor. Thread-compatible: one observer per tensor per thread.
class Observer {
 public:
  virtual ~Observer() = default;

  // One call per calibration batch (the moving average is per call, like PyTorch's). Costs one
  // pass over the data (two for the histogram-based algorithms). An empty batch is ignored, as
  // PyTorch ignores empty tensors. Throws ipt::Error kInvalidArgument when data holds inf or NaN
  // (naming how many and the first index; the observer is then unchanged), for count < 0, or for
  // a null data pointer with count > 0.
  virtual void Observe(const float* data, int64_t count) = 0;

  // The calibrated range for quantizing to `type`, symmetric or affine: the histogram and entropy
  // searches depend on the number of levels the target has. Pass the result to ChooseQParams with
  // the same type and scheme. Throws ipt::Error kInvalidArgument if no non-empty batch was
  // observed.
  virtual Range Calibrated(QuantType type, bool symmetric) const = 0;

  // Non-empty batches observed so far.
  virtual int64_t calls() const = 0;
};

// What each algorithm returns from Calibrated (README.md has the references):
//   kMinMax, kMovingAverageMinMax: the running (averaged) min and max.
//   kHistogram: L2OptimalRange (histogram.h) with qmax - qmin + 1 levels.
//   kEntropy: [-t, t] for the KL-optimal t over 2048 (spec.bins) bins of |x|, with [0, t] or
//     [-t, 0] for one-signed data; t is at most max|x|. Levels: qmax - qmin + 1 for an affine
//     target and one-signed data, half of that otherwise (128 for s8).
//   kPercentile: symmetric: t = the percentile of |x|, as for kEntropy; affine: the
//     (100 - p) and p percentiles of x. Both within the observed min and max.
// The histogram-based observers accumulate one histogram across batches (Histogram in
// histogram.h), so several batches calibrate like their concatenation at histogram resolution.
// Throws ipt::Error kInvalidArgument for a spec field out of range, naming it.
std::unique_ptr<Observer> MakeObserver(const AlgorithmSpec& spec);

}  // namespace ipt::calibration
