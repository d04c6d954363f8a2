#include "core/passes/fuse_transformer.h"

#include <fmt/format.h>

#include <map>

#include "core/passes/graph_util.h"
#include "kernels/attention.h"

namespace ipt::core::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The constant that `node` (div or mul) scales its other operand by, as a multiplier.
std::optional<double> ScaleOf(Node* node, Value* scaled) {
  if (IsKind(node, {"aten::div"}) && node->inputs().size() == 2 && node->input(0) == scaled) {
    auto c = ConstantNumber(node->input(1));
    if (c && *c != 0) return 1.0 / *c;
  }
  if (IsKind(node, {"aten::mul"}) && node->inputs().size() == 2) {
    Value* other = node->input(0) == scaled ? node->input(1) : node->input(0);
    if (other != scaled) return ConstantNumber(other);
  }
  return std::nullopt;
}

bool IsLastTwoDims(Value* a, Value* b) {
  auto x = ConstantNumber(a), y = ConstantNumber(b);
  return x && y && ((*x == -1 && *y == -2) || (*x == -2 && *y == -1));
}

}  // namespace

FusionReport MergeSiblingLinears(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  // Input value -> the linears reading it, in program order.
  std::map<Value*, std::vector<Node*>> groups;
  std::vector<Value*> order;
  for (Node* node : AllNodes(graph)) {
    if (!IsKind(node, {"aten::linear"})) continue;
    auto weight = ConstantTensor(node->input(1));
    if (!weight || weight->dim() != 2) continue;
    if (!IsNone(node->input(2)) && !ConstantTensor(node->input(2))) continue;
    if (groups.count(node->input(0)) == 0) order.push_back(node->input(0));
    groups[node->input(0)].push_back(node);
  }
  for (Value* input : order) {
    std::vector<Node*>& linears = groups[input];
    if (linears.size() < 2) continue;
    const at::Tensor first = *ConstantTensor(linears[0]->input(1));
    std::vector<at::Tensor> weights, biases;
    std::vector<int64_t> sizes;
    bool compatible = true;
    for (Node* linear : linears) {
      at::Tensor w = *ConstantTensor(linear->input(1));
      compatible &= w.size(1) == first.size(1) && w.scalar_type() == first.scalar_type() &&
                    linear->owningBlock() == linears[0]->owningBlock();
      weights.push_back(w);
      biases.push_back(IsNone(linear->input(2)) ? at::zeros({w.size(0)}, w.options())
                                                : *ConstantTensor(linear->input(2)));
      sizes.push_back(w.size(0));
    }
    if (!compatible) {
      report.not_fused.push_back({"qkv_merge", Where(input),
                                  "the linears reading it differ in input width, dtype or block"});
      continue;
    }
    Node* first_node = linears[0];
    Node* last_node = linears[0];
    for (Node* linear : linears) {
      if (linear->isBefore(first_node)) first_node = linear;
      if (last_node->isBefore(linear)) last_node = linear;
    }
    if (!NoWritesBetween(first_node, last_node)) {
      report.not_fused.push_back(
          {"qkv_merge", Where(input), "a node between the linears may write to the input"});
      continue;
    }
    torch::jit::WithInsertPoint guard(first_node);
    Value* merged =
        graph->insert(c10::aten::linear, {input, graph->insertConstant(at::cat(weights, 0)),
                                          graph->insertConstant(at::cat(biases))});
    Value* parts = graph->insert(c10::aten::split_with_sizes,
                                 {merged, graph->insertConstant(c10::IValue(sizes)),
                                  graph->insertConstant(static_cast<int64_t>(-1))});
    Node* unpack = graph->createListUnpack(parts, static_cast<int64_t>(linears.size()));
    graph->insertNode(unpack);
    for (size_t i = 0; i < linears.size(); ++i) {
      linears[i]->output()->replaceAllUsesWith(unpack->output(i));
      linears[i]->destroy();
    }
    ++report.fused["qkv_merge"];
  }
  return report;
}

