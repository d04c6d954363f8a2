#include "kernels/conv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "base/error.h"
#include "kernels/blocked.h"
#include "kernels/buffer_pool.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

struct ConvContext::Plan {
  dnnl::convolution_forward primitive;
  at::ScalarType compute;  // the weight's dtype, or fp32 where the CPU has no bf16 kernel
  memory::desc src_desc;
  at::MemoryFormat src_format;  // of a 4-D input (a blocked one is contiguous)
  memory::desc dst_desc;
  memory::desc scratchpad_desc;
  memory weights;  // in the layout the primitive asked for
  memory bias;     // empty when the conv has none
  std::vector<int64_t> output_sizes;
};

ConvContext::ConvContext(at::Tensor weight, at::Tensor bias, ConvParams params, PostOps post_ops,
                         bool channels_last, int64_t output_block)
    : weight_(weight.contiguous()),
      bias_(bias.defined() ? bias.to(at::kFloat).contiguous() : bias),
      params_(std::move(params)),
      post_ops_(post_ops),
      channels_last_(channels_last),
      output_block_(output_block) {
  if (weight_.dim() != 4)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt conv2d: weight must be 4-D, got {}-D", weight_.dim()));
  auto two = [](const std::vector<int64_t>& v) { return v.size() == 1 || v.size() == 2; };
  if (!two(params_.stride) || !two(params_.padding) || !two(params_.dilation) ||
      params_.groups < 1 || weight_.size(0) % params_.groups != 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt conv2d: stride {} padding {} dilation {} groups {} do not fit a "
                            "2-D convolution with weight {}",
                            params_.stride, params_.padding, params_.dilation, params_.groups,
                            detail::Dims(weight_.sizes())));
  for (auto* v : {&params_.stride, &params_.padding, &params_.dilation})
    if (v->size() == 1) v->push_back(v->front());
  if (bias_.defined() && (bias_.dim() != 1 || bias_.size(0) != weight_.size(0)))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt conv2d: bias {} does not match {} output channels",
                            detail::Dims(bias_.sizes()), weight_.size(0)));
  if (output_block_ != 0 &&
      ((output_block_ != 8 && output_block_ != 16) || weight_.size(0) % output_block_ != 0))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt conv2d: blocked output needs a block of 8 or 16 that divides the "
                            "{} output channels, got {}",
                            weight_.size(0), output_block_));
}

namespace {

int64_t Channels(const at::Tensor& input) {
  return input.dim() == 5 ? input.size(1) * input.size(4) : input.size(1);
}

}  // namespace

