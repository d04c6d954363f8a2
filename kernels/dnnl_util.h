// Private helpers shared by the kernels: the CPU engine, dtype and post-op translation, and the
// aten reference of each post-op for fallbacks. Not installed; include only from kernels/*.cpp.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "kernels/post_ops.h"

namespace ipt::kernels::detail {

// oneDNN's CPU engine is immutable after creation and safe to share between threads.
const dnnl::engine& CpuEngine();

// nullopt for a dtype the kernels do not run (the op falls back to aten).
std::optional<dnnl::memory::data_type> ToDnnl(at::ScalarType type);

// oneDNN's tag for a blocked activation [N, C/block, H, W, block] (kernels/blocked.h): nChw8c or
// nChw16c.
dnnl::memory::format_tag BlockedTag(int64_t block);

// Appends `post_ops` to `attr` in the order the op applies them. A sum reads the destination's
// old values as sum_scale * (old - sum_zero_point): a uint8 accumulator is dequantized so.
void AppendPostOps(const PostOps& post_ops, dnnl::post_ops& out, float sum_scale = 1.F,
                   int32_t sum_zero_point = 0);

// The aten composition of the eltwise, in place on `x`.
void ApplyEltwiseReference(const EltwiseOp& eltwise, at::Tensor& x);

// Attributes with a user scratchpad: each call brings its own, so concurrent calls from several
// threads never share one.
dnnl::primitive_attr MakeAttr(const PostOps& post_ops, float sum_scale = 1.F,
                              int32_t sum_zero_point = 0);

// A matmul with weights [K, N] in the layout oneDNN prefers, from `make`, which builds it for a
// given weights tag. Where oneDNN has no blocked kernel for the dtype on this CPU (fp32 and int8
// below AVX-512) it runs its jit gemm, and its preference, plain [K, N] (ab), is the layout that
// gemm packs slowly: BERT's FFN up-projection ran at 77 GFLOP/s (fp32) and 171 GOP/s (u8 x s8)
// with ab, 138 and 264 with ba, aten's own [N, K]. So gemm gets ba.
dnnl::matmul::primitive_desc MatmulWithPreferredWeights(
    const std::function<dnnl::matmul::primitive_desc(dnnl::memory::format_tag)>& make);

// `data` (laid out as `plain`) reordered into a new memory of layout `target`: done once per
// weight layout at plan time, never per call.
dnnl::memory ReorderInto(const dnnl::memory::desc& plain, const at::Tensor& data,
                         const dnnl::memory::desc& target);

// Runs `primitive` on `args` with a scratchpad of its own (`scratchpad` describes its size) and
// waits: concurrent calls never share a scratchpad.
void Execute(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args);

// "[1, 3, 224, 224]", for messages.
std::string Dims(c10::IntArrayRef sizes);

// Writes to stderr why a fused op does not run its fast path (`what: reason`), when IPT_VERBOSE is
// set (and not "0"). Callers log once per context and shape, not per call.
void LogFallback(const std::string& what, const std::string& reason);

}  // namespace ipt::kernels::detail
