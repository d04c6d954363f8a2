// Blocked activations: a 4-D [N, C, H, W] activation held as a contiguous 5-D
// [N, C/b, H, W, b] tensor, oneDNN's nChw8c (b = 8) or nChw16c (b = 16). On CPUs without
// AVX-512, oneDNN 2.6's direct 3x3 convolutions run faster on nChw8c than on NHWC (ResNet-50
// bs16 fp32 as a whole: 1174 -> 967 ms, docs/search-space.md has the command), so a chain of
// convolutions passes its activations blocked and reorders only at the chain's edges.
// The channel count must divide by b (no padded channels). Any dtype.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace ipt::kernels {

// The channel block oneDNN's direct convolutions prefer on this CPU: 16 with AVX-512, else 8.
int64_t PreferredChannelBlock();

// [N, C, H, W] (any memory format) -> [N, C/block, H, W, block].
// Throws ipt::Error(kInvalidArgument) unless x is 4-D with C divisible by block (8 or 16).
at::Tensor ToBlocked(const at::Tensor& x, int64_t block);

// [N, C/b, H, W, b] -> [N, C, H, W], channels-last in memory or contiguous.
// Throws ipt::Error(kInvalidArgument) unless x is a 5-D blocked tensor.
at::Tensor FromBlocked(const at::Tensor& x, bool channels_last);

// max_pool2d over the H and W of a blocked tensor; the result is blocked too.
at::Tensor BlockedMaxPool2d(const at::Tensor& x, std::vector<int64_t> kernel_size,
                            std::vector<int64_t> stride, std::vector<int64_t> padding,
                            std::vector<int64_t> dilation, bool ceil_mode);

}  // namespace ipt::kernels
