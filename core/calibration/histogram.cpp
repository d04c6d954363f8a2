#include "core/calibration/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "base/error.h"

namespace ipt::calibration {

namespace {

// Growths beyond this many sub-bins per new bin collapse the old counts into one bin: it keeps
// bins * downsample and the sub-bin offsets within int64 for every allowed bin count.
constexpr float kMaxDownsample = 1099511627776.0f;  // 2^40

struct Identity {
  float operator()(float value) const { return value; }
};
struct Absolute {
  float operator()(float value) const { return std::fabs(value); }
};

// Adds torch.histc's counts of map(data) over [left, right] to `counts`
// (aten/src/ATen/native/cpu/HistogramKernel.cpp, LINEAR_INTERPOLATION): the same float32
// expression, so a value on a bin boundary lands where PyTorch puts it, the right edge belongs
// to the last bin, and values outside are skipped as histc skips them. A span so wide that
// (value - left) * bins would overflow float32 is binned in double.
template <typename Map>
void Tally(const float* data, int64_t count, float left, float right, Map map,
           std::vector<float>& counts) {
  const auto bins = static_cast<int64_t>(counts.size());
  std::vector<int64_t> tally(counts.size(), 0);
  const float bins_f = static_cast<float>(bins);
  const float width = right - left;
  if (std::isfinite(width) && width < std::numeric_limits<float>::max() / bins_f) {
    for (int64_t i = 0; i < count; ++i) {
      const float value = map(data[i]);
      if (!(value >= left && value <= right)) continue;
      const auto bin = static_cast<int64_t>((value - left) * bins_f / width);
      ++tally[static_cast<size_t>(std::min(bin, bins - 1))];
    }
  } else {
    const double left_d = left;
    const double width_d = static_cast<double>(right) - left_d;
    for (int64_t i = 0; i < count; ++i) {
      const float value = map(data[i]);
      if (!(value >= left && value <= right)) continue;
      const auto bin = static_cast<int64_t>((value - left_d) / width_d * static_cast<double>(bins));
      ++tally[static_cast<size_t>(std::min(bin, bins - 1))];
    }
  }
  for (size_t b = 0; b < counts.size(); ++b) counts[b] += static_cast<float>(tally[b]);
}

void TallyMapped(const float* data, int64_t count, float left, float right, bool absolute,
                 std::vector<float>& counts) {
  if (absolute) {
    Tally(data, count, left, right, Absolute{}, counts);
  } else {
    Tally(data, count, left, right, Identity{}, counts);
  }
}

// Cumulative counts for interpolated lookups: before(b) is the count of bins [0, b).
class Cumulative {
 public:
  explicit Cumulative(const std::vector<float>& counts) : before_(counts.size() + 1, 0.0) {
    for (size_t b = 0; b < counts.size(); ++b) before_[b + 1] = before_[b] + counts[b];
  }
  double total() const { return before_.back(); }
  double before(size_t bin) const { return before_[bin]; }

 private:
  std::vector<double> before_;
};

// (end^3 - begin^3) / 3: the integral of x^2 over [begin, end], PyTorch's _get_norm per density.
double Norm(double begin, double end) { return (end * end * end - begin * begin * begin) / 3.0; }

// PyTorch's _compute_quantization_error for keeping bins [start, end], in units of one bin: each
// bin's counts are uniform over it, and every value is rounded to the centre of its level among
// `levels` equal levels spanning the kept bins (values outside go to the end levels).
double QuantizationError(const std::vector<float>& counts, int64_t start, int64_t end,
                         int64_t levels) {
  const double level_width = static_cast<double>(end - start + 1) / static_cast<double>(levels);
  const double half = level_width / 2.0;
  const double whole_level = Norm(-half, half);
  const auto level_of = [&](double position) {
    return std::clamp(std::floor(position / level_width), 0.0, static_cast<double>(levels - 1));
  };
  double error = 0.0;
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0.0f) continue;
    const double begin = static_cast<double>(b) - static_cast<double>(start);
    const double finish = begin + 1.0;
    const double first = level_of(begin);
    const double last = level_of(finish);
    const double norm = Norm(begin - (first + 0.5) * level_width, half) +
                        (last - first - 1.0) * whole_level +
                        Norm(-half, finish - (last + 0.5) * level_width);
    error += static_cast<double>(counts[b]) * norm;
  }
  return error;
}

}  // namespace

