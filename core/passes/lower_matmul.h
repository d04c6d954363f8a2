// Puts products of two activations on oneDNN (kernels/matmul.h): aten::matmul, aten::bmm and an
// aten::einsum that is a (batched) matrix product become ipt::matmul, and an add that follows
// (alpha 1, a tensor, the product's only user) becomes its addend, so `a @ b + c` is one
// primitive. Einsum operands read transposed ("bqd,bkd->bqk") become transposed views, which
// the kernel reads in place.
//
// Runs after the attention fusion, which takes attention's matmuls whole.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <string>

#include "core/passes/report.h"

namespace ipt::core::passes {

// Patterns: "matmul", "bmm", "einsum", each with "+add" when an add was folded in. Not fused,
// with the reason: einsums that are not a matrix product, adds that cannot be folded.
// With fuse_add false the products are lowered and every add stays.
FusionReport LowerMatmul(const std::shared_ptr<torch::jit::Graph>& graph, bool fuse_add);

// How an einsum equation maps onto a batched matrix product, if it does: "bij,bjk->bik" is a @ b,
// "bqd,bkd->bqk" is a @ b^T. Leading "..." in all three terms is a batch of any rank.
struct EinsumProduct {
  bool transpose_a = false;
  bool transpose_b = false;
};
std::optional<EinsumProduct> ParseEinsumProduct(const std::string& equation);

}  // namespace ipt::core::passes
