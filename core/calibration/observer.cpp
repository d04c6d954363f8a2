#include "core/calibration/observer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "core/calibration/histogram.h"
#include "core/calibration/scan.h"

namespace ipt::calibration {

namespace {

constexpr std::array<std::pair<Algorithm, std::string_view>, 5> kAlgorithmNames = {{
    {Algorithm::kMinMax, "minmax"},
    {Algorithm::kMovingAverageMinMax, "moving_average_minmax"},
    {Algorithm::kHistogram, "histogram"},
    {Algorithm::kEntropy, "entropy"},
    {Algorithm::kPercentile, "percentile"},
}};

constexpr int64_t kMinBins = 256;

// The extremes of a batch, or nothing for an empty one.
std::optional<Extrema> ScanBatch(const float* data, int64_t count) {
  if (count < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "calibration batch with a negative element count " + std::to_string(count));
  }
  if (count == 0) return std::nullopt;
  if (data == nullptr) {
    throw Error(ErrorCode::kInvalidArgument, "calibration batch of " + std::to_string(count) +
                                                 " elements with a null data pointer");
  }
  return ScanFinite(data, count, "calibration batch");
}

// Common bookkeeping: the exact extremes of everything observed and the batch count.
class ObserverBase : public Observer {
 public:
  explicit ObserverBase(Algorithm algorithm) : algorithm_(algorithm) {}

  void Observe(const float* data, int64_t count) final {
    const std::optional<Extrema> batch = ScanBatch(data, count);
    if (!batch) return;
    Add(data, count, *batch);
    if (calls_ == 0) {
      extrema_ = *batch;
    } else {
      extrema_.min = std::min(extrema_.min, batch->min);
      extrema_.max = std::max(extrema_.max, batch->max);
    }
    ++calls_;
  }

  Range Calibrated(QuantType type, bool symmetric) const final {
    if (calls_ == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(ToString(algorithm_)) +
                      " observer has seen no data: Observe() a non-empty batch before "
                      "Calibrated()");
    }
    return Compute(type, symmetric);
  }

  int64_t calls() const final { return calls_; }

 protected:
  // A finite, non-empty batch whose extremes are `batch`; calls() counts earlier batches.
  virtual void Add(const float* data, int64_t count, Extrema batch) = 0;
  // REQUIRES: calls() > 0.
  virtual Range Compute(QuantType type, bool symmetric) const = 0;

  const Extrema& extrema() const { return extrema_; }
  float abs_max() const { return std::max(-extrema_.min, extrema_.max); }
  // [-t, t] narrowed to the data's sign: [0, t] for non-negative data, [-t, 0] for non-positive.
  Range SymmetricRange(float threshold) const {
    return {extrema_.min >= 0.0f ? 0.0f : -threshold, extrema_.max <= 0.0f ? 0.0f : threshold};
  }

 private:
  Algorithm algorithm_;
  Extrema extrema_{0.0f, 0.0f};
  int64_t calls_ = 0;
};

class MinMaxObserver final : public ObserverBase {
 public:
  MinMaxObserver() : ObserverBase(Algorithm::kMinMax) {}

 private:
  void Add(const float* /*data*/, int64_t /*count*/, Extrema /*batch*/) override {}
  Range Compute(QuantType /*type*/, bool /*symmetric*/) const override {
    return {extrema().min, extrema().max};
  }
};

// PyTorch's update, average + c * (value - average), in its float32 arithmetic; in double when
// the difference overflows float32 (the result lies between the two, so it always fits).
float MovingAverage(float average, float value, double constant) {
  const float delta = value - average;
  if (std::isfinite(delta)) return average + static_cast<float>(constant) * delta;
  return static_cast<float>(average + constant * (static_cast<double>(value) - average));
}

class MovingAverageMinMaxObserver final : public ObserverBase {
 public:
  explicit MovingAverageMinMaxObserver(double averaging_constant)
      : ObserverBase(Algorithm::kMovingAverageMinMax), constant_(averaging_constant) {}

 private:
  void Add(const float* /*data*/, int64_t /*count*/, Extrema batch) override {
    if (calls() == 0) {
      average_ = batch;
    } else {
      average_.min = MovingAverage(average_.min, batch.min, constant_);
      average_.max = MovingAverage(average_.max, batch.max, constant_);
    }
  }
  Range Compute(QuantType /*type*/, bool /*symmetric*/) const override {
    return {average_.min, average_.max};
  }

  double constant_;
  Extrema average_{0.0f, 0.0f};
};

int64_t LevelCount(QuantType type) {
  const IntegerRange q = IntegerRangeOf(type);
  return int64_t{q.max} - q.min + 1;
}

class HistogramObserver final : public ObserverBase {
 public:
  explicit HistogramObserver(int64_t bins)
      : ObserverBase(Algorithm::kHistogram), histogram_(bins) {}

 private:
  void Add(const float* data, int64_t count, Extrema batch) override {
    histogram_.Add(data, count, batch.min, batch.max, /*absolute=*/false);
  }
  Range Compute(QuantType type, bool /*symmetric*/) const override {
    return L2OptimalRange(histogram_, LevelCount(type));
  }

  Histogram histogram_;
};

class EntropyObserver final : public ObserverBase {
 public:
  explicit EntropyObserver(int64_t bins) : ObserverBase(Algorithm::kEntropy), histogram_(bins) {}

