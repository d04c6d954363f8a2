#include "kernels/dnnl_util.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <cstdlib>

#include "kernels/buffer_pool.h"

namespace ipt::kernels::detail {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine kEngine(dnnl::engine::kind::cpu, 0);
  return kEngine;
}

std::optional<dnnl::memory::data_type> ToDnnl(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return dnnl::memory::data_type::f32;
    case at::kBFloat16:
      return dnnl::memory::data_type::bf16;
    default:
      return std::nullopt;
  }
}

void AppendPostOps(const PostOps& post_ops, dnnl::post_ops& out, float sum_scale,
                   int32_t sum_zero_point) {
  if (post_ops.sum) {
    if (sum_zero_point != 0) {
      out.append_sum(sum_scale, sum_zero_point);
    } else {
      out.append_sum(sum_scale);
    }
  }
  if (!post_ops.eltwise) return;
  const EltwiseOp& e = *post_ops.eltwise;
  using A = dnnl::algorithm;
  switch (e.kind) {
    case Eltwise::kRelu:
      out.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f);
      break;
    case Eltwise::kLeakyRelu:
      out.append_eltwise(1.f, A::eltwise_relu, e.alpha, 0.f);
      break;
    case Eltwise::kGeluErf:
      out.append_eltwise(1.f, A::eltwise_gelu_erf, 0.f, 0.f);
      break;
    case Eltwise::kGeluTanh:
      out.append_eltwise(1.f, A::eltwise_gelu_tanh, 0.f, 0.f);
      break;
    case Eltwise::kTanh:
      out.append_eltwise(1.f, A::eltwise_tanh, 0.f, 0.f);
      break;
    case Eltwise::kSigmoid:
      out.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f);
      break;
    case Eltwise::kSilu:
      out.append_eltwise(1.f, A::eltwise_swish, 1.f, 0.f);
      break;
    case Eltwise::kHardtanh:
      out.append_eltwise(1.f, A::eltwise_clip_v2, e.alpha, e.beta);
      break;
    case Eltwise::kElu:
      out.append_eltwise(1.f, A::eltwise_elu, e.alpha, 0.f);
      break;
    case Eltwise::kHardswish:
      out.append_eltwise(1.f, A::eltwise_hardswish, 1.f / 6.f, 0.5f);
      break;
  }
}

void ApplyEltwiseReference(const EltwiseOp& e, at::Tensor& x) {
  switch (e.kind) {
    case Eltwise::kRelu:
      x.relu_();
      break;
    case Eltwise::kLeakyRelu:
      at::leaky_relu_(x, e.alpha);
      break;
    case Eltwise::kGeluErf:
      x.copy_(at::gelu(x, "none"));
      break;
    case Eltwise::kGeluTanh:
      x.copy_(at::gelu(x, "tanh"));
      break;
    case Eltwise::kTanh:
      x.tanh_();
      break;
    case Eltwise::kSigmoid:
      x.sigmoid_();
      break;
    case Eltwise::kSilu:
      at::silu_(x);
      break;
    case Eltwise::kHardtanh:
      x.clamp_(e.alpha, e.beta);
      break;
    case Eltwise::kElu:
      at::elu_(x, e.alpha);
      break;
    case Eltwise::kHardswish:
      at::hardswish_(x);
      break;
  }
}

dnnl::memory::format_tag BlockedTag(int64_t block) {
  return block == 8 ? dnnl::memory::format_tag::nChw8c : dnnl::memory::format_tag::nChw16c;
}

dnnl::primitive_attr MakeAttr(const PostOps& post_ops, float sum_scale, int32_t sum_zero_point) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  AppendPostOps(post_ops, ops, sum_scale, sum_zero_point);
  attr.set_post_ops(ops);
  return attr;
}

dnnl::matmul::primitive_desc MatmulWithPreferredWeights(
    const std::function<dnnl::matmul::primitive_desc(dnnl::memory::format_tag)>& make) {
  dnnl::matmul::primitive_desc pd = make(dnnl::memory::format_tag::any);
  if (std::string(pd.impl_info_str()).rfind("gemm", 0) == 0)
    return make(dnnl::memory::format_tag::ba);
  return pd;
}

dnnl::memory ReorderInto(const dnnl::memory::desc& plain, const at::Tensor& data,
                         const dnnl::memory::desc& target) {
  dnnl::memory source(plain, CpuEngine(), data.data_ptr());
  dnnl::memory packed(target, CpuEngine());
  dnnl::stream stream(CpuEngine());
  dnnl::reorder(source, packed).execute(stream, source, packed);
  stream.wait();
  return packed;
}

void Execute(const dnnl::primitive& primitive, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args) {
  at::Tensor buffer = EmptyRecycled({static_cast<int64_t>(scratchpad.get_size())},
                                    at::TensorOptions().dtype(at::kByte));
  args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, CpuEngine(), buffer.data_ptr()));
  dnnl::stream stream(CpuEngine());
  primitive.execute(stream, args);
  stream.wait();
}

std::string Dims(c10::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes.begin(), sizes.end(), ", "));
}

void LogFallback(const std::string& what, const std::string& reason) {
  const char* verbose = std::getenv("IPT_VERBOSE");
  if (verbose == nullptr || *verbose == '\0' || std::string(verbose) == "0") return;
  fmt::print(stderr, "ipt: {}: {}\n", what, reason);
}

}  // namespace ipt::kernels::detail
