#pragma once

#include <ATen/ATen.h>

#include "kernels/post_ops.h"

namespace ipt::kernels::testing {

inline double RelativeL2(const at::Tensor& actual, const at::Tensor& expected) {
  at::Tensor a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  return (a - e).norm().item<double>() / std::max(e.norm().item<double>(), 1e-30);
}

// The aten composition each post-op stands for, written independently of the kernels' fallback.
inline at::Tensor Reference(at::Tensor x, const PostOps& post_ops, const at::Tensor& accumulator) {
  if (post_ops.sum) x = x + accumulator;
  if (!post_ops.eltwise) return x;
  const EltwiseOp& e = *post_ops.eltwise;
  switch (e.kind) {
    case Eltwise::kRelu:
      return at::relu(x);
    case Eltwise::kLeakyRelu:
      return at::leaky_relu(x, e.alpha);
    case Eltwise::kGeluErf:
      return at::gelu(x);
    case Eltwise::kGeluTanh:
      return at::gelu(x, "tanh");
    case Eltwise::kTanh:
      return at::tanh(x);
    case Eltwise::kSigmoid:
      return at::sigmoid(x);
    case Eltwise::kSilu:
      return x * at::sigmoid(x);
    case Eltwise::kHardtanh:
      return at::clamp(x, e.alpha, e.beta);
    case Eltwise::kElu:
      return at::elu(x, e.alpha);
    case Eltwise::kHardswish:
      return x * at::clamp(x + 3, 0, 6) / 6;
  }
  return x;
}

}  // namespace ipt::kernels::testing
