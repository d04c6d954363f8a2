#include "kernels/qconv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "base/error.h"
#include "kernels/buffer_pool.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

struct QuantConvContext::Plan {
  dnnl::convolution_forward primitive;
  memory::desc src_desc;
  memory::desc dst_desc;
  memory::desc scratchpad_desc;
  memory weights;
  memory bias;
  memory zero_point;         // empty when the input's zero point is 0
  memory output_zero_point;  // empty without an output quantization or with zero point 0
  std::vector<int64_t> output_sizes;
};

QuantConvContext::QuantConvContext(at::Tensor weight, at::Tensor bias, ConvParams params,
                                   PostOps post_ops, ActivationQuant input,
                                   std::optional<ActivationQuant> output,
                                   std::optional<ActivationQuant> accumulator)
    : weight_(weight.to(at::kFloat).contiguous()),
      bias_(bias.defined() ? bias.to(at::kFloat).contiguous() : bias),
      params_(std::move(params)),
      post_ops_(post_ops),
      input_(input),
      output_(output),
      accumulator_(accumulator) {
  // The fp32 context validates the shapes and normalises the parameters the same way.
  ConvContext checked(weight_, bias_, params_, post_ops_, /*channels_last=*/true);
  params_ = checked.params();
  if (input_.is_signed() || !(input_.scale > 0))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qconv2d: the input quantization must be unsigned with a positive "
                            "scale, got {}",
                            ToString(input_)));
  auto unsigned_8_bit = [](const std::optional<ActivationQuant>& q) {
    return !q->is_signed() && q->scale > 0 && q->qmax <= 255;
  };
  if (output_ && (!unsigned_8_bit(output_) || (post_ops_.sum && !accumulator_)))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qconv2d: a quantized output must be unsigned with a positive "
                            "scale, and after a sum post-op needs a quantized accumulator too, "
                            "got {}{}",
                            ToString(*output_), post_ops_.sum ? " with a sum" : ""));
  if (accumulator_ && (!unsigned_8_bit(accumulator_) || !post_ops_.sum))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qconv2d: a quantized accumulator must be unsigned with a "
                            "positive scale, for a sum post-op, got {}{}",
                            ToString(*accumulator_), post_ops_.sum ? "" : " without a sum"));
  quantized_ = QuantizeWeightPerChannel(weight_);
  if (bias_.defined()) {
    at::Tensor scales = at::tensor(quantized_.scales) * input_.scale;
    scaled_bias_ = (bias_ / scales).contiguous();
  }
}