Histogram::Histogram(int64_t bins) {
  if (bins < 1 || bins > kMaxBins) {
    throw Error(ErrorCode::kInvalidArgument, "a calibration histogram needs 1 to " +
                                                 std::to_string(kMaxBins) + " bins, got " +
                                                 std::to_string(bins));
  }
  counts_.assign(static_cast<size_t>(bins), 0.0f);
}

float Histogram::Edge(int64_t index) const {
  const float span = max_ - min_;
  if (std::isfinite(span)) {
    return min_ + span / static_cast<float>(bins()) * static_cast<float>(index);
  }
  return static_cast<float>(min_ + (static_cast<double>(max_) - min_) /
                                       static_cast<double>(bins()) * static_cast<double>(index));
}

void Histogram::Add(const float* data, int64_t count, float low, float high, bool absolute) {
  if (count == 0) return;
  if (!initialized_ || min_ == max_) {
    initialized_ = true;
    min_ = low;
    max_ = high;
    std::fill(counts_.begin(), counts_.end(), 0.0f);
    if (low == high) {
      // torch.histc bins a constant over [c - 1, c + 1]: everything in the middle bin. Only the
      // total matters: a degenerate range is replaced by the next batch and searches return it.
      counts_[counts_.size() / 2] = static_cast<float>(count);
    } else {
      TallyMapped(data, count, low, high, absolute, counts_);
    }
    return;
  }
  const Regrid grid = AdjustRange(std::min(low, min_), std::max(high, max_));
  std::vector<float> merged(counts_.size(), 0.0f);
  TallyMapped(data, count, grid.min, grid.max, absolute, merged);
  if (grid.min == min_ && grid.max == max_) {
    for (size_t b = 0; b < merged.size(); ++b) merged[b] += counts_[b];
  } else {
    AddResampled(grid, merged);
  }
  counts_ = std::move(merged);
  min_ = grid.min;
  max_ = grid.max;
}

// PyTorch's _adjust_min_max in its float32 arithmetic.
Histogram::Regrid Histogram::AdjustRange(float combined_min, float combined_max) const {
  const float sub_width = (max_ - min_) / static_cast<float>(bins() * kUpsampleRate);
  const float combined_span = combined_max - combined_min;
  if (sub_width > 0.0f && std::isfinite(sub_width) && std::isfinite(combined_span)) {
    const float old_width = static_cast<float>(bins()) * sub_width;
    const float downsample = std::ceil(combined_span / old_width);
    if (downsample <= kMaxDownsample) {
      // Relax only the max, so that a one-sided distribution keeps its min at zero.
      const float relaxed_max = combined_max + (downsample * old_width - combined_span);
      const float start = std::nearbyint((min_ - combined_min) / sub_width);
      if (std::isfinite(relaxed_max)) {
        return {combined_min, relaxed_max, static_cast<int64_t>(downsample),
                static_cast<int64_t>(start)};
      }
    }
  }
  return {combined_min, combined_max, 0, 0};
}