std::shared_ptr<const ConvContext::Plan> ConvContext::PlanFor(const at::Tensor& input) {
  const int64_t threads = at::get_num_threads();
  std::vector<int64_t> key(input.sizes().begin(), input.sizes().end());
  key.push_back(threads);
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;

  auto fail = [&](const std::string& reason) {
    detail::LogFallback(
        fmt::format("conv2d{} {}", post_ops_.empty() ? "" : "+" + ToString(post_ops_),
                    detail::Dims(input.sizes())),
        reason);
    plans_[key] = nullptr;
    return nullptr;
  };
  auto dtype = detail::ToDnnl(weight_.scalar_type());
  if (!dtype)
    return fail(fmt::format("aten fallback: weight dtype {} has no oneDNN kernel",
                            c10::toString(weight_.scalar_type())));

  const int64_t n = input.size(0), c = Channels(input), h = input.size(2), w = input.size(3);
  const int64_t o = weight_.size(0), kh = weight_.size(2), kw = weight_.size(3);
  const auto& s = params_.stride;
  const auto& p = params_.padding;
  const auto& d = params_.dilation;
  const int64_t oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
  const int64_t ow = (w + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  if (oh < 1 || ow < 1) return fail("aten fallback: the output would be empty");

  const auto plain_tag = channels_last_ ? memory::format_tag::nhwc : memory::format_tag::nchw;
  // A 4-D input to a blocked-output conv is the net's image (channels not divisible by the
  // block): oneDNN's direct kernels take it plain (nchw) into a blocked output, not nhwc.
  const auto src_tag = input.dim() == 5     ? detail::BlockedTag(input.size(4))
                       : output_block_ != 0 ? memory::format_tag::nchw
                                            : plain_tag;
  const auto dst_tag = output_block_ != 0 ? detail::BlockedTag(output_block_) : plain_tag;
  const int64_t g = params_.groups;
  memory::dims weight_dims =
      g == 1 ? memory::dims{o, c, kh, kw} : memory::dims{g, o / g, c / g, kh, kw};
  memory::desc bias_desc = bias_.defined()
                               ? memory::desc({o}, memory::data_type::f32, memory::format_tag::a)
                               : memory::desc();
  // oneDNN counts dilation from 0 (no dilation) where aten counts from 1.
  memory::dims dilates{d[0] - 1, d[1] - 1};
  memory::dims pad{p[0], p[1]};

  auto create = [&](memory::data_type compute) -> std::shared_ptr<Plan> {
    memory::desc src_desc({n, c, h, w}, compute, src_tag);
    memory::desc dst_desc({n, o, oh, ow}, compute, dst_tag);
    memory::desc any_weights(weight_dims, compute, memory::format_tag::any);
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::convolution_direct, src_desc, any_weights,
                                         bias_desc, dst_desc, {s[0], s[1]}, dilates, pad, pad);
    dnnl::convolution_forward::primitive_desc pd(desc, detail::MakeAttr(post_ops_),
                                                 detail::CpuEngine());
    // A reference implementation in bf16 is far slower than fp32 on the same CPU.
    if (compute == memory::data_type::bf16 && std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
      return nullptr;
    auto plan = std::make_shared<Plan>();
    plan->primitive = dnnl::convolution_forward(pd);
    plan->compute = compute == memory::data_type::f32 ? at::kFloat : at::kBFloat16;
    plan->src_desc = src_desc;
    plan->src_format = src_tag == memory::format_tag::nhwc ? at::MemoryFormat::ChannelsLast
                                                           : at::MemoryFormat::Contiguous;
    plan->dst_desc = dst_desc;
    plan->scratchpad_desc = pd.scratchpad_desc();
    plan->output_sizes = output_block_ != 0
                             ? std::vector<int64_t>{n, o / output_block_, oh, ow, output_block_}
                             : std::vector<int64_t>{n, o, oh, ow};
    // Plans of different shapes usually share one weight layout: reorder it once per layout.
    for (const auto& [other_key, other] : plans_) {
      if (other && other->weights.get_desc() == pd.weights_desc()) plan->weights = other->weights;
    }
    if (!plan->weights) {
      at::Tensor weight = weight_.to(plan->compute).contiguous();
      memory::desc plain(weight_dims, compute,
                         g == 1 ? memory::format_tag::oihw : memory::format_tag::goihw);
      plan->weights = detail::ReorderInto(plain, weight, pd.weights_desc());
    }
    if (bias_.defined()) plan->bias = memory(bias_desc, detail::CpuEngine(), bias_.data_ptr());
    return plan;
  };
  try {
    if (auto plan = create(*dtype)) return plans_[key] = plan;
  } catch (const dnnl::error& e) {
    if (*dtype != memory::data_type::bf16)
      return fail(fmt::format("aten fallback: oneDNN has no convolution for it ({})", e.what()));
  }
  // CPUs without native bf16 (no avx512_core) have no fast bf16 convolution in oneDNN: compute
  // in fp32 and round the result, correct and only slower.
  try {
    detail::LogFallback(fmt::format("conv2d {}", detail::Dims(input.sizes())),
                        "no fast bf16 convolution on this CPU: computed in fp32");
    return plans_[key] = create(memory::data_type::f32);
  } catch (const dnnl::error& e) {
    return fail(fmt::format("aten fallback: oneDNN has no convolution for it ({})", e.what()));
  }
}

at::Tensor ConvContext::RunReference(const at::Tensor& input, const at::Tensor& accumulator) const {
  auto plain = [](const at::Tensor& x) { return x.dim() == 5 ? FromBlocked(x, false) : x; };
  at::Tensor bias = bias_.defined() ? bias_.to(weight_.scalar_type()) : bias_;
  at::Tensor out = at::conv2d(plain(input).to(weight_.scalar_type()), weight_, bias, params_.stride,
                              params_.padding, params_.dilation, params_.groups);
  if (post_ops_.sum) out = out + plain(accumulator);
  if (post_ops_.eltwise) detail::ApplyEltwiseReference(*post_ops_.eltwise, out);
  return output_block_ != 0 ? ToBlocked(out, output_block_) : out;
}

void ConvContext::CheckInputs(const at::Tensor& input, const at::Tensor& accumulator) const {
  TORCH_CHECK(input.dim() == 4 || (input.dim() == 5 && (input.size(4) == 8 || input.size(4) == 16)),
              "ipt conv2d: expected a 4-D input [N, C, H, W] or a blocked one [N, C/b, H, W, b] "
              "with b 8 or 16, got ",
              detail::Dims(input.sizes()));
  TORCH_CHECK(Channels(input) == weight_.size(1) * params_.groups, "ipt conv2d: input has ",
              Channels(input), " channels, the weight expects ", weight_.size(1) * params_.groups);
  TORCH_CHECK(post_ops_.sum == accumulator.defined(),
              post_ops_.sum ? "ipt conv2d: the sum post-op needs an accumulator"
                            : "ipt conv2d: an accumulator was given without a sum post-op");
}

at::MemoryFormat ConvContext::DstFormat() const {
  return channels_last_ && output_block_ == 0 ? at::MemoryFormat::ChannelsLast
                                              : at::MemoryFormat::Contiguous;
}

void ConvContext::Execute(const Plan& plan, const at::Tensor& input, at::Tensor& dst) const {
  at::Tensor src =
      input.to(plan.compute)
          .contiguous(input.dim() == 5 ? at::MemoryFormat::Contiguous : plan.src_format);
  const auto& engine = detail::CpuEngine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan.src_desc, engine, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, plan.weights},
      {DNNL_ARG_DST, memory(plan.dst_desc, engine, dst.data_ptr())}};
  if (plan.bias) args.emplace(DNNL_ARG_BIAS, plan.bias);
  detail::Execute(plan.primitive, plan.scratchpad_desc, std::move(args));
}

