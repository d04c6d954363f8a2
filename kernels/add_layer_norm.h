// layer_norm(a + b) over the last dimension in one pass over memory: each row is summed,
// normalised and written while it sits in L1, where aten reads and writes the sum twice. The
// residual connection of every transformer layer ends this way.
#pragma once

#include <ATen/ATen.h>

namespace ipt::kernels {

// a, b: the same shape and dtype (fp32 or bf16); weight, bias: [last dim] or undefined.
// Other inputs (broadcasting, other dtypes, normalising over several dimensions) run the aten
// composition, said once in the verbose log.
at::Tensor AddLayerNorm(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef normalized_shape,
                        const at::Tensor& weight, const at::Tensor& bias, double eps);

}  // namespace ipt::kernels
