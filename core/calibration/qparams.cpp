#include "core/calibration/qparams.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "base/error.h"
#include "core/calibration/scan.h"

namespace ipt::calibration {

std::string_view ToString(QuantType type) {
  switch (type) {
    case QuantType::kU8:
      return "u8";
    case QuantType::kU7:
      return "u7";
    case QuantType::kS8:
      return "s8";
  }
  return "?";
}

IntegerRange IntegerRangeOf(QuantType type) {
  switch (type) {
    case QuantType::kU8:
      return {0, 255};
    case QuantType::kU7:
      return {0, 127};
    case QuantType::kS8:
      return {-128, 127};
  }
  throw Error(ErrorCode::kInternal, "unknown QuantType");
}

namespace {

// (high - low) / divisor in float32 as PyTorch computes it, or in double when the difference
// overflows float32 (the quotient itself is always representable for divisor >= 1).
float SpanOver(float high, float low, float divisor) {
  const float span = high - low;
  if (std::isfinite(span)) return span / divisor;
  return static_cast<float>((static_cast<double>(high) - low) / divisor);
}

}  // namespace

QParams ChooseQParams(Range range, QuantType type, bool symmetric) {
  if (!std::isfinite(range.min) || !std::isfinite(range.max) || range.min > range.max) {
    std::ostringstream message;
    message << "cannot choose quantization parameters for the range [" << range.min << ", "
            << range.max << "]: it must be finite with min <= max";
    throw Error(ErrorCode::kInvalidArgument, message.str());
  }
  const IntegerRange q = IntegerRangeOf(type);
  const float min_neg = std::min(range.min, 0.0f);
  const float max_pos = std::max(range.max, 0.0f);
  QParams params{1.0f, 0, type, q.min, q.max};
  if (symmetric) {
    const float abs_max = std::max(-min_neg, max_pos);
    params.scale = std::max(abs_max / (static_cast<float>(q.max - q.min) / 2), kMinScale);
    switch (type) {
      case QuantType::kS8:
        params.zero_point = 0;
        break;
      case QuantType::kU8:
        params.zero_point = 128;
        break;
      case QuantType::kU7:
        params.zero_point = (q.min + q.max) / 2;
        break;
    }
  } else {
    params.scale =
        std::max(SpanOver(max_pos, min_neg, static_cast<float>(q.max - q.min)), kMinScale);
    // |min_neg / scale| <= qmax - qmin (+ rounding), so the conversion cannot overflow.
    const auto shift = static_cast<int32_t>(std::nearbyint(min_neg / params.scale));
    params.zero_point = std::clamp(q.min - shift, q.min, q.max);
  }
  return params;
}

std::vector<float> PerChannelSymmetricScales(const float* weight, int64_t channels,
                                             int64_t per_channel) {
  if (channels < 0 || per_channel < 0) {
    std::ostringstream message;
    message << "per-channel scales need a non-negative weight shape, got [" << channels << ", "
            << per_channel << "]";
    throw Error(ErrorCode::kInvalidArgument, message.str());
  }
  if (weight == nullptr && channels > 0 && per_channel > 0) {
    throw Error(ErrorCode::kInvalidArgument, "per-channel scales of a null weight");
  }
  constexpr float kSymmetricMax = 127.0f;
  std::vector<float> scales(static_cast<size_t>(channels), kMinScale);
  if (per_channel == 0) return scales;
  for (int64_t c = 0; c < channels; ++c) {
    const Extrema extrema =
        ScanFinite(weight + c * per_channel, per_channel, "weight channel " + std::to_string(c));
    const float abs_max = std::max(-std::min(extrema.min, 0.0f), std::max(extrema.max, 0.0f));
    scales[static_cast<size_t>(c)] = std::max(abs_max / kSymmetricMax, kMinScale);
  }
  return scales;
}

}  // namespace ipt::calibration
