// DLRM's two CPU-bound steps as single ops:
//   Interaction: the dot products of every pair of feature vectors below the diagonal,
//     computed directly instead of a full bmm, a flatten and an index_select, optionally after
//     a copy of the first (dense) feature, which is DLRM's `cat([x, z], 1)`.
//   MergedEmbeddingBagSum: every table's sum-mode EmbeddingBag in one parallel loop, instead of
//     one op (and one OpenMP region) per table. bf16 tables accumulate in fp32; int8 tables
//     (s8, symmetric, a scale per row) are dequantized row by row into the fp32 sum, so a
//     lookup reads a quarter of the fp32 table's bytes.
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

// A table [rows, dim] as s8 with a symmetric scale per row (max |row| / 127; 1 for a row of
// zeros): row r is scales[r] * data[r]. Throws c10::Error for a table that is not 2-D floating
// point or holds inf or NaN.
struct QuantizedEmbeddingTable {
  at::Tensor data;    // int8 [rows, dim], contiguous
  at::Tensor scales;  // fp32 [rows]
};
QuantizedEmbeddingTable QuantizeEmbeddingTable(const at::Tensor& weight);

// MergedEmbeddingBagSum over int8 tables with their row scales; fp32 outputs.
std::vector<at::Tensor> QuantizedMergedEmbeddingBagSum(const std::vector<at::Tensor>& weights,
                                                       const std::vector<at::Tensor>& row_scales,
                                                       const std::vector<at::Tensor>& indices,
                                                       const std::vector<at::Tensor>& offsets);

}  // namespace ipt::kernels
