#include "core/passes/fold_linear.h"

#include "core/passes/graph_util.h"

namespace ipt::core::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

struct FrozenLinear {
  Node* node;
  at::Tensor weight;  // fp32 copies; written back in the graph's dtype
  at::Tensor bias;
  at::ScalarType dtype;
};

// The frozen linear producing `value` with no other user of its output, or nullopt.
std::optional<FrozenLinear> ProducingLinear(Value* value) {
  Node* node = value->node();
  if (!IsKind(node, {"aten::linear"}) || value->uses().size() != 1) return std::nullopt;
  auto weight = ConstantTensor(node->input(1));
  if (!weight || weight->dim() != 2) return std::nullopt;
  at::Tensor bias;
  if (IsNone(node->input(2))) {
    bias = at::zeros({weight->size(0)}, at::kFloat);
  } else {
    auto b = ConstantTensor(node->input(2));
    if (!b) return std::nullopt;
    bias = b->to(at::kFloat);
  }
  return FrozenLinear{node, weight->to(at::kFloat), bias, weight->scalar_type()};
}

void Rewrite(const FrozenLinear& linear, const at::Tensor& weight, const at::Tensor& bias,
             Node* folded) {
  auto graph = linear.node->owningGraph();
  torch::jit::WithInsertPoint guard(linear.node);
  linear.node->replaceInput(1, graph->insertConstant(weight.to(linear.dtype)));
  linear.node->replaceInput(2, graph->insertConstant(bias.to(linear.dtype)));
  folded->output()->replaceAllUsesWith(linear.node->output());
  folded->destroy();
}

// A constant that broadcasts over the output features only, without changing the output's rank
// or dtype: a number, or a 0-D or 1-D tensor of 1 or `features` elements in `dtype`.
std::optional<at::Tensor> PerFeature(Value* value, int64_t features, at::ScalarType dtype) {
  if (auto number = ConstantNumber(value)) return at::full({features}, *number, at::kFloat);
  auto tensor = ConstantTensor(value);
  if (!tensor || !tensor->defined()) return std::nullopt;
  // A higher rank would broadcast the output to more dimensions; another dtype would promote it.
  if (tensor->dim() > 1 || tensor->scalar_type() != dtype) return std::nullopt;
  if (tensor->numel() == 1) return at::full({features}, tensor->item<double>(), at::kFloat);
  if (tensor->dim() < 1 || tensor->size(-1) != features || tensor->numel() != features)
    return std::nullopt;
  return tensor->reshape({features}).to(at::kFloat);
}

}  // namespace

bool FoldLinearBatchNorm(const std::shared_ptr<torch::jit::Graph>& graph) {
  bool changed = false;
  for (Node* node : AllNodes(graph)) {
    if (!IsKind(node, {"aten::batch_norm"})) continue;
    auto linear = ProducingLinear(node->input(0));
    if (!linear) continue;
    // batch_norm normalises dimension 1, which is the linear's features only for 2-D outputs:
    // fold only when the graph says the input is 2-D (traced graphs carry shapes).
    auto input_type = linear->node->input(0)->type()->cast<c10::TensorType>();
    if (!input_type || input_type->dim() != 2) continue;
    auto gamma = OptionalConstantTensor(node->input(1));
    auto beta = OptionalConstantTensor(node->input(2));
    auto mean = ConstantTensor(node->input(3)), var = ConstantTensor(node->input(4));
    auto training = torch::jit::toIValue(node->input(5));
    auto eps = ConstantNumber(node->input(7));
    if (!mean || !var || !training || !training->isBool() || training->toBool() || !eps) continue;
    // None means 1 and 0; a value that did not freeze to a constant cannot be folded.
    if (!gamma || !beta) continue;
    const int64_t features = linear->weight.size(0);
    at::Tensor g = gamma->defined() ? gamma->to(at::kFloat) : at::ones({features});
    at::Tensor b = beta->defined() ? beta->to(at::kFloat) : at::zeros({features});
    at::Tensor scale = g / at::sqrt(var->to(at::kFloat) + *eps);
    Rewrite(*linear, linear->weight * scale.unsqueeze(1),
            (linear->bias - mean->to(at::kFloat)) * scale + b, node);
    changed = true;
  }
  return changed;
}

bool FoldLinearArithmetic(const std::shared_ptr<torch::jit::Graph>& graph) {
  bool changed = false;
  for (Node* node : AllNodes(graph)) {
    const bool add = IsKind(node, {"aten::add"}), sub = IsKind(node, {"aten::sub"});
    const bool mul = IsKind(node, {"aten::mul"}), div = IsKind(node, {"aten::div"});
    if (!add && !sub && !mul && !div) continue;
    if (div && node->inputs().size() != 2) continue;  // div with a rounding mode
    // The linear on the left; for add and mul, on either side.
    int side = 0;
    auto linear = ProducingLinear(node->input(0));
    if (!linear && (add || mul) && node->inputs().size() >= 2) {
      linear = ProducingLinear(node->input(1));
      side = 1;
    }
    if (!linear) continue;
    auto constant = PerFeature(node->input(1 - side), linear->weight.size(0), linear->dtype);
    if (!constant) continue;
    double alpha = 1;
    if (add || sub) {
      auto a = ConstantNumber(node->input(2));
      if (!a || (side == 1 && *a != 1)) continue;
      alpha = side == 0 ? *a : 1;
    }
    if (add) {
      Rewrite(*linear, linear->weight, linear->bias + alpha * *constant, node);
    } else if (sub) {
      Rewrite(*linear, linear->weight, linear->bias - alpha * *constant, node);
    } else if (mul) {
      Rewrite(*linear, linear->weight * constant->unsqueeze(1), linear->bias * *constant, node);
    } else {
      Rewrite(*linear, linear->weight / constant->unsqueeze(1), linear->bias / *constant, node);
    }
    changed = true;
  }
  return changed;
}

}  // namespace ipt::core::passes