at::Tensor ConvContext::Run(const at::Tensor& input, const at::Tensor& accumulator) {
  CheckInputs(input, accumulator);
  std::shared_ptr<const Plan> plan =
      input.scalar_type() == weight_.scalar_type() ? PlanFor(input) : nullptr;
  if (!plan) return RunReference(input, accumulator);
  at::Tensor dst =
      detail::EmptyRecycled(plan->output_sizes, input.options().dtype(plan->compute), DstFormat());
  if (post_ops_.sum) {
    // oneDNN's sum reads an accumulator of the output's shape; one that broadcasts takes the
    // aten composition, which broadcasts.
    if (accumulator.sizes() != dst.sizes()) return RunReference(input, accumulator);
    dst.copy_(accumulator);
  }
  Execute(*plan, input, dst);
  return dst.scalar_type() == input.scalar_type() ? dst : dst.to(input.scalar_type());
}

at::Tensor ConvContext::RunInPlace(const at::Tensor& input, at::Tensor& accumulator) {
  CheckInputs(input, accumulator);
  std::shared_ptr<const Plan> plan =
      input.scalar_type() == weight_.scalar_type() ? PlanFor(input) : nullptr;
  if (plan && accumulator.scalar_type() == plan->compute &&
      accumulator.sizes() == at::IntArrayRef(plan->output_sizes) &&
      accumulator.is_contiguous(DstFormat()) &&
      !input.storage().is_alias_of(accumulator.storage())) {
    Execute(*plan, input, accumulator);
    return accumulator;
  }
  accumulator.copy_(Run(input, accumulator));
  return accumulator;
}

ConvContext::State ConvContext::GetState() const {
  c10::optional<at::Tensor> bias;
  if (bias_.defined()) bias = bias_;
  return {weight_,          bias,           params_.stride,      params_.padding,
          params_.dilation, params_.groups, ToString(post_ops_), channels_last_,
          output_block_};
}

c10::intrusive_ptr<ConvContext> ConvContext::FromState(State state) {
  auto& [weight, bias, stride, padding, dilation, groups, post_ops, channels_last, output_block] =
      state;
  return c10::make_intrusive<ConvContext>(weight, bias ? *bias : at::Tensor(),
                                          ConvParams{stride, padding, dilation, groups},
                                          ParsePostOps(post_ops), channels_last, output_block);
}

}  // namespace ipt::kernels