FusionReport FuseAttention(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  // Collected first: a match destroys nodes that come after its softmax.
  std::vector<Node*> softmaxes;
  for (Node* node : AllNodes(graph))
    if (IsKind(node, {"aten::softmax"}) && node->inputs().size() == 3) softmaxes.push_back(node);
  for (Node* softmax : softmaxes) {
    auto blocked = [&](const std::string& reason) {
      report.not_fused.push_back({"attention", Where(softmax->output()), reason});
    };
    auto dim = ConstantNumber(softmax->input(1));
    if (!dim || *dim != -1 || !IsNone(softmax->input(2))) {
      blocked("softmax is not over the last dimension in the input dtype");
      continue;
    }
    std::vector<Node*> consumed{softmax};
    Value* x = softmax->input(0);
    Value* mask = nullptr;
    double scale = 1;
    Node* node = x->node();
    if (IsKind(node, {"aten::add"}) && x->uses().size() == 1) {
      auto alpha = ConstantNumber(node->input(2));
      if (!alpha || *alpha != 1) {
        blocked("the mask add has alpha other than 1");
        continue;
      }
      // The scores side is the one computed by a matmul, possibly scaled.
      auto is_scores = [](Value* v) {
        Node* n = v->node();
        return IsKind(n, {"aten::matmul", "aten::div", "aten::mul"});
      };
      x = is_scores(node->input(0)) ? node->input(0) : node->input(1);
      mask = x == node->input(0) ? node->input(1) : node->input(0);
      if (!mask->type()->isSubtypeOf(*c10::TensorType::get())) {
        blocked("the scores are shifted by a number, not a mask tensor");
        continue;
      }
      consumed.push_back(node);
      node = x->node();
    }
    if (IsKind(node, {"aten::div", "aten::mul"}) && x->uses().size() == 1) {
      Value* scaled =
          IsKind(node->input(0)->node(), {"aten::matmul"}) ? node->input(0) : node->input(1);
      auto s = ScaleOf(node, scaled);
      if (!s) {
        blocked("the scores are scaled by something other than a constant");
        continue;
      }
      scale = *s;
      consumed.push_back(node);
      x = scaled;
      node = x->node();
    }
    if (!IsKind(node, {"aten::matmul"}) || x->uses().size() != 1) continue;
    Node* scores = node;
    Node* transpose = scores->input(1)->node();
    if (!IsKind(transpose, {"aten::transpose"}) || transpose->output()->uses().size() != 1 ||
        !IsLastTwoDims(transpose->input(1), transpose->input(2))) {
      blocked("the key is not transposed over its last two dimensions right before the matmul");
      continue;
    }
    Node* context = OnlyUser(softmax->output());
    if (!context || !IsKind(context, {"aten::matmul"}) || context->input(0) != softmax->output()) {
      blocked("the probabilities are not used by exactly one matmul with the values");
      continue;
    }
    if (!NoWritesBetween(transpose, context) || scores->isAfter(context)) {
      blocked("a node between the matmuls may write to q, k, v or the mask");
      continue;
    }
    consumed.push_back(scores);
    consumed.push_back(transpose);
    Value* q = scores->input(0);
    Value* k = transpose->input(0);
    Value* v = context->input(1);
    torch::jit::WithInsertPoint guard(context);
    Value* object = InsertObjectConstant(
        *graph, c10::IValue(c10::make_intrusive<kernels::AttentionContext>(scale)));
    Value* mask_value = mask ? mask : graph->insertConstant(c10::IValue());
    InsertInPlaceOf(context->output(), "ipt::attention", {q, k, v, mask_value, object});
    context->destroy();
    for (Node* n : consumed) n->destroy();  // softmax first: each one's user is already gone
    ++report.fused["attention"];
  }
  return report;
}

FusionReport FuseAddLayerNorm(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  std::vector<Node*> norms;
  for (Node* node : AllNodes(graph))
    if (IsKind(node, {"aten::layer_norm"})) norms.push_back(node);
  for (Node* norm : norms) {
    Value* x = norm->input(0);
    Node* add = x->node();
    if (!IsKind(add, {"aten::add"}) || add->inputs().size() != 3 ||
        !add->input(1)->type()->isSubtypeOf(*c10::TensorType::get()))
      continue;
    auto alpha = ConstantNumber(add->input(2));
    if (x->uses().size() != 1 || !alpha || *alpha != 1 || !NoWritesBetween(add, norm)) {
      report.not_fused.push_back({"add+layer_norm", Where(x),
                                  x->uses().size() != 1 ? "the sum has other uses"
                                  : !NoWritesBetween(add, norm)
                                      ? "a node between may write to an input"
                                      : "add with alpha other than 1"});
      continue;
    }
    torch::jit::WithInsertPoint guard(norm);
    InsertInPlaceOf(norm->output(), "ipt::add_layer_norm",
                    {add->input(0), add->input(1), norm->input(1), norm->input(2), norm->input(3),
                     norm->input(4)});
    norm->destroy();
    add->destroy();
    ++report.fused["add+layer_norm"];
  }
  return report;
}

}  // namespace ipt::core::passes
