#include "kernels/linear.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

struct LinearContext::Plan {
  dnnl::matmul primitive;
  at::ScalarType compute;  // the weight's dtype, or fp32 where the CPU has no bf16 kernel
  memory::desc src_desc;
  memory::desc dst_desc;
  memory::desc scratchpad_desc;
  memory weights;
  memory bias;
};

LinearContext::LinearContext(at::Tensor weight, at::Tensor bias, PostOps post_ops)
    : weight_(weight.contiguous()),
      bias_(bias.defined() ? bias.to(at::kFloat).contiguous() : bias),
      post_ops_(post_ops) {
  if (weight_.dim() != 2)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("ipt linear: weight must be 2-D, got {}",
                                                         detail::Dims(weight_.sizes())));
  if (bias_.defined() && (bias_.dim() != 1 || bias_.size(0) != weight_.size(0)))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt linear: bias {} does not match {} output features",
                            detail::Dims(bias_.sizes()), weight_.size(0)));
}

std::shared_ptr<const LinearContext::Plan> LinearContext::PlanFor(int64_t rows) {
  const std::pair<int64_t, int64_t> key{rows, at::get_num_threads()};
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  auto fail = [&](const std::string& reason) {
    detail::LogFallback(
        fmt::format("linear{} [{}, {}]", post_ops_.empty() ? "" : "+" + ToString(post_ops_), rows,
                    weight_.size(1)),
        reason);
    plans_[key] = nullptr;
    return nullptr;
  };
  auto dtype = detail::ToDnnl(weight_.scalar_type());
  if (!dtype)
    return fail(fmt::format("aten fallback: weight dtype {} has no oneDNN kernel",
                            c10::toString(weight_.scalar_type())));
  const int64_t n = weight_.size(0), k = weight_.size(1);
  memory::desc bias_desc =
      bias_.defined() ? memory::desc({1, n}, memory::data_type::f32, memory::format_tag::ab)
                      : memory::desc();
  auto create = [&](memory::data_type compute) -> std::shared_ptr<Plan> {
    memory::desc src_desc({rows, k}, compute, memory::format_tag::ab);
    memory::desc dst_desc({rows, n}, compute, memory::format_tag::ab);
    auto pd = detail::MatmulWithPreferredWeights([&](memory::format_tag weights_tag) {
      memory::desc weights({k, n}, compute, weights_tag);
      return dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(src_desc, weights, bias_desc, dst_desc), detail::MakeAttr(post_ops_),
          detail::CpuEngine());
    });
    // A reference implementation in bf16 is far slower than fp32 on the same CPU.
    if (compute == memory::data_type::bf16 && std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
      return nullptr;
    auto plan = std::make_shared<Plan>();
    plan->primitive = dnnl::matmul(pd);
    plan->compute = compute == memory::data_type::f32 ? at::kFloat : at::kBFloat16;
    plan->src_desc = src_desc;
    plan->dst_desc = dst_desc;
    plan->scratchpad_desc = pd.scratchpad_desc();
    for (const auto& [other_key, other] : plans_) {
      if (other && other->weights.get_desc() == pd.weights_desc()) plan->weights = other->weights;
    }
    if (!plan->weights) {
      // aten stores W as [N, K] row-major, which is the [K, N] matrix in column-major order (ba).
      at::Tensor weight = weight_.to(plan->compute).contiguous();
      memory::desc plain({k, n}, compute, memory::format_tag::ba);
      plan->weights = detail::ReorderInto(plain, weight, pd.weights_desc());
    }
    if (bias_.defined()) plan->bias = memory(bias_desc, detail::CpuEngine(), bias_.data_ptr());
    return plan;
  };
  try {
    if (auto plan = create(*dtype)) return plans_[key] = plan;
  } catch (const dnnl::error& e) {
    if (*dtype != memory::data_type::bf16)
      return fail(fmt::format("aten fallback: oneDNN has no matmul for it ({})", e.what()));
  }
  // CPUs without native bf16 have no fast bf16 matmul in oneDNN: compute in fp32 and round.
  try {
    detail::LogFallback(fmt::format("linear [{}, {}]", rows, k),
                        "no fast bf16 matmul on this CPU: computed in fp32");
    return plans_[key] = create(memory::data_type::f32);
  } catch (const dnnl::error& e) {
    return fail(fmt::format("aten fallback: oneDNN has no matmul for it ({})", e.what()));
  }
}

at::Tensor LinearContext::RunReference(const at::Tensor& input,
                                       const at::Tensor& accumulator) const {
  at::Tensor bias = bias_.defined() ? bias_.to(weight_.scalar_type()) : bias_;
  at::Tensor out = at::linear(input.to(weight_.scalar_type()), weight_, bias);
  if (post_ops_.sum) out = out + accumulator;
  if (post_ops_.eltwise) detail::ApplyEltwiseReference(*post_ops_.eltwise, out);
  return out;
}

at::Tensor LinearContext::Run(const at::Tensor& input, const at::Tensor& accumulator) {
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == weight_.size(1), "ipt linear: input ",
              detail::Dims(input.sizes()), " has ", input.dim() >= 1 ? input.size(-1) : 0,
              " features, the weight expects ", weight_.size(1));
  TORCH_CHECK(post_ops_.sum == accumulator.defined(),
              post_ops_.sum ? "ipt linear: the sum post-op needs an accumulator"
                            : "ipt linear: an accumulator was given without a sum post-op");
  const int64_t rows = input.numel() / weight_.size(1);
  std::shared_ptr<const Plan> plan =
      input.scalar_type() == weight_.scalar_type() && rows > 0 ? PlanFor(rows) : nullptr;
  if (!plan) return RunReference(input, accumulator);

  std::vector<int64_t> out_sizes(input.sizes().begin(), input.sizes().end());
  out_sizes.back() = weight_.size(0);
  at::Tensor src = input.to(plan->compute).contiguous();
  at::Tensor dst;
  if (post_ops_.sum) {
    // oneDNN's sum reads an accumulator of the output's shape; one that broadcasts takes the
    // aten composition, which broadcasts.
    if (accumulator.sizes() != c10::IntArrayRef(out_sizes)) return RunReference(input, accumulator);
    dst = accumulator.to(plan->compute, /*non_blocking=*/false, /*copy=*/true,
                         at::MemoryFormat::Contiguous);
  } else {
    dst = at::empty(out_sizes, input.options().dtype(plan->compute));
  }
  const auto& engine = detail::CpuEngine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan->src_desc, engine, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, plan->weights},
      {DNNL_ARG_DST, memory(plan->dst_desc, engine, dst.data_ptr())}};
  if (plan->bias) args.emplace(DNNL_ARG_BIAS, plan->bias);
  detail::Execute(plan->primitive, plan->scratchpad_desc, std::move(args));
  return dst.scalar_type() == input.scalar_type() ? dst : dst.to(input.scalar_type());
}

LinearContext::State LinearContext::GetState() const {
  c10::optional<at::Tensor> bias;
  if (bias_.defined()) bias = bias_;
  return {weight_, bias, ToString(post_ops_)};
}

c10::intrusive_ptr<LinearContext> LinearContext::FromState(State state) {
  auto& [weight, bias, post_ops] = state;
  return c10::make_intrusive<LinearContext>(weight, bias ? *bias : at::Tensor(),
                                            ParsePostOps(post_ops));
}

}  // namespace ipt::kernels
