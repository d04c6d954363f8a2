// A 2-D convolution with its post-ops on oneDNN: the weights are reordered once into the layout
// the primitive prefers, primitives are cached per input shape and OpenMP thread count (a
// primitive built for one thread count is never run with another), and a shape or dtype the
// primitive cannot take runs the aten composition instead, said once in the verbose log.
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
#include <vector>

#include "kernels/post_ops.h"

namespace ipt::kernels {

struct ConvParams {
  std::vector<int64_t> stride{1, 1};
  std::vector<int64_t> padding{0, 0};
  std::vector<int64_t> dilation{1, 1};
  int64_t groups = 1;
};

class ConvContext : public torch::CustomClassHolder {
 public:
  // weight: [O, I/groups, KH, KW] fp32 or bf16 (the compute dtype); bias: [O] or undefined.
  // channels_last: outputs are NHWC in memory (inputs are converted to it if they are not), the
  // layout oneDNN's direct convolutions prefer; false keeps NCHW.
  // output_block: 0, or 8 or 16 for blocked outputs [N, O/b, OH, OW, b] (kernels/blocked.h),
  // which then also needs a blocked accumulator.
  // Throws ipt::Error(kInvalidArgument) for a weight that is not 4-D, parameters that do not
  // match it, or a block that does not divide the output channels.
  ConvContext(at::Tensor weight, at::Tensor bias, ConvParams params, PostOps post_ops,
              bool channels_last, int64_t output_block = 0);

  // input: [N, C, H, W] or blocked [N, C/b, H, W, b].
  // accumulator: required exactly when post_ops().sum; same shape as the output; read, not
  // written.
  at::Tensor Run(const at::Tensor& input, const at::Tensor& accumulator = {});

  // The sum post-op into `accumulator` itself, which becomes the result (returned): no copy of
  // it into a fresh output. For a graph whose accumulator dies at this op. Where the accumulator's
  // dtype, shape or layout is not the output's, or it shares memory with the input, the result
  // is computed as by Run and copied into it.
  at::Tensor RunInPlace(const at::Tensor& input, at::Tensor& accumulator);

  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }
  const ConvParams& params() const { return params_; }
  const PostOps& post_ops() const { return post_ops_; }
  bool channels_last() const { return channels_last_; }
  int64_t output_block() const { return output_block_; }

  // What a serialised model stores: enough to rebuild the context (packed weights are not
  // stored; they are rebuilt on the first call, which is cheap next to loading).
  using State =
      std::tuple<at::Tensor, c10::optional<at::Tensor>, std::vector<int64_t>, std::vector<int64_t>,
                 std::vector<int64_t>, int64_t, std::string, bool, int64_t>;
  State GetState() const;
  static c10::intrusive_ptr<ConvContext> FromState(State state);

 private:
  struct Plan;
  std::shared_ptr<const Plan> PlanFor(const at::Tensor& input);
  void CheckInputs(const at::Tensor& input, const at::Tensor& accumulator) const;
  at::MemoryFormat DstFormat() const;
  void Execute(const Plan& plan, const at::Tensor& input, at::Tensor& dst) const;
  at::Tensor RunReference(const at::Tensor& input, const at::Tensor& accumulator) const;

  at::Tensor weight_;
  at::Tensor bias_;
  ConvParams params_;
  PostOps post_ops_;
  bool channels_last_;
  int64_t output_block_;

  std::mutex mutex_;
  // Key: the input's sizes, thread count. A null plan records a shape oneDNN refused.
  std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> plans_;
};

}  // namespace ipt::kernels
