#include "kernels/qlinear.h"

#include <fmt/format.h>

#include "base/error.h"
#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

// The zero point, bias and dequantization scales are all run-time arguments, so one primitive
// serves static and dynamic quantization alike, and oneDNN's cache shares it between layers of
// the same shape: BERT's first call at a new length builds 4 primitives, not 48. The scales, one
// per output feature (the weight's times the input's), multiply through a binary post-op, not
// as output scales: run-time output scales send oneDNN 2.6 from its brgemm matmul to the
// gemm-based one, 10-40% slower on BERT's linears (BM_Int8LinearScales in
// bench/kernels_bench.cpp compares the three ways). Scales baked into the primitive ran those
// linears 4-6% faster still, but cost a primitive per layer and shape: 7.4 GB against 3.1 GB
// for int8 BERT-base after 192 lengths, 41 ms against 9 for each new length (maximum resident
// set of `ipt_seq_len_bench --recipe recipes/examples/bert-base-int8.yaml --lengths 8-392
// --distinct 192 --calls 2 --rounds 1` under /usr/bin/time -v).
struct QuantLinearContext::Plan {
  dnnl::matmul primitive;
  memory::desc src_desc;
  memory::desc dst_desc;
  memory::desc scratchpad_desc;
  memory weights;
  std::string implementation;
};

QuantLinearContext::QuantLinearContext(at::Tensor weight, at::Tensor bias, PostOps post_ops,
                                       std::optional<ActivationQuant> input, at::Tensor smoothing)
    : weight_(weight.to(at::kFloat).contiguous()),
      bias_(bias.defined() ? bias.to(at::kFloat).contiguous() : bias),
      post_ops_(post_ops),
      input_(input),
      smoothing_(smoothing.defined() ? smoothing.to(at::kFloat).contiguous() : smoothing) {
  if (weight_.dim() != 2)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("ipt qlinear: weight must be 2-D, got {}",
                                                         detail::Dims(weight_.sizes())));
  if (bias_.defined() && (bias_.dim() != 1 || bias_.size(0) != weight_.size(0)))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qlinear: bias {} does not match {} output features",
                            detail::Dims(bias_.sizes()), weight_.size(0)));
  if (input_ && (input_->is_signed() || !(input_->scale > 0)))
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("ipt qlinear: the input quantization must be unsigned with a positive "
                            "scale, got {}",
                            ToString(*input_)));
  if (smoothing_.defined()) {
    if (!input_)
      throw Error(ErrorCode::kInvalidArgument,
                  "ipt qlinear: input smoothing needs a calibrated (static) input quantization");
    if (smoothing_.dim() != 1 || smoothing_.size(0) != weight_.size(1))
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("ipt qlinear: {} smoothing factors for {} input features",
                              smoothing_.numel(), weight_.size(1)));
    if (!(at::isfinite(smoothing_).all().item<bool>() && (smoothing_ > 0).all().item<bool>()))
      throw Error(ErrorCode::kInvalidArgument,
                  "ipt qlinear: smoothing factors must be positive and finite");
  }
  quantized_ = QuantizeWeightPerChannel(smoothing_.defined() ? weight_ * smoothing_ : weight_);
  weight_scales_ = at::tensor(quantized_.scales);
}

std::shared_ptr<const QuantLinearContext::Plan> QuantLinearContext::PlanFor(int64_t rows) {
  const std::pair<int64_t, int64_t> key{rows, at::get_num_threads()};
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  const int64_t n = weight_.size(0), k = weight_.size(1);
  try {
    auto plan = std::make_shared<Plan>();
    plan->src_desc = memory::desc({rows, k}, memory::data_type::u8, memory::format_tag::ab);
    plan->dst_desc = memory::desc({rows, n}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bias_desc =
        bias_.defined() ? memory::desc({1, n}, memory::data_type::f32, memory::format_tag::ab)
                        : memory::desc();
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::post_ops ops;
    ops.append_binary(dnnl::algorithm::binary_mul,
                      memory::desc({1, n}, memory::data_type::f32, memory::format_tag::ab));
    detail::AppendPostOps(post_ops_, ops);
    attr.set_post_ops(ops);
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    auto pd = detail::MatmulWithPreferredWeights([&](memory::format_tag weights_tag) {
      memory::desc weights({k, n}, memory::data_type::s8, weights_tag);
      return dnnl::matmul::primitive_desc(
          dnnl::matmul::desc(plan->src_desc, weights, bias_desc, plan->dst_desc), attr,
          detail::CpuEngine());
    });
    plan->implementation = pd.impl_info_str();
    plan->primitive = dnnl::matmul(pd);
    plan->scratchpad_desc = pd.scratchpad_desc();
    for (const auto& [other_key, other] : plans_) {
      if (other && other->weights.get_desc() == pd.weights_desc()) plan->weights = other->weights;
    }
    if (!plan->weights) {
      memory::desc plain({k, n}, memory::data_type::s8, memory::format_tag::ba);
      plan->weights = detail::ReorderInto(plain, quantized_.data, pd.weights_desc());
    }
    return plans_[key] = plan;
  } catch (const dnnl::error& e) {
    detail::LogFallback(
        fmt::format("qlinear{} [{}, {}]", post_ops_.empty() ? "" : "+" + ToString(post_ops_), rows,
                    k),
        fmt::format("aten fallback: oneDNN has no int8 matmul for it ({})", e.what()));
    return plans_[key] = nullptr;
  }
}

std::string QuantLinearContext::Implementation(int64_t rows) {
  std::shared_ptr<const Plan> plan = rows > 0 ? PlanFor(rows) : nullptr;
  return plan ? plan->implementation : std::string();
}

ActivationQuant QuantLinearContext::QuantFor(const at::Tensor& input) const {
  if (input_) return *input_;
  auto [min, max] = at::aminmax(input);
  float lo = min.item<float>(), hi = max.item<float>();
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi),
              "ipt qlinear: the input holds inf or NaN; dynamic quantization needs finite values");
  return AffineUnsignedQuant(lo, hi, UnsignedActivationMax());
}

