// A linear layer (y = x W^T + b) with its post-ops on oneDNN's matmul, so that fp32 linear never
// goes through the BLAS libtorch happens to link. Weights are reordered once per layout the
// primitive asks for; primitives are cached per row count and OpenMP thread count; an input the
// primitive cannot take runs the aten composition, said once in the verbose log.
//
// Thread safety: Run may be called from several threads at once.
#pragma once

#include <ATen/ATen.h>
#include <torch/custom_class.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/post_ops.h"

namespace ipt::kernels {

class LinearContext : public torch::CustomClassHolder {
 public:
  // weight: [N, K] fp32 or bf16 (the compute dtype); bias: [N] or undefined.
  // Throws ipt::Error(kInvalidArgument) for a weight that is not 2-D or a bias that does not fit.
  LinearContext(at::Tensor weight, at::Tensor bias, PostOps post_ops);

  // input: [..., K]; returns [..., N]. accumulator: required exactly when post_ops().sum, of the
  // output's shape; read, not written.
  at::Tensor Run(const at::Tensor& input, const at::Tensor& accumulator = {});

  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }
  const PostOps& post_ops() const { return post_ops_; }

  using State = std::tuple<at::Tensor, c10::optional<at::Tensor>, std::string>;
  State GetState() const;
  static c10::intrusive_ptr<LinearContext> FromState(State state);

 private:
  struct Plan;
  std::shared_ptr<const Plan> PlanFor(int64_t rows);
  at::Tensor RunReference(const at::Tensor& input, const at::Tensor& accumulator) const;

  at::Tensor weight_;
  at::Tensor bias_;
  PostOps post_ops_;

  std::mutex mutex_;
  // Key: (rows, thread count). A null plan records a shape oneDNN refused.
  std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const Plan>> plans_;
};

}  // namespace ipt::kernels
