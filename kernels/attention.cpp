#include "kernels/attention.h"

#include <fmt/format.h>

#include "kernels/dnnl_util.h"

namespace ipt::kernels {

using dnnl::memory;

struct AttentionContext::Plan {
  at::ScalarType compute;
  dnnl::matmul scores;   // [B, Sq, D] x [B, D, Sk] -> [B, Sq, Sk], times scale
  dnnl::matmul context;  // [B, Sq, Sk] x [B, Sk, Dv] -> [B, Sq, Dv]
  memory::desc q_desc, k_desc, scores_desc, v_desc, out_desc;
  memory::desc scores_scratchpad, context_scratchpad;
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

at::Tensor AttentionContext::RunReference(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const at::Tensor& mask) const {
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale_;
  if (mask.defined()) scores = scores + mask;
  return at::matmul(at::softmax(scores, -1), v);
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
  if (mask.defined()) scores.add_(mask.to(plan->compute));
  at::Tensor probs = at::softmax(scores, -1);
  detail::Execute(plan->context, plan->context_scratchpad,
                  {{DNNL_ARG_SRC, memory(plan->scores_desc, engine, probs.data_ptr())},
                   {DNNL_ARG_WEIGHTS, memory(plan->v_desc, engine, v3.data_ptr())},
                   {DNNL_ARG_DST, memory(plan->out_desc, engine, out.data_ptr())}});
  return out.scalar_type() == q.scalar_type() ? out : out.to(q.scalar_type());
}

}  // namespace ipt::kernels
