// Multi-head attention scores and context in one op:
//   softmax(q @ k^T * scale + mask, -1) @ v
// with both batched matmuls on oneDNN (the scale folded into the first one's output scale) and
// the mask add and softmax between them on the scores while they are hot, also on oneDNN
// (aten's run at ATEN_CPU_CAPABILITY, AVX2 unless told otherwise). Primitives are cached
// per shape and thread count. Inputs it cannot take (ranks, broadcast batch dimensions, dtypes)
// run the aten composition, said once in the verbose log.
//
// Thread safety: Run may be called from several threads at once.
#pragma once

#include <ATen/ATen.h>
#include <torch/custom_class.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace ipt::kernels {

class AttentionContext : public torch::CustomClassHolder {
 public:
  explicit AttentionContext(double scale) : scale_(scale) {}

  // q: [..., Sq, D], k: [..., Sk, D], v: [..., Sk, Dv] with equal leading dimensions; mask:
  // broadcastable to [..., Sq, Sk] or undefined. Returns [..., Sq, Dv], contiguous.
  at::Tensor Run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& mask);

  double scale() const { return scale_; }

 private:
  struct Plan;
  std::shared_ptr<const Plan> PlanFor(int64_t batch, int64_t sq, int64_t sk, int64_t d, int64_t dv,
                                      at::ScalarType dtype);
  at::Tensor RunReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& mask) const;
  // scores += mask (broadcast, the scores' dtype) on oneDNN, or aten where it cannot.
  struct MaskPlan;
  void AddMask(at::Tensor& scores, const at::Tensor& mask);
  // mask: contiguous, the scores' rank.
  std::shared_ptr<const MaskPlan> MaskPlanFor(c10::IntArrayRef scores, const at::Tensor& mask);

  double scale_;
  std::mutex mutex_;
  std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> plans_;
  std::map<std::vector<int64_t>, std::shared_ptr<const MaskPlan>> mask_plans_;
};

}  // namespace ipt::kernels
