// Folding constants into frozen aten::linear nodes, the linear counterpart of libtorch's conv
// folding (which has no linear version in 1.13):
//   linear(x, W, b) -> batch_norm(running stats constant)       => linear(x, W', b')
//   linear(x, W, b) -> add/sub(constant c) / mul/div(constant c) => linear(x, W', b')
// where the constant broadcasts over the output features (a scalar or a [N] vector). The
// folded weights replace the constants; the graph is left alone when the linear's output has
// another use.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace ipt::core::passes {

// Returns whether the graph changed.
bool FoldLinearBatchNorm(const std::shared_ptr<torch::jit::Graph>& graph);
bool FoldLinearArithmetic(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ipt::core::passes
