#include "core/passes/graph_util.h"

#include <torch/csrc/jit/ir/constants.h>

#include <functional>

namespace ipt::core::passes {

std::vector<torch::jit::Node*> AllNodes(const std::shared_ptr<torch::jit::Graph>& graph) {
  std::vector<torch::jit::Node*> nodes;
  std::function<void(torch::jit::Block*)> visit = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      nodes.push_back(node);
      for (torch::jit::Block* sub : node->blocks()) visit(sub);
    }
  };
  visit(graph->block());
  return nodes;
}

torch::jit::Value* InsertObjectConstant(torch::jit::Graph& graph, const c10::IValue& object) {
  torch::jit::Node* constant = graph.create(c10::prim::Constant);
  constant->output()->setType(object.type());
  constant->ival_(c10::attr::value, object);
  graph.insertNode(constant);
  return constant->output();
}

torch::jit::Value* InsertInPlaceOf(torch::jit::Value* replaced, const char* kind,
                                   at::ArrayRef<torch::jit::Value*> inputs,
                                   const c10::TypePtr& type) {
  torch::jit::Graph* graph = replaced->owningGraph();
  torch::jit::Node* node = graph->create(c10::Symbol::fromQualString(kind), inputs, 1);
  node->output()->setType(type);
  graph->insertNode(node);
  replaced->replaceAllUsesWith(node->output());
  return node->output();
}

std::optional<at::Tensor> ConstantTensor(torch::jit::Value* value) {
  auto ivalue = torch::jit::toIValue(value);
  if (!ivalue || !ivalue->isTensor()) return std::nullopt;
  return ivalue->toTensor();
}

std::optional<at::Tensor> OptionalConstantTensor(torch::jit::Value* value) {
  if (IsNone(value)) return at::Tensor();
  return ConstantTensor(value);
}

bool IsNone(torch::jit::Value* value) {
  auto ivalue = torch::jit::toIValue(value);
  return ivalue && ivalue->isNone();
}

std::optional<double> ConstantNumber(torch::jit::Value* value) {
  auto ivalue = torch::jit::toIValue(value);
  if (!ivalue) return std::nullopt;
  if (ivalue->isDouble()) return ivalue->toDouble();
  if (ivalue->isInt()) return static_cast<double>(ivalue->toInt());
  if (ivalue->isBool()) return ivalue->toBool() ? 1.0 : 0.0;
  return std::nullopt;
}

std::string Where(torch::jit::Value* value) { return "%" + value->debugName(); }

torch::jit::Node* OnlyUser(torch::jit::Value* value) {
  return value->uses().size() == 1 ? value->uses()[0].user : nullptr;
}

bool IsKind(const torch::jit::Node* node, std::initializer_list<const char*> qualified_names) {
  for (const char* name : qualified_names)
    if (node->kind() == c10::Symbol::fromQualString(name)) return true;
  return false;
}

bool IsConstantMaxPool(torch::jit::Node* node) {
  if (!IsKind(node, {"aten::max_pool2d"}) || node->inputs().size() != 6) return false;
  for (size_t i = 1; i < 6; ++i)
    if (!torch::jit::toIValue(node->input(i))) return false;
  return true;
}

bool NoWritesBetween(torch::jit::Node* first, torch::jit::Node* last) {
  if (first->owningBlock() != last->owningBlock() || last->isBefore(first)) return false;
  for (torch::jit::Node* n = first->next(); n != last; n = n->next()) {
    if (!n->blocks().empty() || n->kind() == c10::prim::SetAttr) return false;
    if (const c10::FunctionSchema* schema = n->maybeSchema(); schema && schema->is_mutable())
      return false;
  }
  return true;
}

}  // namespace ipt::core::passes