// PyTorch's _combine_histograms without materialising its bins * downsample sub-bins (which for
// a range growing a million-fold are gigabytes): the cumulative sub-bin counts at each new bin's
// end are computed directly, in double as PyTorch's cumsum, and differenced against the previous
// cumulative rounded to float32 as PyTorch does.
void Histogram::AddResampled(const Regrid& grid, std::vector<float>& merged) const {
  const int64_t bins = this->bins();
  if (grid.downsample == 0) {
    const double total = Cumulative(counts_).total();
    const double position = (static_cast<double>(min_) - grid.min) /
                            (static_cast<double>(grid.max) - grid.min) * static_cast<double>(bins);
    const auto bin = std::clamp(static_cast<int64_t>(position), int64_t{0}, bins - 1);
    merged[static_cast<size_t>(bin)] += static_cast<float>(total);
    return;
  }
  std::vector<double> whole(counts_.size() + 1, 0.0);
  for (size_t b = 0; b < counts_.size(); ++b) {
    whole[b + 1] = whole[b] + static_cast<double>(counts_[b]) * kUpsampleRate;
  }
  // Old counts in sub-bins [0, end) of the new grid.
  const auto cumulative_at = [&](int64_t end) {
    if (end <= grid.start) return 0.0;
    const int64_t offset = end - grid.start;
    const int64_t full = std::min(offset / kUpsampleRate, bins);
    double value = whole[static_cast<size_t>(full)];
    if (full < bins) {
      value += static_cast<double>(counts_[static_cast<size_t>(full)]) *
               static_cast<double>(offset - full * kUpsampleRate);
    }
    return value;
  };
  float previous = 0.0f;
  for (int64_t b = 0; b < bins; ++b) {
    // The last bin also takes any sub-bins rounding put past the end (PyTorch would fail there).
    const int64_t end = b + 1 < bins
                            ? (b + 1) * grid.downsample
                            : std::max(bins * grid.downsample, grid.start + bins * kUpsampleRate);
    const double cumulative = cumulative_at(end);
    merged[static_cast<size_t>(b)] += static_cast<float>((cumulative - previous) / kUpsampleRate);
    previous = static_cast<float>(cumulative);
  }
}

Range L2OptimalRange(const Histogram& histogram, int64_t levels) {
  if (histogram.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "L2 range search over an empty histogram");
  }
  if (levels < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "L2 range search needs at least 1 level, got " + std::to_string(levels));
  }
  if (histogram.min() == histogram.max()) return {histogram.min(), histogram.max()};
  const std::vector<float>& counts = histogram.counts();
  // torch.cumsum accumulates float32 in double and stores float32; torch.sum is float32.
  std::vector<float> cumulative(counts.size());
  double running = 0.0;
  for (size_t b = 0; b < counts.size(); ++b) {
    running += counts[b];
    cumulative[b] = static_cast<float>(running);
  }
  const double total = static_cast<float>(running);

  constexpr double kStep = 1e-5;
  double alpha = 0.0;
  double beta = 1.0;
  int64_t start = 0;
  int64_t end = histogram.bins() - 1;
  double error_min = std::numeric_limits<double>::infinity();
  while (alpha < beta) {
    const double next_alpha = alpha + kStep;
    const double next_beta = beta - kStep;
    // PyTorch compares its float32 cumsum with these Python floats in float32.
    const auto low_count = static_cast<float>(next_alpha * total);
    const auto high_count = static_cast<float>(next_beta * total);
    int64_t left = start;
    int64_t right = end;
    while (left < end && cumulative[static_cast<size_t>(left)] < low_count) ++left;
    while (right > start && cumulative[static_cast<size_t>(right)] > high_count) --right;
    int64_t next_start = start;
    int64_t next_end = end;
    if (left - start > end - right) {
      next_start = left;
      alpha = next_alpha;
    } else {
      next_end = right;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const double error = QuantizationError(counts, next_start, next_end, levels);
    if (error > error_min) break;
    error_min = error;
    start = next_start;
    end = next_end;
  }
  return {histogram.Edge(start), histogram.Edge(end + 1)};
}

