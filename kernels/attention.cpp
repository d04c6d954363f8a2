#include "kernels/attention.h"

#include <fmt/format.h>

#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

namespace {

memory::dims ContiguousStrides(const memory::dims& dims) {
  memory::dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

}  // namespace

struct AttentionContext::Plan {
  at::ScalarType compute;
  dnnl::matmul scores;   // [B, Sq, D] x [B, D, Sk] -> [B, Sq, Sk], times scale
  dnnl::matmul context;  // [B, Sq, Sk] x [B, Sk, Dv] -> [B, Sq, Dv]
  memory::desc q_desc, k_desc, scores_desc, v_desc, out_desc;
  memory::desc scores_scratchpad, context_scratchpad;
  // oneDNN's softmax, in place on the scores; null where it has only a reference kernel.
  std::shared_ptr<dnnl::softmax_v2_forward> softmax;
  memory::desc softmax_scratchpad;
};

struct AttentionContext::MaskPlan {
  dnnl::binary add;  // scores += mask, in place, the mask broadcast
  memory::desc scores_desc, mask_desc, scratchpad;
};

std::shared_ptr<const AttentionContext::Plan> AttentionContext::PlanFor(int64_t batch, int64_t sq,
                                                                        int64_t sk, int64_t d,
                                                                        int64_t dv,
                                                                        at::ScalarType dtype) {
  std::vector<int64_t> key{
      batch, sq, sk, d, dv, static_cast<int64_t>(dtype), at::get_num_threads()};
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  auto create = [&](memory::data_type type) -> std::shared_ptr<Plan> {
    auto plan = std::make_shared<Plan>();
    plan->compute = type == memory::data_type::f32 ? at::kFloat : at::kBFloat16;
    plan->q_desc = memory::desc({batch, sq, d}, type, memory::format_tag::abc);
    // k is [B, Sk, D] row-major, which is k^T [B, D, Sk] with the last two strides swapped.
    plan->k_desc = memory::desc({batch, d, sk}, type, memory::format_tag::acb);
    plan->scores_desc = memory::desc({batch, sq, sk}, type, memory::format_tag::abc);
    plan->v_desc = memory::desc({batch, sk, dv}, type, memory::format_tag::abc);
    plan->out_desc = memory::desc({batch, sq, dv}, type, memory::format_tag::abc);
    dnnl::primitive_attr scaled = detail::MakeAttr({});
    scaled.set_output_scales(0, {static_cast<float>(scale_)});
    dnnl::matmul::primitive_desc scores_pd(
        dnnl::matmul::desc(plan->q_desc, plan->k_desc, plan->scores_desc), scaled,
        detail::CpuEngine());
    dnnl::matmul::primitive_desc context_pd(
        dnnl::matmul::desc(plan->scores_desc, plan->v_desc, plan->out_desc), detail::MakeAttr({}),
        detail::CpuEngine());
    if (type == memory::data_type::bf16 &&
        (std::string(scores_pd.impl_info_str()).rfind("ref", 0) == 0 ||
         std::string(context_pd.impl_info_str()).rfind("ref", 0) == 0))
      return nullptr;
    plan->scores = dnnl::matmul(scores_pd);
    plan->context = dnnl::matmul(context_pd);
    plan->scores_scratchpad = scores_pd.scratchpad_desc();
    plan->context_scratchpad = context_pd.scratchpad_desc();
    // aten's softmax follows ATEN_CPU_CAPABILITY, AVX2 by default, where BERT-base's bf16
    // scores at bs8 took 4-8 ms a layer against 1 ms at AVX-512; oneDNN's runs at the CPU's ISA.
    dnnl::softmax_v2_forward::primitive_desc softmax_pd(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                       dnnl::algorithm::softmax_accurate, plan->scores_desc,
                                       plan->scores_desc, 2),
        detail::MakeAttr({}), detail::CpuEngine());
    if (std::string(softmax_pd.impl_info_str()).rfind("ref", 0) != 0) {
      plan->softmax = std::make_shared<dnnl::softmax_v2_forward>(softmax_pd);
      plan->softmax_scratchpad = softmax_pd.scratchpad_desc();
    }
    return plan;
  };
  const std::string what = fmt::format("attention [{}, {}, {}, {}]", batch, sq, sk, d);
  try {
    auto type = detail::ToDnnl(dtype);
    if (type) {
      if (auto plan = create(*type)) return plans_[key] = plan;
      detail::LogFallback(what, "no fast bf16 matmul on this CPU: computed in fp32");
    }
    return plans_[key] = create(memory::data_type::f32);
  } catch (const dnnl::error& e) {
    detail::LogFallback(what, fmt::format("aten fallback: oneDNN has no matmul ({})", e.what()));
    return plans_[key] = nullptr;
  }
}

