// An int8 linear layer (y = x W^T + b) with its post-ops on oneDNN's matmul: fp32 in, fp32 out,
// s8 weights with a scale per output feature, u8 (u7 without VNNI) activations, s32
// accumulation, and the dequantization, bias and post-ops fused into the primitive.
// Static: the input's scale and zero point were calibrated ahead, optionally with input
// smoothing (a factor per input feature, kernels/quant.h). Dynamic: they are computed from each
// input's range at run time (one pass over it), so nothing is calibrated.
// An input oneDNN cannot take runs the same arithmetic in aten (fake quantization).
//
// Thread safety: Run may be called from several threads at once.
#pragma once

#include <ATen/ATen.h>
#include <torch/custom_class.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/post_ops.h"
#include "kernels/quant.h"

namespace ipt::kernels {

class QuantLinearContext : public torch::CustomClassHolder {
 public:
  // weight: [N, K] fp32, quantized here; bias: [N] fp32 or undefined; input: the calibrated
  // quantization (of the smoothed input, with smoothing), or nullopt for dynamic quantization;
  // smoothing: [K] positive factors that divide the input's features and multiply the weight's
  // columns before both are quantized, or undefined (static only).
  QuantLinearContext(at::Tensor weight, at::Tensor bias, PostOps post_ops,
                     std::optional<ActivationQuant> input, at::Tensor smoothing = {});

  // input: fp32 [..., K]; accumulator as for LinearContext. Returns fp32 [..., N].
  at::Tensor Run(const at::Tensor& input, const at::Tensor& accumulator = {});

  // oneDNN's implementation for inputs of `rows` rows at the current thread count ("brg:..." or
  // "gemm:..."), empty where oneDNN takes none and aten runs the layer.
  std::string Implementation(int64_t rows);

  bool dynamic() const { return !input_.has_value(); }
  const std::optional<ActivationQuant>& input_quant() const { return input_; }
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& smoothing() const { return smoothing_; }

  // Weight, bias, post-ops; scale, zero point, qmax of a static input (a negative scale means
  // dynamic); the smoothing factors.
  using State = std::tuple<at::Tensor, c10::optional<at::Tensor>, std::string, double, int64_t,
                           int64_t, c10::optional<at::Tensor>>;
  State GetState() const;
  static c10::intrusive_ptr<QuantLinearContext> FromState(State state);

 private:
  struct Plan;
  std::shared_ptr<const Plan> PlanFor(int64_t rows);
  at::Tensor RunReference(const at::Tensor& input, const ActivationQuant& quant,
                          const at::Tensor& accumulator) const;
  at::Tensor QuantizeInput(const at::Tensor& input, const ActivationQuant& quant) const;
  ActivationQuant QuantFor(const at::Tensor& input) const;

  at::Tensor weight_;  // fp32, what the context was built from (and is saved as)
  at::Tensor bias_;
  PostOps post_ops_;
  std::optional<ActivationQuant> input_;
  at::Tensor smoothing_;       // fp32 [K] or undefined
  QuantizedWeight quantized_;  // of the weight times the smoothing, with smoothing
  at::Tensor weight_scales_;   // fp32 [N]

  std::mutex mutex_;
  // Key: (rows, thread count). A null plan records a shape oneDNN refused.
  std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const Plan>> plans_;
};

}  // namespace ipt::kernels