std::vector<double> EntropyDivergences(const std::vector<double>& counts, int64_t levels) {
  const auto bins = static_cast<int64_t>(counts.size());
  if (levels < 1 || levels > bins) {
    std::ostringstream message;
    message << "entropy calibration needs 1 <= levels <= bins, got " << levels << " levels and "
            << bins << " bins";
    throw Error(ErrorCode::kInvalidArgument, message.str());
  }
  std::vector<double> before(counts.size() + 1, 0.0);
  for (size_t b = 0; b < counts.size(); ++b) before[b + 1] = before[b] + counts[b];
  const double total = before.back();
  std::vector<double> divergences;
  divergences.reserve(static_cast<size_t>(bins - levels + 1));
  for (int64_t kept = levels; kept <= bins; ++kept) {
    const double clipped = total - before[static_cast<size_t>(kept)];
    const double q_total = before[static_cast<size_t>(kept)];
    if (before[static_cast<size_t>(kept - 1)] == 0.0) {
      divergences.push_back(std::numeric_limits<double>::infinity());
      continue;
    }
    const auto p_count = [&](int64_t b) {
      return counts[static_cast<size_t>(b)] + (b == kept - 1 ? clipped : 0.0);
    };
    const int64_t merged = kept / levels;
    double divergence = 0.0;
    for (int64_t level = 0; level < levels; ++level) {
      const int64_t first = level * merged;
      const int64_t last = level + 1 == levels ? kept : first + merged;
      int64_t nonzero = 0;
      for (int64_t b = first; b < last; ++b) {
        if (p_count(b) != 0.0) ++nonzero;
      }
      if (nonzero == 0) continue;
      const double level_mass =
          before[static_cast<size_t>(last)] - before[static_cast<size_t>(first)];
      const double q =
          level_mass > 0.0 ? level_mass / static_cast<double>(nonzero) : kEmptyBinCount;
      for (int64_t b = first; b < last; ++b) {
        const double p = p_count(b);
        if (p == 0.0) continue;
        divergence += p / total * std::log((p / total) / (q / q_total));
      }
    }
    divergences.push_back(divergence);
  }
  return divergences;
}

int64_t EntropyOptimalBins(const std::vector<double>& counts, int64_t levels) {
  const std::vector<double> divergences = EntropyDivergences(counts, levels);
  const auto best = std::min_element(divergences.begin(), divergences.end());
  if (std::isinf(*best)) return static_cast<int64_t>(counts.size());
  return levels + (best - divergences.begin());
}

double Quantile(const Histogram& histogram, double fraction) {
  const std::vector<float>& counts = histogram.counts();
  const Cumulative cumulative(counts);
  const double target = std::clamp(fraction, 0.0, 1.0) * cumulative.total();
  const double width =
      (static_cast<double>(histogram.max()) - histogram.min()) / static_cast<double>(counts.size());
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] > 0.0f && cumulative.before(b + 1) >= target) {
      const double within = (target - cumulative.before(b)) / counts[b];
      return histogram.min() + (static_cast<double>(b) + std::max(within, 0.0)) * width;
    }
  }
  return histogram.max();
}

double AbsQuantile(const Histogram& histogram, double fraction) {
  const std::vector<float>& counts = histogram.counts();
  const Cumulative cumulative(counts);
  const double target = std::clamp(fraction, 0.0, 1.0) * cumulative.total();
  const double min = histogram.min();
  const double width =
      (static_cast<double>(histogram.max()) - min) / static_cast<double>(counts.size());
  const auto bins = static_cast<double>(counts.size());
  // Interpolated count of values below `value`.
  const auto count_below = [&](double value) {
    const double position = (value - min) / width;
    if (position <= 0.0) return 0.0;
    if (position >= bins) return cumulative.total();
    const auto bin = static_cast<size_t>(position);
    return cumulative.before(bin) + counts[bin] * (position - static_cast<double>(bin));
  };
  double low = 0.0;
  double high = std::max(std::fabs(min), std::fabs(static_cast<double>(histogram.max())));
  if (width <= 0.0) return high;
  // 200 halvings reach the double resolution of any float range.
  for (int step = 0; step < 200 && low < high; ++step) {
    const double middle = low + (high - low) / 2.0;
    if (middle == low || middle == high) break;
    if (count_below(middle) - count_below(-middle) >= target) {
      high = middle;
    } else {
      low = middle;
    }
  }
  return high;
}

}  // namespace ipt::calibration