std::shared_ptr<const QuantConvContext::Plan> QuantConvContext::PlanFor(const at::Tensor& input,
                                                                        bool quantized_sum) {
  const int64_t threads = at::get_num_threads();
  std::vector<int64_t> key(input.sizes().begin(), input.sizes().end());
  key.push_back(threads);
  key.push_back(quantized_sum ? 1 : 0);
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  auto fail = [&](const std::string& reason) {
    detail::LogFallback(
        fmt::format("qconv2d{} {}", post_ops_.empty() ? "" : "+" + ToString(post_ops_),
                    detail::Dims(input.sizes())),
        reason);
    plans_[key] = nullptr;
    return nullptr;
  };
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t o = weight_.size(0), kh = weight_.size(2), kw = weight_.size(3);
  const auto& s = params_.stride;
  const auto& p = params_.padding;
  const auto& d = params_.dilation;
  const int64_t oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1;
  const int64_t ow = (w + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1;
  if (oh < 1 || ow < 1) return fail("aten fallback: the output would be empty");
  // NCHW would get oneDNN's reference int8 kernel.
  const auto tag = memory::format_tag::nhwc;
  const int64_t g = params_.groups;
  memory::dims weight_dims =
      g == 1 ? memory::dims{o, c, kh, kw} : memory::dims{g, o / g, c / g, kh, kw};
  memory::desc bias_desc = bias_.defined()
                               ? memory::desc({o}, memory::data_type::f32, memory::format_tag::a)
                               : memory::desc();
  try {
    auto plan = std::make_shared<Plan>();
    plan->src_desc = memory::desc({n, c, h, w}, memory::data_type::u8, tag);
    plan->dst_desc =
        memory::desc({n, o, oh, ow}, output_ ? memory::data_type::u8 : memory::data_type::f32, tag);
    memory::desc any_weights(weight_dims, memory::data_type::s8, memory::format_tag::any);
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::convolution_direct, plan->src_desc,
                                         any_weights, bias_desc, plan->dst_desc, {s[0], s[1]},
                                         {d[0] - 1, d[1] - 1}, {p[0], p[1]}, {p[0], p[1]});
    dnnl::primitive_attr attr =
        quantized_sum ? detail::MakeAttr(post_ops_, accumulator_->scale, accumulator_->zero_point)
                      : detail::MakeAttr(post_ops_);
    std::vector<float> scales(quantized_.scales);
    for (float& scale : scales) scale *= input_.scale;
    attr.set_output_scales(1 << 1, scales);
    if (input_.zero_point != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    if (output_) {
      // The post-ops see real values (the output scales dequantize), so any activation is
      // exact; then x / scale, clipped to the range, and the zero point added on conversion.
      dnnl::post_ops ops = attr.get_post_ops();
      ops.append_eltwise(1.F, dnnl::algorithm::eltwise_linear, 1.F / output_->scale, 0.F);
      if (output_->qmax < 255 || output_->qmin > 0)
        ops.append_eltwise(1.F, dnnl::algorithm::eltwise_clip,
                           static_cast<float>(output_->qmin - output_->zero_point),
                           static_cast<float>(output_->qmax - output_->zero_point));
      attr.set_post_ops(ops);
      if (output_->zero_point != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
    }
    dnnl::convolution_forward::primitive_desc pd(desc, attr, detail::CpuEngine());
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0)
      return fail("aten fallback: oneDNN has only its reference int8 convolution for it");
    plan->primitive = dnnl::convolution_forward(pd);
    plan->scratchpad_desc = pd.scratchpad_desc();
    plan->output_sizes = {n, o, oh, ow};
    for (const auto& [other_key, other] : plans_) {
      if (other && other->weights.get_desc() == pd.weights_desc()) plan->weights = other->weights;
    }
    if (!plan->weights) {
      memory::desc plain(weight_dims, memory::data_type::s8,
                         g == 1 ? memory::format_tag::oihw : memory::format_tag::goihw);
      plan->weights = detail::ReorderInto(plain, quantized_.data, pd.weights_desc());
    }
    if (bias_.defined())
      plan->bias = memory(bias_desc, detail::CpuEngine(), scaled_bias_.data_ptr());
    auto zero_point = [](int32_t value) {
      memory m({{1}, memory::data_type::s32, memory::format_tag::a}, detail::CpuEngine());
      *static_cast<int32_t*>(m.get_data_handle()) = value;
      return m;
    };
    if (input_.zero_point != 0) plan->zero_point = zero_point(input_.zero_point);
    if (output_ && output_->zero_point != 0)
      plan->output_zero_point = zero_point(output_->zero_point);
    return plans_[key] = plan;
  } catch (const dnnl::error& e) {
    return fail(fmt::format("aten fallback: oneDNN has no int8 convolution for it ({})", e.what()));
  }
}

at::Tensor QuantConvContext::RunReference(const at::Tensor& input,
                                          const at::Tensor& accumulator) const {
  at::Tensor x = (QuantizedInput(input).to(at::kFloat) - input_.zero_point) * input_.scale;
  std::vector<int64_t> shape(weight_.dim(), 1);
  shape[0] = weight_.size(0);
  at::Tensor w = quantized_.data.to(at::kFloat) * at::tensor(quantized_.scales).view(shape);
  at::Tensor out =
      at::conv2d(x, w, bias_, params_.stride, params_.padding, params_.dilation, params_.groups);
  if (post_ops_.sum) out = out + RealAccumulator(accumulator);
  if (post_ops_.eltwise) detail::ApplyEltwiseReference(*post_ops_.eltwise, out);
  return output_ ? QuantizeActivation(out, *output_) : out;
}

void QuantConvContext::CheckInputs(const at::Tensor& input, const at::Tensor& accumulator) const {
  TORCH_CHECK(input.dim() == 4, "ipt qconv2d: expected a 4-D input [N, C, H, W], got ",
              detail::Dims(input.sizes()));
  TORCH_CHECK(input.size(1) == weight_.size(1) * params_.groups, "ipt qconv2d: input has ",
              input.size(1), " channels, the weight expects ", weight_.size(1) * params_.groups);
  TORCH_CHECK(post_ops_.sum == accumulator.defined(),
              post_ops_.sum ? "ipt qconv2d: the sum post-op needs an accumulator"
                            : "ipt qconv2d: an accumulator was given without a sum post-op");
  TORCH_CHECK(!accumulator.defined() || accumulator.scalar_type() != at::kByte || accumulator_,
              "ipt qconv2d: a uint8 accumulator needs the context's accumulator quantization");
}

at::Tensor QuantConvContext::QuantizedInput(const at::Tensor& input) const {
  const auto format = at::MemoryFormat::ChannelsLast;
  return input.scalar_type() == at::kByte
             ? input.contiguous(format)
             : QuantizeActivation(input.to(at::kFloat).contiguous(format), input_);
}

at::Tensor QuantConvContext::RealAccumulator(const at::Tensor& accumulator) const {
  if (accumulator.scalar_type() != at::kByte) return accumulator.to(at::kFloat);
  return (accumulator.to(at::kFloat) - accumulator_->zero_point) * accumulator_->scale;
}

void QuantConvContext::Execute(const Plan& plan, const at::Tensor& src,
                               const at::Tensor& dst) const {
  const auto& engine = detail::CpuEngine();
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan.src_desc, engine, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, plan.weights},
      {DNNL_ARG_DST, memory(plan.dst_desc, engine, dst.data_ptr())}};
  if (plan.bias) args.emplace(DNNL_ARG_BIAS, plan.bias);
  if (plan.zero_point) args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, plan.zero_point);
  if (plan.output_zero_point)
    args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, plan.output_zero_point);
  detail::Execute(plan.primitive, plan.scratchpad_desc, std::move(args));
}