at::Tensor QuantLinearContext::QuantizeInput(const at::Tensor& input,
                                             const ActivationQuant& quant) const {
  return smoothing_.defined() ? QuantizeActivationSmoothed(input, quant, smoothing_)
                              : QuantizeActivation(input, quant);
}

at::Tensor QuantLinearContext::RunReference(const at::Tensor& input, const ActivationQuant& quant,
                                            const at::Tensor& accumulator) const {
  at::Tensor q = QuantizeInput(input.contiguous(), quant);
  at::Tensor x = (q.to(at::kFloat) - quant.zero_point) * quant.scale;
  at::Tensor w = quantized_.data.to(at::kFloat) * weight_scales_.view({-1, 1});
  at::Tensor out = at::linear(x, w, bias_);
  if (post_ops_.sum) out = out + accumulator.to(at::kFloat);
  if (post_ops_.eltwise) detail::ApplyEltwiseReference(*post_ops_.eltwise, out);
  return out;
}

at::Tensor QuantLinearContext::Run(const at::Tensor& input_any, const at::Tensor& accumulator) {
  TORCH_CHECK(input_any.dim() >= 1 && input_any.size(-1) == weight_.size(1), "ipt qlinear: input ",
              detail::Dims(input_any.sizes()), " has ",
              input_any.dim() >= 1 ? input_any.size(-1) : 0, " features, the weight expects ",
              weight_.size(1));
  TORCH_CHECK(post_ops_.sum == accumulator.defined(),
              post_ops_.sum ? "ipt qlinear: the sum post-op needs an accumulator"
                            : "ipt qlinear: an accumulator was given without a sum post-op");
  at::Tensor input = input_any.to(at::kFloat).contiguous();
  const int64_t rows = input.numel() / weight_.size(1);
  const ActivationQuant quant = QuantFor(input);
  std::vector<int64_t> out_sizes(input.sizes().begin(), input.sizes().end());
  out_sizes.back() = weight_.size(0);
  std::shared_ptr<const Plan> plan = rows > 0 ? PlanFor(rows) : nullptr;
  if (!plan || (post_ops_.sum && accumulator.sizes() != c10::IntArrayRef(out_sizes)))
    return RunReference(input, quant, accumulator);

  at::Tensor src = QuantizeInput(input, quant);
  at::Tensor dst = post_ops_.sum ? accumulator.to(at::kFloat, /*non_blocking=*/false,
                                                  /*copy=*/true, at::MemoryFormat::Contiguous)
                                 : at::empty(out_sizes, input.options());
  // The bias is added to the s32 accumulator before the scales' post-op.
  at::Tensor scales = weight_scales_ * quant.scale;
  at::Tensor bias = bias_.defined() ? bias_ / scales : at::Tensor();
  int32_t zero_point = quant.zero_point;
  const auto& engine = detail::CpuEngine();
  const int64_t n = weight_.size(0);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(plan->src_desc, engine, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, plan->weights},
      {DNNL_ARG_DST, memory(plan->dst_desc, engine, dst.data_ptr())},
      {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
       memory({{1}, memory::data_type::s32, memory::format_tag::a}, engine, &zero_point)},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
       memory({{1, n}, memory::data_type::f32, memory::format_tag::ab}, engine,
              scales.data_ptr())}};
  if (bias.defined())
    args.emplace(DNNL_ARG_BIAS, memory({{1, n}, memory::data_type::f32, memory::format_tag::ab},
                                       engine, bias.data_ptr()));
  detail::Execute(plan->primitive, plan->scratchpad_desc, std::move(args));
  return dst;
}

QuantLinearContext::State QuantLinearContext::GetState() const {
  c10::optional<at::Tensor> bias, smoothing;
  if (bias_.defined()) bias = bias_;
  if (smoothing_.defined()) smoothing = smoothing_;
  if (!input_) return {weight_, bias, ToString(post_ops_), -1.0, 0, 0, smoothing};
  return {weight_,      bias,     ToString(post_ops_), input_->scale, input_->zero_point,
          input_->qmax, smoothing};
}

c10::intrusive_ptr<QuantLinearContext> QuantLinearContext::FromState(State state) {
  auto& [weight, bias, post_ops, scale, zero_point, qmax, smoothing] = state;
  std::optional<ActivationQuant> input;
  if (scale > 0)
    input = ActivationQuant{static_cast<float>(scale), static_cast<int32_t>(zero_point), 0,
                            static_cast<int32_t>(qmax)};
  return c10::make_intrusive<QuantLinearContext>(weight, bias ? *bias : at::Tensor(),
                                                 ParsePostOps(post_ops), input,
                                                 smoothing ? *smoothing : at::Tensor());
}

}  // namespace ipt::kernels
