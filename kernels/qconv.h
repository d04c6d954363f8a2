// An int8 2-D convolution with its post-ops on oneDNN: fp32 in, fp32 out, u8 (u7 without VNNI)
// activations with a calibrated per-tensor scale and zero point, s8 weights with a scale per
// output channel, s32 accumulation, and the dequantization, bias and post-ops fused into the
// primitive. An input oneDNN cannot take runs the same arithmetic in aten (fake quantization),
// said once in the verbose log.
//
// Chained int8: a context given an output quantization writes its result already quantized
// (uint8, the next convolution's input parameters) instead of fp32, and a uint8 input is taken
// as quantized with this context's input parameters. Between two int8 convolutions the
// activation then crosses memory once as one byte, not as four bytes and again as one.
// A residual chains the same way: with an accumulator quantization, a sum post-op takes a
// uint8 accumulator (read as scale * (q - zero point)), and with an output quantization too
// it adds into that uint8 tensor in place and leaves the quantized result there.
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
#include <vector>

#include "kernels/conv.h"
#include "kernels/post_ops.h"
#include "kernels/quant.h"

namespace ipt::kernels {

class QuantConvContext : public torch::CustomClassHolder {
 public:
  // weight: [O, I/groups, KH, KW] fp32, quantized here; bias: [O] fp32 or undefined. Outputs are
  // channels-last in memory: oneDNN's int8 convolutions are NHWC only.
  // output: quantize the result with it (uint8 out); after a sum post-op only with
  // `accumulator` too. accumulator: how a uint8 accumulator is quantized (sum post-op only).
  // Throws ipt::Error(kInvalidArgument) as ConvContext does, for a quantization that is not
  // unsigned 8-bit with a positive scale, and for output or accumulator against those rules.
  QuantConvContext(at::Tensor weight, at::Tensor bias, ConvParams params, PostOps post_ops,
                   ActivationQuant input, std::optional<ActivationQuant> output = std::nullopt,
                   std::optional<ActivationQuant> accumulator = std::nullopt);

  // input: fp32 [N, C, H, W], or uint8 quantized with input_quant(); accumulator as for
  // ConvContext, or uint8 quantized with accumulator_quant(). Returns fp32, or uint8 quantized
  // with the output quantization when there is one.
  at::Tensor Run(const at::Tensor& input, const at::Tensor& accumulator = {});

  // With a sum post-op: adds into `accumulator` (the output's dtype, fp32 or uint8, and sizes)
  // and returns it, without copying it into a fresh output first when it is channels-last.
  // Throws c10::Error for a uint8 accumulator with an fp32 output, or the reverse.
  at::Tensor RunInPlace(const at::Tensor& input, at::Tensor& accumulator);

  const ActivationQuant& input_quant() const { return input_; }
  const std::optional<ActivationQuant>& output_quant() const { return output_; }
  const std::optional<ActivationQuant>& accumulator_quant() const { return accumulator_; }
  const at::Tensor& weight() const { return weight_; }

  // The same convolution writing its result quantized with `output`.
  c10::intrusive_ptr<QuantConvContext> WithOutputQuant(const ActivationQuant& output) const;

  // The output and accumulator quantizations are saved as scale, zero point and qmax each;
  // qmax 0 means none.
  using State = std::tuple<at::Tensor, c10::optional<at::Tensor>, std::vector<int64_t>,
                           std::vector<int64_t>, std::vector<int64_t>, int64_t, std::string, double,
                           int64_t, int64_t, double, int64_t, int64_t, double, int64_t, int64_t>;
  State GetState() const;
  static c10::intrusive_ptr<QuantConvContext> FromState(State state);

 private:
  struct Plan;
  // quantized_sum: the destination holds the accumulator's integers when the sum reads it, so
  // the sum post-op dequantizes them with the accumulator quantization.
  std::shared_ptr<const Plan> PlanFor(const at::Tensor& input, bool quantized_sum);
  void CheckInputs(const at::Tensor& input, const at::Tensor& accumulator) const;
  at::Tensor QuantizedInput(const at::Tensor& input) const;
  at::Tensor RealAccumulator(const at::Tensor& accumulator) const;
  void Execute(const Plan& plan, const at::Tensor& src, const at::Tensor& dst) const;
  at::Tensor RunReference(const at::Tensor& input, const at::Tensor& accumulator) const;

  at::Tensor weight_;  // fp32, what the context was built from (and is saved as)
  at::Tensor bias_;
  ConvParams params_;
  PostOps post_ops_;
  ActivationQuant input_;
  std::optional<ActivationQuant> output_;
  std::optional<ActivationQuant> accumulator_;
  QuantizedWeight quantized_;
  at::Tensor scaled_bias_;  // bias / (input scale * weight scale): oneDNN v2 adds it before scaling

  std::mutex mutex_;
  std::map<std::vector<int64_t>, std::shared_ptr<const Plan>> plans_;
};

}  // namespace ipt::kernels
