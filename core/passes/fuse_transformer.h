// Transformer fusions on a frozen graph:
//   MergeSiblingLinears: linears with constant weights that read the same input (BERT's query,
//     key and value) become one linear over the concatenated weights and a split, one large
//     matmul instead of three small ones ("qkv_merge").
//   FuseAttention: softmax(matmul(q, k.transpose(-1, -2)) {/ c | * c} [+ mask], -1) @ v
//     -> ipt::attention ("attention").
//   FuseAddLayerNorm: layer_norm(a + b) -> ipt::add_layer_norm ("add+layer_norm").
// Each fuses only where the intermediate values have no other use, and reports what it fused
// and each candidate it left alone with the reason.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include "core/passes/report.h"

namespace ipt::core::passes {

FusionReport MergeSiblingLinears(const std::shared_ptr<torch::jit::Graph>& graph);
FusionReport FuseAttention(const std::shared_ptr<torch::jit::Graph>& graph);
FusionReport FuseAddLayerNorm(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ipt::core::passes
