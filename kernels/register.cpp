// The `ipt` torch library: the custom classes that hold prepacked weights and the ops that run
// them. Graphs reference these by name (`ipt::conv2d`, `__torch__.torch.classes.ipt.ConvContext`),
// and a saved optimised model needs this library loaded to be read back.
#include <torch/library.h>

#include "kernels/add_layer_norm.h"
#include "kernels/attention.h"
#include "kernels/blocked.h"
#include "kernels/concat_batch_norm.h"
#include "kernels/conv.h"
#include "kernels/dlrm.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "kernels/observe.h"
#include "kernels/pool.h"
#include "kernels/qconv.h"
#include "kernels/qlinear.h"

namespace ipt::kernels {
namespace {

at::Tensor Conv2d(const at::Tensor& input, const c10::intrusive_ptr<ConvContext>& context) {
  return context->Run(input);
}

at::Tensor Conv2dSum(const at::Tensor& input, const at::Tensor& accumulator,
                     const c10::intrusive_ptr<ConvContext>& context) {
  return context->Run(input, accumulator);
}

at::Tensor Conv2dSumInPlace(const at::Tensor& input, at::Tensor accumulator,
                            const c10::intrusive_ptr<ConvContext>& context) {
  return context->RunInPlace(input, accumulator);
}

at::Tensor Linear(const at::Tensor& input, const c10::intrusive_ptr<LinearContext>& context) {
  return context->Run(input);
}

at::Tensor LinearSum(const at::Tensor& input, const at::Tensor& accumulator,
                     const c10::intrusive_ptr<LinearContext>& context) {
  return context->Run(input, accumulator);
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const c10::optional<at::Tensor>& mask,
                     const c10::intrusive_ptr<AttentionContext>& context) {
  return context->Run(q, k, v, mask.value_or(at::Tensor()));
}

at::Tensor AddLayerNormOp(const at::Tensor& a, const at::Tensor& b,
                          std::vector<int64_t> normalized_shape,
                          const c10::optional<at::Tensor>& weight,
                          const c10::optional<at::Tensor>& bias, double eps) {
  return AddLayerNorm(a, b, normalized_shape, weight.value_or(at::Tensor()),
                      bias.value_or(at::Tensor()), eps);
}

at::Tensor QuantConv2d(const at::Tensor& input,
                       const c10::intrusive_ptr<QuantConvContext>& context) {
  return context->Run(input);
}

at::Tensor QuantConv2dSum(const at::Tensor& input, const at::Tensor& accumulator,
                          const c10::intrusive_ptr<QuantConvContext>& context) {
  return context->Run(input, accumulator);
}

at::Tensor QuantConv2dSumInPlace(const at::Tensor& input, at::Tensor accumulator,
                                 const c10::intrusive_ptr<QuantConvContext>& context) {
  return context->RunInPlace(input, accumulator);
}

at::Tensor QuantLinear(const at::Tensor& input,
                       const c10::intrusive_ptr<QuantLinearContext>& context) {
  return context->Run(input);
}

at::Tensor QuantLinearSum(const at::Tensor& input, const at::Tensor& accumulator,
                          const c10::intrusive_ptr<QuantLinearContext>& context) {
  return context->Run(input, accumulator);
}

}  // namespace

TORCH_LIBRARY(ipt, m) {
  m.class_<ConvContext>("ConvContext")
      .def_pickle(
          [](const c10::intrusive_ptr<ConvContext>& self) { return self->GetState(); },
          [](ConvContext::State state) { return ConvContext::FromState(std::move(state)); });
  m.class_<LinearContext>("LinearContext")
      .def_pickle(
          [](const c10::intrusive_ptr<LinearContext>& self) { return self->GetState(); },
          [](LinearContext::State state) { return LinearContext::FromState(std::move(state)); });
  m.class_<QuantConvContext>("QuantConvContext")
      .def_pickle([](const c10::intrusive_ptr<QuantConvContext>& self) { return self->GetState(); },
                  [](QuantConvContext::State state) {
                    return QuantConvContext::FromState(std::move(state));
                  });
  m.class_<QuantLinearContext>("QuantLinearContext")
      .def_pickle(
          [](const c10::intrusive_ptr<QuantLinearContext>& self) { return self->GetState(); },
          [](QuantLinearContext::State state) {
            return QuantLinearContext::FromState(std::move(state));
          });
  m.class_<AttentionContext>("AttentionContext")
      .def_pickle([](const c10::intrusive_ptr<AttentionContext>& self) { return self->scale(); },
                  [](double scale) { return c10::make_intrusive<AttentionContext>(scale); });
  m.def(
      "attention(Tensor q, Tensor k, Tensor v, Tensor? mask, "
      "__torch__.torch.classes.ipt.AttentionContext context) -> Tensor",
      Attention);
  m.def(
      "add_layer_norm(Tensor a, Tensor b, int[] normalized_shape, Tensor? weight, Tensor? bias, "
      "float eps) -> Tensor",
      AddLayerNormOp);
  m.def("interaction(Tensor[] features, bool with_first) -> Tensor",
        [](std::vector<at::Tensor> features, bool with_first) {
          return Interaction(features, with_first);
        });
  m.def(
      "merged_embedding_bag_sum(Tensor[] weights, Tensor[] indices, Tensor[] offsets) -> "
      "Tensor[]",
      [](std::vector<at::Tensor> weights, std::vector<at::Tensor> indices,
         std::vector<at::Tensor> offsets) {
        return MergedEmbeddingBagSum(weights, indices, offsets);
      });
  m.def(
      "qmerged_embedding_bag_sum(Tensor[] weights, Tensor[] row_scales, Tensor[] indices, "
      "Tensor[] offsets) -> Tensor[]",
      [](std::vector<at::Tensor> weights, std::vector<at::Tensor> row_scales,
         std::vector<at::Tensor> indices, std::vector<at::Tensor> offsets) {
        return QuantizedMergedEmbeddingBagSum(weights, row_scales, indices, offsets);
      });
  m.def("concat_batch_norm(Tensor[] xs, Tensor scale, Tensor shift, bool relu) -> Tensor",
        [](std::vector<at::Tensor> xs, const at::Tensor& scale, const at::Tensor& shift,
           bool relu) { return ConcatBatchNorm(xs, scale, shift, relu); });
  m.def("matmul(Tensor a, Tensor b, Tensor? addend) -> Tensor",
        [](const at::Tensor& a, const at::Tensor& b, const c10::optional<at::Tensor>& addend) {
          return Matmul(a, b, addend.value_or(at::Tensor()));
        });
  m.def("to_blocked(Tensor x, int block) -> Tensor", ToBlocked);
  // A floating-point tensor in `dtype`, any other tensor as it is (an op kept in fp32 inside a
  // bf16 model also reads indices). May return its input, hence the alias annotation.
  m.def("floating_to(Tensor(a) x, ScalarType dtype) -> Tensor(a)",
        [](const at::Tensor& x, c10::ScalarType dtype) {
          return x.is_floating_point() && x.scalar_type() != dtype ? x.to(dtype) : x;
        });
  m.def("from_blocked(Tensor x, bool channels_last) -> Tensor", FromBlocked);
  m.def(
      "blocked_max_pool2d(Tensor x, int[] kernel_size, int[] stride, int[] padding, "
      "int[] dilation, bool ceil_mode) -> Tensor",
      BlockedMaxPool2d);
  m.def(
      "qmax_pool2d(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, "
      "bool ceil_mode) -> Tensor",
      QuantizedMaxPool2d);
  m.def("conv2d(Tensor input, __torch__.torch.classes.ipt.ConvContext context) -> Tensor", Conv2d);
  m.def(
      "conv2d_sum(Tensor input, Tensor accumulator, "
      "__torch__.torch.classes.ipt.ConvContext context) -> Tensor",
      Conv2dSum);
  // Writes the result into its accumulator, which the schema declares, so alias analysis (and
  // any pass after ours) sees the mutation.
  m.def(
      "conv2d_sum_(Tensor input, Tensor(a!) accumulator, "
      "__torch__.torch.classes.ipt.ConvContext context) -> Tensor(a!)",
      Conv2dSumInPlace);
  m.def("linear(Tensor input, __torch__.torch.classes.ipt.LinearContext context) -> Tensor",
        Linear);
  m.def(
      "linear_sum(Tensor input, Tensor accumulator, "
      "__torch__.torch.classes.ipt.LinearContext context) -> Tensor",
      LinearSum);
  m.def("qconv2d(Tensor input, __torch__.torch.classes.ipt.QuantConvContext context) -> Tensor",
        QuantConv2d);
  m.def(
      "qconv2d_sum(Tensor input, Tensor accumulator, "
      "__torch__.torch.classes.ipt.QuantConvContext context) -> Tensor",
      QuantConv2dSum);
  m.def(
      "qconv2d_sum_(Tensor input, Tensor(a!) accumulator, "
      "__torch__.torch.classes.ipt.QuantConvContext context) -> Tensor(a!)",
      QuantConv2dSumInPlace);
  m.def("qlinear(Tensor input, __torch__.torch.classes.ipt.QuantLinearContext context) -> Tensor",
        QuantLinear);
  m.def(
      "qlinear_sum(Tensor input, Tensor accumulator, "
      "__torch__.torch.classes.ipt.QuantLinearContext context) -> Tensor",
      QuantLinearSum);
  // Aliases its input (the schema says so), so passes never treat the result as a new tensor.
  m.def("observe(Tensor(a) x, int slot) -> Tensor(a)", Observe);
}

}  // namespace ipt::kernels
