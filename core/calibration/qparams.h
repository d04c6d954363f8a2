// Quantization parameters from a calibrated range: the integer targets ipex-tune quantizes to and
// PyTorch's rule for scale and zero point, so that a recipe calibrated here quantizes exactly like
// the same recipe calibrated with torch.ao.quantization observers.
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

namespace ipt::calibration {

// The integer target of an activation or weight.
//   kU8: [0, 255], the default for activations on CPUs with VNNI.
//   kU7: [0, 127] in u8 storage, for CPUs without VNNI: their u8 x s8 multiply (vpmaddubsw) adds
//        pairs of products in saturating int16, which two u8 x s8 products can overflow.
//   kS8: [-128, 127], PyTorch's qint8 without reduce_range. Symmetric s8 activations use the whole
//        range with scale max|x| / 127.5 as PyTorch does; weights use [-127, 127] (see
//        PerChannelSymmetricScales).
enum class QuantType { kU8, kU7, kS8 };

// "u8", "u7", "s8".
std::string_view ToString(QuantType type);

struct IntegerRange {
  int32_t min;
  int32_t max;
};
IntegerRange IntegerRangeOf(QuantType type);

// A calibrated float range. Finite, min <= max; it need not contain 0 (ChooseQParams widens it).
struct Range {
  float min;
  float max;
};

struct QParams {
  float scale;
  int32_t zero_point;
  QuantType type;
  int32_t qmin;
  int32_t qmax;
};

// The smallest scale ChooseQParams returns: PyTorch's default observer eps
// (torch.finfo(torch.float32).eps), so an all-zero range still gives a usable positive scale.
inline constexpr float kMinScale = std::numeric_limits<float>::epsilon();

// PyTorch's rule (torch/ao/quantization/observer.py, _calculate_qparams, torch 1.13), computed in
// float32 as PyTorch does so scales agree bit for bit:
//   the range is widened to include 0;
//   affine:    scale = max(range / (qmax - qmin), kMinScale),
//              zero_point = clamp(qmin - round_half_even(min / scale), qmin, qmax);
//   symmetric: scale = max(max|x| / ((qmax - qmin) / 2), kMinScale), zero_point = 0 for s8,
//              128 for u8 (PyTorch's quint8 default), 63 for u7 (PyTorch's rule for a custom
//              quint8 range [0, 127]: the rounded-down middle).
// Ranges too wide for float32 arithmetic (|min| + |max| > FLT_MAX) are computed in double.
// Throws ipt::Error kInvalidArgument for a non-finite range or min > max.
QParams ChooseQParams(Range range, QuantType type, bool symmetric);

// Symmetric s8 scales per output channel for weights laid out [channels, per_channel] row-major:
// max(max|w| / 127, kMinScale), i.e. integers in [-127, 127] with zero point 0: the range is
// symmetric, so w and -w quantize to opposite integers (PyTorch's default [-128, 127] divides by
// 127.5 and clamps +max|w| to 127 but -max|w| to -128). Equal to PyTorch's per_channel_symmetric
// observer with quant_min=-127, quant_max=127. A channel of zeros gets kMinScale. Throws ipt::Error
// kInvalidArgument for negative sizes, a null weight with a non-empty shape, or inf/NaN weights
// (naming the channel).
std::vector<float> PerChannelSymmetricScales(const float* weight, int64_t channels,
                                             int64_t per_channel);

}  // namespace ipt::calibration
