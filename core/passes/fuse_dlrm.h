// DLRM fusions on a frozen graph:
//   FuseInteraction: index_select(flatten(bmm(t, t.transpose(1, 2)), 1), 1, lower-triangle
//     index) with t = cat(features, 1).view([B, V, D]), and the cat([features[0], that], 1)
//     after it -> ipt::interaction ("interaction").
//   MergeEmbeddingBags: every sum-mode embedding_bag over a constant table in one block ->
//     one ipt::merged_embedding_bag_sum ("merged_embedding_bag").
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include "core/passes/report.h"

namespace ipt::core::passes {

FusionReport FuseInteraction(const std::shared_ptr<torch::jit::Graph>& graph);
FusionReport MergeEmbeddingBags(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace ipt::core::passes