 private:
  void Add(const float* data, int64_t count, Extrema batch) override {
    histogram_.Add(data, count, 0.0f, std::max(-batch.min, batch.max), /*absolute=*/true);
  }
  Range Compute(QuantType type, bool symmetric) const override {
    if (histogram_.max() == 0.0f) return {extrema().min, extrema().max};
    const bool one_signed = extrema().min >= 0.0f || extrema().max <= 0.0f;
    const int64_t levels = one_signed && !symmetric ? LevelCount(type) : LevelCount(type) / 2;
    std::vector<double> counts(histogram_.counts().begin(), histogram_.counts().end());
    // The first bin of |x| holds every exact zero (a ReLU's output is half zeros): left as it
    // is, that spike decides the divergence and the threshold falls to a small multiple of the
    // level count (1/8 of the range on ResNet-50, which destroyed its outputs). NVIDIA's own
    // entropy calibrator flattens it to its neighbour the same way.
    if (counts.size() > 1) counts[0] = counts[1];
    const int64_t kept = EntropyOptimalBins(counts, levels);
    const double width = static_cast<double>(histogram_.max()) / static_cast<double>(counts.size());
    const auto threshold = static_cast<float>(
        std::min((static_cast<double>(kept) + 0.5) * width, static_cast<double>(abs_max())));
    return SymmetricRange(threshold);
  }

  Histogram histogram_;
};

class PercentileObserver final : public ObserverBase {
 public:
  PercentileObserver(int64_t bins, double percentile)
      : ObserverBase(Algorithm::kPercentile), histogram_(bins), fraction_(percentile / 100.0) {}

 private:
  void Add(const float* data, int64_t count, Extrema batch) override {
    histogram_.Add(data, count, batch.min, batch.max, /*absolute=*/false);
  }
  Range Compute(QuantType /*type*/, bool symmetric) const override {
    if (histogram_.min() == histogram_.max()) return {extrema().min, extrema().max};
    if (symmetric) {
      const double threshold = AbsQuantile(histogram_, fraction_);
      return SymmetricRange(static_cast<float>(std::min(threshold, double{abs_max()})));
    }
    const auto clamp = [&](double value) {
      return static_cast<float>(std::clamp(value, double{extrema().min}, double{extrema().max}));
    };
    return {clamp(Quantile(histogram_, 1.0 - fraction_)), clamp(Quantile(histogram_, fraction_))};
  }

  Histogram histogram_;
  double fraction_;
};

[[noreturn]] void ThrowBadSpec(std::string_view field, double value, std::string_view allowed) {
  std::ostringstream message;
  message << "calibration " << field << " " << value << " is out of range: " << allowed;
  throw Error(ErrorCode::kInvalidArgument, message.str());
}

void CheckBins(int64_t bins) {
  if (bins < kMinBins || bins > Histogram::kMaxBins) {
    ThrowBadSpec("bins", static_cast<double>(bins),
                 "needs " + std::to_string(kMinBins) + " to " +
                     std::to_string(Histogram::kMaxBins) + " (at least one per u8 level)");
  }
}

}  // namespace

Algorithm ParseAlgorithm(std::string_view name) {
  for (const auto& [algorithm, spelling] : kAlgorithmNames) {
    if (spelling == name) return algorithm;
  }
  std::string known;
  for (const auto& [algorithm, spelling] : kAlgorithmNames) {
    known += (known.empty() ? "" : ", ") + std::string(spelling);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown calibration algorithm '" + std::string(name) + "' (known: " + known + ")");
}

std::string_view ToString(Algorithm algorithm) {
  for (const auto& [candidate, spelling] : kAlgorithmNames) {
    if (candidate == algorithm) return spelling;
  }
  return "?";
}

std::vector<std::string> AlgorithmNames() {
  std::vector<std::string> names;
  names.reserve(kAlgorithmNames.size());
  for (const auto& [algorithm, spelling] : kAlgorithmNames) names.emplace_back(spelling);
  return names;
}

std::unique_ptr<Observer> MakeObserver(const AlgorithmSpec& spec) {
  switch (spec.algorithm) {
    case Algorithm::kMinMax:
      return std::make_unique<MinMaxObserver>();
    case Algorithm::kMovingAverageMinMax:
      if (!(spec.averaging_constant > 0.0 && spec.averaging_constant <= 1.0)) {
        ThrowBadSpec("averaging_constant", spec.averaging_constant, "needs (0, 1]");
      }
      return std::make_unique<MovingAverageMinMaxObserver>(spec.averaging_constant);
    case Algorithm::kHistogram:
      CheckBins(spec.bins);
      return std::make_unique<HistogramObserver>(spec.bins);
    case Algorithm::kEntropy:
      CheckBins(spec.bins);
      return std::make_unique<EntropyObserver>(spec.bins);
    case Algorithm::kPercentile:
      CheckBins(spec.bins);
      if (!(spec.percentile >= 50.0 && spec.percentile <= 100.0)) {
        ThrowBadSpec("percentile", spec.percentile, "needs [50, 100]");
      }
      return std::make_unique<PercentileObserver>(spec.bins, spec.percentile);
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown calibration algorithm");
}

}  // namespace ipt::calibration
