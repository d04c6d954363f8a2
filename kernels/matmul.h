// A matmul of two activations (no weights to prepack) with an optional addend, on oneDNN's
// matmul: `a @ b + addend` in one primitive when the addend is a row broadcast over the rest
// (the matmul's bias) or has the product's shape (the sum post-op); other broadcasts are added
// in place after it. Stock libtorch runs aten::matmul on the BLAS it links (the reference BLAS
// or OpenBLAS here) and adds in a second pass.
//
// Transposed views run without a copy: the operands' strides go to oneDNN as they are when one
// of their last two dimensions is dense. Primitives are cached per shape, strides, dtype and
// OpenMP thread count in one process-wide cache. What oneDNN cannot take (rank-1 operands, batch
// dimensions that do not broadcast, an addend larger than the product, integer dtypes) runs the
// aten composition, said once per shape in the verbose log.
//
// Thread-safe.
#pragma once

#include <ATen/ATen.h>

namespace ipt::kernels {

// matmul(a, b) + addend, with aten::matmul's broadcasting of batch dimensions. a: [..., M, K],
// b: [..., K, N], addend: broadcastable to the result, or undefined.
at::Tensor Matmul(const at::Tensor& a, const at::Tensor& b, const at::Tensor& addend);

}  // namespace ipt::kernels
