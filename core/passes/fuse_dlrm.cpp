#include "core/passes/fuse_dlrm.h"

#include <map>

#include "core/passes/graph_util.h"

namespace ipt::core::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

bool IsStrictLowerTriangle(const at::Tensor& index, int64_t vectors) {
  if (index.dim() != 1 || index.size(0) != vectors * (vectors - 1) / 2) return false;
  at::Tensor values = index.to(at::kLong).contiguous();
  const int64_t* v = values.data_ptr<int64_t>();
  int64_t p = 0;
  for (int64_t i = 0; i < vectors; ++i)
    for (int64_t j = 0; j < i; ++j)
      if (v[p++] != i * vectors + j) return false;
  return true;
}

}  // namespace

FusionReport FuseInteraction(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  std::vector<Node*> selects;
  for (Node* node : AllNodes(graph))
    if (IsKind(node, {"aten::index_select"})) selects.push_back(node);
  for (Node* select : selects) {
    auto blocked = [&](const std::string& reason) {
      report.not_fused.push_back({"interaction", Where(select->output()), reason});
    };
    Node* flatten = select->input(0)->node();
    Node* bmm = flatten->inputs().empty() ? nullptr : flatten->input(0)->node();
    if (!IsKind(flatten, {"aten::flatten"}) || !bmm || !IsKind(bmm, {"aten::bmm"})) continue;
    Node* transpose = bmm->input(1)->node();
    Value* t = bmm->input(0);
    Node* view = t->node();
    if (!IsKind(transpose, {"aten::transpose"}) || transpose->input(0) != t ||
        !IsKind(view, {"aten::view", "aten::reshape"}) ||
        !IsKind(view->input(0)->node(), {"aten::cat"})) {
      blocked("not bmm(t, t.transpose(1, 2)) over a concatenation of features");
      continue;
    }
    Node* cat = view->input(0)->node();
    Node* list = cat->input(0)->node();
    auto cat_dim = ConstantNumber(cat->input(1));
    auto t1 = ConstantNumber(transpose->input(1)), t2 = ConstantNumber(transpose->input(2));
    auto select_dim = ConstantNumber(select->input(1));
    auto index = ConstantTensor(select->input(2));
    auto flatten_start = ConstantNumber(flatten->input(1));
    auto flatten_end = ConstantNumber(flatten->input(2));
    if (list->kind() != c10::prim::ListConstruct || !cat_dim || *cat_dim != 1 || !t1 || !t2 ||
        std::min(*t1, *t2) != 1 || std::max(*t1, *t2) != 2 || !select_dim || *select_dim != 1 ||
        !index || !flatten_start || *flatten_start != 1 || !flatten_end || *flatten_end != -1) {
      blocked("dimensions or the index are not DLRM's");
      continue;
    }
    const auto vectors = static_cast<int64_t>(list->inputs().size());
    if (!IsStrictLowerTriangle(*index, vectors)) {
      blocked("the index is not the strict lower triangle");
      continue;
    }
    if (cat->output()->uses().size() != 1 || t->uses().size() != 2 ||
        transpose->output()->uses().size() != 1 || bmm->output()->uses().size() != 1 ||
        flatten->output()->uses().size() != 1) {
      blocked("an intermediate value has other uses");
      continue;
    }
    // DLRM's cat([x, z], 1), with x the first feature, folds in too.
    Node* last = select;
    bool with_first = false;
    // select -> ListConstruct([x, z]) -> cat(_, 1)
    Node* outer = OnlyUser(select->output());
    Node* user = outer ? OnlyUser(outer->output()) : nullptr;
    if (outer && user && outer->kind() == c10::prim::ListConstruct && IsKind(user, {"aten::cat"}) &&
        outer->inputs().size() == 2 && outer->input(0) == list->input(0) &&
        outer->input(1) == select->output()) {
      auto dim = ConstantNumber(user->input(1));
      if (dim && *dim == 1) {
        with_first = true;
        last = user;
      }
    }
    if (!NoWritesBetween(cat, last)) {
      blocked("a node between may write to a feature");
      continue;
    }
    torch::jit::WithInsertPoint guard(last);
    Value* fused = graph->insert(c10::Symbol::fromQualString("ipt::interaction"),
                                 {list->output(), graph->insertConstant(with_first)});
    last->output()->replaceAllUsesWith(fused);
    if (last != select) {
      Node* outer = last->input(0)->node();
      last->destroy();
      outer->destroy();
    }
    select->destroy();
    flatten->destroy();
    bmm->destroy();
    transpose->destroy();
    view->destroy();
    cat->destroy();
    ++report.fused["interaction"];
  }
  return report;
}

FusionReport MergeEmbeddingBags(const std::shared_ptr<torch::jit::Graph>& graph) {
  FusionReport report;
  std::map<torch::jit::Block*, std::vector<Node*>> by_block;
  for (Node* node : AllNodes(graph)) {
    if (!IsKind(node, {"aten::embedding_bag"})) continue;
    auto weight = ConstantTensor(node->input(0));
    auto mode = ConstantNumber(node->input(4));
    auto blocked = [&](const std::string& reason) {
      report.not_fused.push_back({"merged_embedding_bag", Where(node->output(0)), reason});
    };
    if (!weight || weight->dim() != 2 || !mode || *mode != 0) {
      blocked("not a sum over a constant table");
      continue;
    }
    auto include_last = ConstantNumber(node->input(7));
    if (!IsNone(node->input(6)) || !include_last || *include_last != 0 ||
        (node->inputs().size() > 8 && !IsNone(node->input(8)))) {
      blocked("per-sample weights, include_last_offset or padding_idx");
      continue;
    }
    bool only_first_output = true;
    for (size_t i = 1; i < node->outputs().size(); ++i)
      only_first_output &= node->output(i)->uses().empty();
    if (!only_first_output) {
      blocked("its offset2bag or bag-size outputs are used");
      continue;
    }
    by_block[node->owningBlock()].push_back(node);
  }
  for (auto& [block, bags] : by_block) {
    if (bags.size() < 2) continue;
    Node* last = bags.back();
    if (!NoWritesBetween(bags.front(), last)) {
      report.not_fused.push_back({"merged_embedding_bag", Where(last->output(0)),
                                  "a node between the bags may write to an index or offset"});
      continue;
    }
    bool uses_after_last = true;
    for (Node* bag : bags)
      for (const auto& use : bag->output(0)->uses()) uses_after_last &= use.user->isAfter(last);
    if (!uses_after_last) {
      report.not_fused.push_back({"merged_embedding_bag", Where(last->output(0)),
                                  "a bag's result is used before the last bag is computed"});
      continue;
    }
    torch::jit::WithInsertPoint guard(last->next());
    std::vector<Value*> weights, indices, offsets;
    for (Node* bag : bags) {
      weights.push_back(bag->input(0));
      indices.push_back(bag->input(1));
      offsets.push_back(bag->input(2));
    }
    auto list = [&](const std::vector<Value*>& values) {
      return graph->insertNode(graph->createList(c10::TensorType::get(), values))->output();
    };
    Value* merged = graph->insert(c10::Symbol::fromQualString("ipt::merged_embedding_bag_sum"),
                                  {list(weights), list(indices), list(offsets)});
    Node* unpack = graph->insertNode(graph->createListUnpack(merged, bags.size()));
    for (size_t i = 0; i < bags.size(); ++i) {
      bags[i]->output(0)->replaceAllUsesWith(unpack->output(i));
      bags[i]->destroy();
    }
    ++report.fused["merged_embedding_bag"];
  }
  return report;
}

}  // namespace ipt::core::passes
