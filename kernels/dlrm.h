// DLRM's two CPU-bound steps as single ops:
//   Interaction: the dot products of every pair of feature vectors below the diagonal,
//     computed directly instead of a full bmm, a flatten and an index_select, optionally after
//     a copy of the first (dense) feature, which is DLRM's `cat([x, z], 1)`.
//   MergedEmbeddingBagSum: every table's sum-mode EmbeddingBag in one parallel loop, instead of
//     one op (and one OpenMP region) per table. bf16 tables accumulate in fp32.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ipt::kernels {

// features: V tensors [B, D] of one dtype (fp32 or bf16). Returns [B, (D if with_first) +
// V (V - 1) / 2]: pair (i, j), j < i, in row-major order of i then j.
at::Tensor Interaction(const std::vector<at::Tensor>& features, bool with_first);

// One [B_t, D_t] output per table, as torch.embedding_bag(weight, indices, offsets, mode=sum)
// with include_last_offset false. Throws c10::Error naming the table for an index out of range
// or offsets that are not ascending.
std::vector<at::Tensor> MergedEmbeddingBagSum(const std::vector<at::Tensor>& weights,
                                              const std::vector<at::Tensor>& indices,
                                              const std::vector<at::Tensor>& offsets);

}  // namespace ipt::kernels
