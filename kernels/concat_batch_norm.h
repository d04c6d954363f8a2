// batch_norm(cat(xs, 1)) in inference, optionally followed by relu, in one pass: each input is
// scaled, shifted (and clamped at 0) per channel while it is copied into its slot of the output,
// where aten writes the concatenation, reads it back to normalise and again for the relu. The
// pattern ends DenseNet-style blocks, whose batch norm cannot fold into a conv.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ipt::kernels {

// xs: equal sizes but in dimension 1, rank >= 2, one dtype (fp32 or bf16); scale, shift: fp32
// [sum of the channels], the batch norm folded (scale = weight / sqrt(var + eps), shift = bias -
// mean * scale). The output is channels-last when every 4-D input is. Other inputs (mixed
// dtypes, broadcasting, other ranks) run the aten composition, said once in the verbose log.
at::Tensor ConcatBatchNorm(const std::vector<at::Tensor>& xs, const at::Tensor& scale,
                           const at::Tensor& shift, bool relu);

}  // namespace ipt::kernels
