// cat(xs, 1) -> batch_norm (inference, constant statistics) [-> relu] onto one
// ipt::concat_batch_norm (kernels/concat_batch_norm.h): the batch norm folded at optimise time
// into a per-channel scale and shift, applied while each input is copied into the output. A
// batch norm after a concatenation cannot fold into a conv, so it is its own pass otherwise.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include "core/passes/report.h"

namespace ipt::core::passes {

// Patterns "cat+batch_norm" and "cat+batch_norm+relu"; candidates left alone are reported with
// the reason (not over the channels, training mode, statistics not constant, other uses).
FusionReport FuseConcatBatchNorm(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ipt::core::passes
