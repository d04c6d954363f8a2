#include "core/passes/blocked_layout.h"

#include <torch/csrc/jit/ir/constants.h>

#include <map>
#include <set>

#include "core/passes/graph_util.h"
#include "kernels/conv.h"

namespace ipt::core::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

bool IsConv(const Node* node) { return IsKind(node, {"ipt::conv2d", "ipt::conv2d_sum"}); }

Value* ContextInput(Node* conv) { return conv->inputs().back(); }

c10::intrusive_ptr<kernels::ConvContext> ConvContextOf(Node* conv) {
  auto ivalue = torch::jit::toIValue(ContextInput(conv));
  if (!ivalue || !ivalue->isCustomClass()) return {};
  return ivalue->toCustomClass<kernels::ConvContext>();
}

bool Blockable(const kernels::ConvContext& context, int64_t block) {
  const at::ScalarType dtype = context.weight().scalar_type();
  return context.params().groups == 1 && context.weight().size(0) % block == 0 &&
         (dtype == at::kFloat || dtype == at::kBFloat16);
}

}  // namespace

BlockedLayoutReport UseBlockedLayout(const std::shared_ptr<torch::jit::Graph>& graph, int64_t block,
                                     bool channels_last) {
  BlockedLayoutReport report;
  std::set<Value*> blocked;  // values that now hold blocked tensors
  std::set<Node*> readers;   // nodes that read blocked inputs (input 0 and the accumulator)
  std::map<Value*, Value*> to_blocked;
  std::vector<Node*> replaced_pools;
  auto blocked_input = [&](Node* user, size_t index) {
    Value* value = user->input(index);
    if (blocked.count(value)) return;
    auto& converted = to_blocked[value];
    if (!converted) {
      torch::jit::WithInsertPoint guard(user);
      converted = graph->insert(c10::Symbol::fromQualString("ipt::to_blocked"),
                                {value, graph->insertConstant(block)});
      converted->setType(c10::TensorType::get());
      ++report.reorders;
    }
    user->replaceInput(index, converted);
  };

  for (Node* node : graph->block()->nodes()) {
    if (IsConv(node)) {
      auto context = ConvContextOf(node);
      if (!context || !Blockable(*context, block)) continue;
      const int64_t in_channels = context->weight().size(1);
      if (in_channels % block == 0) blocked_input(node, 0);
      if (IsKind(node, {"ipt::conv2d_sum"})) blocked_input(node, 1);
      auto blocked_context = c10::make_intrusive<kernels::ConvContext>(
          context->weight(), context->bias(), context->params(), context->post_ops(),
          context->channels_last(), block);
      torch::jit::WithInsertPoint guard(node);
      node->replaceInput(node->inputs().size() - 1,
                         InsertObjectConstant(*graph, c10::IValue(std::move(blocked_context))));
      blocked.insert(node->output());
      readers.insert(node);
      ++report.blocked_convs;
    } else if (IsConstantMaxPool(node) && blocked.count(node->input(0))) {
      torch::jit::WithInsertPoint guard(node);
      Value* pooled = InsertInPlaceOf(node->output(), "ipt::blocked_max_pool2d", node->inputs());
      blocked.insert(pooled);
      readers.insert(pooled->node());
      replaced_pools.push_back(node);
      ++report.blocked_pools;
    }
  }
  for (Node* pool : replaced_pools) pool->destroy();
  // Every other reader of a blocked value (a nested block, the graph's outputs included) gets it
  // back plain, converted once right after its producer.
  for (Value* value : blocked) {
    std::vector<torch::jit::Use> plain_uses;
    for (const torch::jit::Use& use : value->uses())
      if (!readers.count(use.user)) plain_uses.push_back(use);
    if (plain_uses.empty()) continue;
    torch::jit::WithInsertPoint guard(value->node()->next());
    Value* plain = graph->insert(c10::Symbol::fromQualString("ipt::from_blocked"),
                                 {value, graph->insertConstant(channels_last)});
    plain->setType(c10::TensorType::get());
    ++report.reorders;
    for (const torch::jit::Use& use : plain_uses) use.user->replaceInput(use.offset, plain);
  }
  return report;
}

}  // namespace ipt::core::passes