at::Tensor QuantConvContext::Run(const at::Tensor& input, const at::Tensor& accumulator) {
  CheckInputs(input, accumulator);
  // A uint8 output holds the accumulator quantized; an fp32 one holds a uint8 accumulator's
  // integers (converted in the copy, dequantized by the sum) or an fp32 accumulator as it is.
  const bool quantized_sum = post_ops_.sum && (output_ || accumulator.scalar_type() == at::kByte);
  std::shared_ptr<const Plan> plan = PlanFor(input, quantized_sum);
  if (!plan) return RunReference(input, accumulator);
  const auto format = at::MemoryFormat::ChannelsLast;
  at::Tensor src = QuantizedInput(input);
  at::Tensor dst = detail::EmptyRecycled(
      plan->output_sizes, input.options().dtype(output_ ? at::kByte : at::kFloat), format);
  if (post_ops_.sum) {
    if (accumulator.sizes() != dst.sizes()) return RunReference(input, accumulator);
    dst.copy_(output_ && accumulator.scalar_type() != at::kByte
                  ? QuantizeActivation(accumulator.to(at::kFloat), *accumulator_)
                  : accumulator);
  }
  Execute(*plan, src, dst);
  return dst;
}

at::Tensor QuantConvContext::RunInPlace(const at::Tensor& input, at::Tensor& accumulator) {
  CheckInputs(input, accumulator);
  // Run's result copied into an accumulator of the other kind would be read as the wrong numbers.
  TORCH_CHECK((accumulator.scalar_type() == at::kByte) == output_.has_value(),
              "ipt qconv2d_sum_: adds in place only into an accumulator of the output's kind, ",
              output_ ? "uint8" : "floating point", ", got ", accumulator.scalar_type());
  std::shared_ptr<const Plan> plan = PlanFor(input, output_.has_value());
  if (plan && accumulator.scalar_type() == (output_ ? at::kByte : at::kFloat) &&
      accumulator.sizes() == at::IntArrayRef(plan->output_sizes) &&
      accumulator.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      !input.storage().is_alias_of(accumulator.storage())) {
    Execute(*plan, QuantizedInput(input), accumulator);
    return accumulator;
  }
  accumulator.copy_(Run(input, accumulator));
  return accumulator;
}

c10::intrusive_ptr<QuantConvContext> QuantConvContext::WithOutputQuant(
    const ActivationQuant& output) const {
  return c10::make_intrusive<QuantConvContext>(weight_, bias_, params_, post_ops_, input_, output,
                                               accumulator_);
}

QuantConvContext::State QuantConvContext::GetState() const {
  c10::optional<at::Tensor> bias;
  if (bias_.defined()) bias = bias_;
  const ActivationQuant none{1.F, 0, 0, 0};
  const ActivationQuant output = output_.value_or(none);
  const ActivationQuant accumulator = accumulator_.value_or(none);
  return {weight_,
          bias,
          params_.stride,
          params_.padding,
          params_.dilation,
          params_.groups,
          ToString(post_ops_),
          input_.scale,
          input_.zero_point,
          input_.qmax,
          output.scale,
          output.zero_point,
          output.qmax,
          accumulator.scale,
          accumulator.zero_point,
          accumulator.qmax};
}

c10::intrusive_ptr<QuantConvContext> QuantConvContext::FromState(State state) {
  auto& [weight, bias, stride, padding, dilation, groups, post_ops, scale, zero_point, qmax,
         output_scale, output_zero_point, output_qmax, accumulator_scale, accumulator_zero_point,
         accumulator_qmax] = state;
  auto quant = [](double scale, int64_t zero_point, int64_t qmax) {
    return ActivationQuant{static_cast<float>(scale), static_cast<int32_t>(zero_point), 0,
                           static_cast<int32_t>(qmax)};
  };
  auto optional_quant = [&](double scale, int64_t zero_point, int64_t qmax) {
    return qmax == 0 ? std::nullopt : std::optional(quant(scale, zero_point, qmax));
  };
  return c10::make_intrusive<QuantConvContext>(
      weight, bias ? *bias : at::Tensor(), ConvParams{stride, padding, dilation, groups},
      ParsePostOps(post_ops), quant(scale, zero_point, qmax),
      optional_quant(output_scale, output_zero_point, output_qmax),
      optional_quant(accumulator_scale, accumulator_zero_point, accumulator_qmax));
}

}  // namespace ipt::kernels
