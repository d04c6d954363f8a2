// Lowers aten::conv2d and aten::linear with constant weights (a frozen graph) onto the oneDNN ops
// of `kernels/` (ipt::conv2d, ipt::conv2d_sum, ipt::linear, ipt::linear_sum), prepacking each
// weight into a context held as a graph constant, and fuses what follows each one into the
// primitive's post-ops:
//   conv/linear + {relu, leaky_relu, gelu (erf or tanh), tanh, sigmoid, silu (or
//   x * sigmoid(x)), hardtanh/clamp, elu, hardswish}                  -> eltwise post-op
//   conv/linear + add (accumulator on either side, alpha 1) [+ eltwise] -> sum post-op
// A fusion only happens when the intermediate value has no other use; every candidate left
// alone is reported with the reason.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include "core/passes/report.h"

namespace ipt::core::passes {

struct LoweringOptions {
  bool conv = true;            // lower aten::conv2d at all
  bool linear = true;          // lower aten::linear at all
  bool conv_eltwise = true;    // fuse the elementwise op that follows a conv
  bool conv_add = true;        // fuse a following add as oneDNN's sum post-op
  bool linear_eltwise = true;  // same for linear
  bool linear_add = true;
  // Conv outputs in NHWC, the layout oneDNN's direct convolutions are fastest in; false keeps
  // NCHW (then every conv reorders its activations internally).
  bool channels_last = true;
};

FusionReport LowerToOneDnn(const std::shared_ptr<torch::jit::Graph>& graph,
                           const LoweringOptions& options);

// Turns each ipt::conv2d_sum (ipt::qconv2d_sum) whose accumulator dies there into
// ipt::conv2d_sum_ (ipt::qconv2d_sum_), which adds into the accumulator instead of copying it
// into a fresh output first (a ResNet block's residual: up to 51 MB per add at bs16). Only where
// the accumulator is a fresh tensor one of our ops made (a conv's output, a blocked reorder or
// pool) and every other use of it is one of those ops, before the add, in the same block, and
// where it has the add's result type (uint8 for a chained int8 residual, fp32 otherwise).
// Returns how many it turned. Run last, after the int8 rewrite, which matches the out-of-place
// ops.
int64_t AccumulateInPlace(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ipt::core::passes