std::shared_ptr<const AttentionContext::MaskPlan> AttentionContext::MaskPlanFor(
    c10::IntArrayRef scores, const at::Tensor& mask) {
  std::vector<int64_t> key(scores.begin(), scores.end());
  key.insert(key.end(), mask.sizes().begin(), mask.sizes().end());
  key.insert(key.end(), {static_cast<int64_t>(mask.scalar_type()), at::get_num_threads()});
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = mask_plans_.find(key); it != mask_plans_.end()) return it->second;
  std::shared_ptr<MaskPlan> plan;
  auto type = detail::ToDnnl(mask.scalar_type());
  try {
    if (type) {
      plan = std::make_shared<MaskPlan>();
      const memory::dims scores_dims(scores.begin(), scores.end());
      const memory::dims mask_dims(mask.sizes().begin(), mask.sizes().end());
      plan->scores_desc = memory::desc(scores_dims, *type, ContiguousStrides(scores_dims));
      plan->mask_desc = memory::desc(mask_dims, *type, ContiguousStrides(mask_dims));
      dnnl::binary::primitive_desc pd(
          dnnl::binary::desc(dnnl::algorithm::binary_add, plan->scores_desc, plan->mask_desc,
                             plan->scores_desc),
          detail::MakeAttr({}), detail::CpuEngine());
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
        plan = nullptr;
      } else {
        plan->add = dnnl::binary(pd);
        plan->scratchpad = pd.scratchpad_desc();
      }
    }
  } catch (const dnnl::error&) {
    plan = nullptr;
  }
  if (!plan)
    detail::LogFallback(fmt::format("attention mask {}", detail::Dims(mask.sizes())),
                        "oneDNN has no fast broadcast add for it: aten adds it");
  return mask_plans_[key] = plan;
}

at::Tensor AttentionContext::RunReference(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const at::Tensor& mask) const {
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale_;
  if (mask.defined()) scores = scores + mask;
  return at::matmul(at::softmax(scores, -1), v);
}

void AttentionContext::AddMask(at::Tensor& scores, const at::Tensor& mask) {
  // The mask with the scores' rank, broadcast dimensions of size 1: what oneDNN's binary takes.
  at::Tensor m = mask.contiguous();
  bool broadcastable = m.dim() <= scores.dim();
  for (int64_t i = 1; broadcastable && i <= m.dim(); ++i)
    broadcastable = m.size(-i) == 1 || m.size(-i) == scores.size(-i);
  std::shared_ptr<const MaskPlan> plan;
  if (broadcastable) {
    std::vector<int64_t> sizes(scores.dim() - m.dim(), 1);
    sizes.insert(sizes.end(), m.sizes().begin(), m.sizes().end());
    m = m.view(sizes);
    plan = MaskPlanFor(scores.sizes(), m);
  }
  if (!plan) {
    scores.add_(mask);
    return;
  }
  const auto& engine = detail::CpuEngine();
  memory in_place(plan->scores_desc, engine, scores.data_ptr());
  detail::Execute(plan->add, plan->scratchpad,
                  {{DNNL_ARG_SRC_0, in_place},
                   {DNNL_ARG_SRC_1, memory(plan->mask_desc, engine, m.data_ptr())},
                   {DNNL_ARG_DST, in_place}});
}

at::Tensor AttentionContext::Run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& mask) {
  const int64_t rank = q.dim();
  bool plain = rank >= 3 && k.dim() == rank && v.dim() == rank &&
               q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type() &&
               q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2);
  for (int64_t i = 0; plain && i < rank - 2; ++i)
    plain = q.size(i) == k.size(i) && q.size(i) == v.size(i);
  std::shared_ptr<const Plan> plan;
  const int64_t sq = plain ? q.size(-2) : 0, sk = plain ? k.size(-2) : 0;
  const int64_t d = plain ? q.size(-1) : 0, dv = plain ? v.size(-1) : 0;
  const int64_t batch = plain && sq * d > 0 ? q.numel() / (sq * d) : 0;
  if (plain && batch > 0 && sk > 0 && dv > 0) plan = PlanFor(batch, sq, sk, d, dv, q.scalar_type());
  if (!plan) return RunReference(q, k, v, mask);

  at::Tensor q3 = q.to(plan->compute).contiguous();
  at::Tensor k3 = k.to(plan->compute).contiguous();
  at::Tensor v3 = v.to(plan->compute).contiguous();
  std::vector<int64_t> lead(q.sizes().begin(), q.sizes().end() - 2);
  std::vector<int64_t> scores_sizes = lead;
  scores_sizes.insert(scores_sizes.end(), {sq, sk});
  std::vector<int64_t> out_sizes = lead;
  out_sizes.insert(out_sizes.end(), {sq, dv});
  at::Tensor scores = at::empty(scores_sizes, q.options().dtype(plan->compute));
  at::Tensor out = at::empty(out_sizes, q.options().dtype(plan->compute));
  const auto& engine = detail::CpuEngine();
  detail::Execute(plan->scores, plan->scores_scratchpad,
                  {{DNNL_ARG_SRC, memory(plan->q_desc, engine, q3.data_ptr())},
                   {DNNL_ARG_WEIGHTS, memory(plan->k_desc, engine, k3.data_ptr())},
                   {DNNL_ARG_DST, memory(plan->scores_desc, engine, scores.data_ptr())}});
  if (mask.defined()) AddMask(scores, mask.to(plan->compute));
  at::Tensor probs = scores;
  if (plan->softmax) {
    memory in_place(plan->scores_desc, engine, scores.data_ptr());
    detail::Execute(*plan->softmax, plan->softmax_scratchpad,
                    {{DNNL_ARG_SRC, in_place}, {DNNL_ARG_DST, in_place}});
  } else {
    probs = at::softmax(scores, -1);
  }
  detail::Execute(plan->context, plan->context_scratchpad,
                  {{DNNL_ARG_SRC, memory(plan->scores_desc, engine, probs.data_ptr())},
                   {DNNL_ARG_WEIGHTS, memory(plan->v_desc, engine, v3.data_ptr())},
                   {DNNL_ARG_DST, memory(plan->out_desc, engine, out.data_ptr())}});
  return out.scalar_type() == q.scalar_type() ? out : out.to(q.scalar_type());
}

}  // namespace ipt::kernels
