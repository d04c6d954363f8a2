// Max pooling of a uint8 activation, for chained int8 (kernels/qconv.h). Quantization is
// monotone, so the maximum of quantized values is the quantized maximum: the pool runs on the
// bytes with the input's quantization, and a convolution's uint8 result crosses a max pool to
// the next convolutions without being written in fp32 and quantized again (ResNet-50's stem).
//
// Thread safety: may be called from several threads at once.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ipt::kernels {

// aten::max_pool2d's arguments and answer for a uint8 [N, C, H, W] (any memory layout); the
// result is uint8 and channels-last in memory. Runs on oneDNN's int8 pooling; geometry oneDNN
// refuses runs aten's max pool on the values as floats (exact: they are small integers), said
// once in the verbose log.
// Throws ipt::Error(kInvalidArgument) for an input that is not uint8 and 4-D, and for
// arguments aten would refuse (sizes, non-positive kernel or stride, padding over half the
// kernel, an empty result).
at::Tensor QuantizedMaxPool2d(const at::Tensor& x, std::vector<int64_t> kernel_size,
                              std::vector<int64_t> stride, std::vector<int64_t> padding,
                              std::vector<int64_t> dilation, bool ceil_mode);

}  // namespace ipt::kernels
