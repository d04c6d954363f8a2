// What the int8 kernels share: how an activation tensor is quantized (per tensor, affine or
// symmetric, u8, u7 or s8) and how weights are (per output channel, symmetric s8).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ipt::kernels {

// q = clamp(round(x / scale) + zero_point, qmin, qmax), stored as uint8 when qmin >= 0 and int8
// otherwise. u7 ([0, 127] in uint8) is what CPUs without VNNI need: their u8 x s8 instruction
// (vpmaddubsw) adds pairs of products in int16 and saturates on full-range u8.
struct ActivationQuant {
  float scale = 1.0F;
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 255;
  bool is_signed() const { return qmin < 0; }
};

// Whether oneDNN can use VNNI (u8 x s8 without the int16 saturation) on this CPU.
bool CpuHasVnni();

// The activation range a quantized kernel should use here: [0, 255] with VNNI, [0, 127] without.
int32_t UnsignedActivationMax();

// Affine unsigned parameters for values in [min, max] (the range is widened to hold 0, so that
// zero padding is exact): the rule of PyTorch's observers.
ActivationQuant AffineUnsignedQuant(float min, float max, int32_t qmax);

// `x` (fp32, any layout) quantized with `q`, in the same sizes and memory layout as `x`.
at::Tensor QuantizeActivation(const at::Tensor& x, const ActivationQuant& q);

// Input smoothing (SmoothQuant): `x` (fp32, [..., K]) with each channel j divided by
// smoothing[j] (fp32 [K], positive) before it is quantized with `q`, in one pass. The layer
// that reads the result multiplies its weight's column j by smoothing[j], so the product is
// unchanged while the channels' ranges, and so their quantization steps, even out.
at::Tensor QuantizeActivationSmoothed(const at::Tensor& x, const ActivationQuant& q,
                                      const at::Tensor& smoothing);

// Per-output-channel symmetric weights: [O, ...] fp32 -> int8 in [-127, 127] and a scale per
// output channel (a channel of zeros gets scale 1).
struct QuantizedWeight {
  at::Tensor data;            // int8, the weight's sizes, contiguous
  std::vector<float> scales;  // one per output channel
};
QuantizedWeight QuantizeWeightPerChannel(const at::Tensor& weight);

// "scale=0.0123 zero_point=3 range=[0, 127]", for messages and reports.
std::string ToString(const ActivationQuant& q);

}  // namespace ipt::kernels
