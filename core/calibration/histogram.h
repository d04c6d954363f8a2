// The running histogram the histogram-based calibrations share, and the three searches over it:
// the L2 range search of PyTorch's HistogramObserver, TensorRT's entropy (KL divergence)
// threshold, and percentiles. The observers in observer.h are the interface to use; the pieces are
// public so that tests can check each against its definition.
#pragma once

#include <cstdint>
#include <vector>

#include "core/calibration/qparams.h"

namespace ipt::calibration {

// `bins` equal-width bins over [min(), max()] that widen with the data, ported from PyTorch's
// HistogramObserver.forward (torch 1.13) in the same float32 arithmetic, so that the counts and
// range agree with PyTorch's bit for bit on ordinary data:
//   - the first batch sets the range to its extremes and is binned as torch.histc bins it;
//   - a batch within the range adds its counts;
//   - a batch outside widens the range (the new max is relaxed so that the new bin width is a
//     whole multiple of the old one divided by kUpsampleRate) and the old counts are spread
//     uniformly over kUpsampleRate sub-bins each and summed back into the new bins.
// One deliberate difference: PyTorch 1.13 truncates the histc range to integers
// (`min=int(min_val)`), which drops values beyond the truncated ends, miscounts every range that
// is not integral and overflows beyond int64; this class bins over the exact float range, as
// PyTorch does before and after 1.13. Ranges PyTorch cannot handle at all also work here: a
// growth too large to express on PyTorch's sub-bin grid (> 2^40 times) puts the old counts in the
// new bin holding the old range, and spans beyond float32 are binned in double.
// Also as PyTorch: a history of one repeated value (min() == max()) is replaced, not merged, by
// the next batch. Costs one pass over each batch plus O(bins) per batch. Thread-compatible.
class Histogram {
 public:
  // Sub-bins per old bin when the range widens (PyTorch's upsample_rate default). More keeps the
  // re-binned old counts closer to their true position at no cost here (the grid is implicit).
  static constexpr int64_t kUpsampleRate = 128;
  static constexpr int64_t kMaxBins = int64_t{1} << 20;

  // Throws ipt::Error kInvalidArgument unless 1 <= bins <= kMaxBins.
  explicit Histogram(int64_t bins);

  // Adds data[0, count), or |data| when `absolute`, whose extremes after that mapping are `low`
  // and `high` (callers have scanned the batch already). REQUIRES: finite data, low <= high.
  void Add(const float* data, int64_t count, float low, float high, bool absolute);

  bool empty() const { return !initialized_; }
  int64_t bins() const { return static_cast<int64_t>(counts_.size()); }
  // The histogram's range; max() may exceed the largest value seen (the relaxed max above).
  float min() const { return min_; }
  float max() const { return max_; }
  const std::vector<float>& counts() const { return counts_; }
  // The left edge of bin `index` (bins() gives max()), as PyTorch computes it:
  // min + ((max - min) / bins) * index in float32.
  float Edge(int64_t index) const;

 private:
  // Where the old histogram lies on the new one: new bins span `downsample` sub-bins of
  // 1/kUpsampleRate old bin each, and old bin 0 starts at sub-bin `start`. downsample == 0 when
  // the growth is too large for that grid.
  struct Regrid {
    float min;
    float max;
    int64_t downsample;
    int64_t start;
  };
  Regrid AdjustRange(float combined_min, float combined_max) const;
  void AddResampled(const Regrid& grid, std::vector<float>& merged) const;

  std::vector<float> counts_;
  float min_ = 0.0f;
  float max_ = 0.0f;
  bool initialized_ = false;
};

// PyTorch's HistogramObserver._non_linear_param_search (torch 1.13): starting from the whole
// histogram, repeatedly drop 1e-5 of the counts from the side that loses fewer bins, and stop when
// the L2 error of quantizing the histogram to `levels` equal levels over the kept bins stops
// falling. The error is PyTorch's (values uniform within a bin, rounded to level centres),
// evaluated in double in units of one bin: PyTorch's float32 value divided by width^2, the same
// minimiser without float32 overflow for wide ranges. Returns the kept bins' edges; a degenerate
// histogram (min() == max()) returns its range. O(bins) per step, a few hundred steps typically.
// Throws ipt::Error kInvalidArgument for an empty histogram or levels < 1.
Range L2OptimalRange(const Histogram& histogram, int64_t levels);

// TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017) over
// `counts`, a histogram of |x| whose bin 0 starts at 0. For each i in [levels, counts.size()]:
//   P = counts[0, i) with the tail counts[i, end) added to bin i-1 (clipped values saturate);
//   Q = counts[0, i) merged into `levels` levels of i / levels bins (the last level also takes
//       the remainder), each level's sum spread evenly over its bins where P is nonzero;
//   divergence = KL(P || Q), P normalised by its total and Q by the sum of counts[0, i).
// Two details follow MXNet's _get_optimal_threshold (which Intel Neural Compressor and TVM
// reuse) rather than the slide, because with the slide's literal Q a clip bin that is empty
// before clipping makes KL infinite, so data with far outliers (empty bins between the bulk and
// them) could never be clipped: the nonzero mask comes from P, and a Q bin still 0 where P is
// not counts as kEmptyBinCount (MXNet's smoothing eps, without its renormalisation).
// A candidate whose bins below i-1 are all empty puts every value in one bin, which is KL 0 by
// construction, not by merit (data in [-3, -1] would calibrate to t = 1): it gets +inf.
// Returns the divergences, element i - levels. Throws ipt::Error kInvalidArgument unless
// 1 <= levels <= counts.size(). O(counts.size()^2).
inline constexpr double kEmptyBinCount = 1e-4;
std::vector<double> EntropyDivergences(const std::vector<double>& counts, int64_t levels);

// The i of EntropyDivergences with the smallest divergence, the smallest such i on ties (argmin,
// as TensorRT's description and MXNet): a bulk narrower than `levels` bins ties every i up to
// 2 * levels - 1, and the smallest resolves it finest. counts.size() when every divergence is
// infinite (all counts in the last bin: a constant). The threshold is (i + 0.5) * bin width.
int64_t EntropyOptimalBins(const std::vector<double>& counts, int64_t levels);

// The value below which `fraction` (in [0, 1]) of the histogram's counts lie, interpolating
// linearly within a bin. REQUIRES: a non-empty histogram with at least one count.
double Quantile(const Histogram& histogram, double fraction);

// The smallest t >= 0 with `fraction` (in [0, 1]) of the counts in [-t, t], under the same
// interpolation (found by bisection). REQUIRES: as Quantile.
double AbsQuantile(const Histogram& histogram, double fraction);

}  // namespace ipt::calibration
