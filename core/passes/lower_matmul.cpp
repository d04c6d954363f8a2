#include "core/passes/lower_matmul.h"

#include <fmt/format.h>

#include <cctype>
#include <set>
#include <string>

#include "core/passes/graph_util.h"

namespace ipt::core::passes {
namespace {

using torch::jit::Node;
using torch::jit::Value;

Value* TransposeLastTwo(torch::jit::Graph& graph, Value* x) {
  return graph.insert(c10::aten::transpose, {x, graph.insertConstant(static_cast<int64_t>(-2)),
                                             graph.insertConstant(static_cast<int64_t>(-1))});
}

// The add that can become the product's addend, or nullptr; a candidate that cannot is
// reported.
Node* FoldableAdd(Node* product, const std::string& pattern, FusionReport& report) {
  Node* add = OnlyUser(product->output());
  if (!add || !IsKind(add, {"aten::add"}) || add->inputs().size() != 3) return nullptr;
  Value* other = add->input(0) == product->output() ? add->input(1) : add->input(0);
  auto refuse = [&](const std::string& reason) {
    report.not_fused.push_back({pattern + "+add", Where(add->output()), reason});
    return nullptr;
  };
  if (!other->type()->isSubtypeOf(*c10::TensorType::get()))
    return refuse("the add adds a number, not a tensor");
  if (other == product->output()) return refuse("the product is added to itself");
  auto alpha = ConstantNumber(add->input(2));
  if (!alpha || *alpha != 1) return refuse("the add has alpha other than 1");
  if (!NoWritesBetween(product, add))
    return refuse("a node between the product and the add may write to its operands");
  return add;
}

}  // namespace

std::optional<EinsumProduct> ParseEinsumProduct(const std::string& equation) {
  std::string eq;
  for (char c : equation) {
    if (c != ' ') eq += c;
  }
  const size_t arrow = eq.find("->");
  if (arrow == std::string::npos) return std::nullopt;
  const std::string lhs = eq.substr(0, arrow);
  const size_t comma = lhs.find(',');
  if (comma == std::string::npos || lhs.find(',', comma + 1) != std::string::npos)
    return std::nullopt;
  std::string terms[3] = {lhs.substr(0, comma), lhs.substr(comma + 1), eq.substr(arrow + 2)};
  const bool ellipsis = terms[0].rfind("...", 0) == 0;
  for (std::string& term : terms) {
    if ((term.rfind("...", 0) == 0) != ellipsis) return std::nullopt;
    if (ellipsis) term = term.substr(3);
    const std::set<char> letters(term.begin(), term.end());
    if (letters.size() != term.size()) return std::nullopt;  // a diagonal or a repeated letter
    for (char c : term) {
      if (!std::isalpha(static_cast<unsigned char>(c))) return std::nullopt;
    }
  }
  const size_t n = terms[0].size();
  if (n < 2 || terms[1].size() != n || terms[2].size() != n) return std::nullopt;
  const std::string batch = terms[0].substr(0, n - 2);
  if (terms[1].substr(0, n - 2) != batch || terms[2].substr(0, n - 2) != batch) return std::nullopt;
  const std::string a = terms[0].substr(n - 2), b = terms[1].substr(n - 2);
  const char rows = terms[2][n - 2], cols = terms[2][n - 1];
  // The contracted letter is a's other one; b holds it and the output's columns.
  char inner;
  if (a[0] == rows) {
    inner = a[1];
  } else if (a[1] == rows) {
    inner = a[0];
  } else {
    return std::nullopt;
  }
  if (inner == cols) return std::nullopt;
  if (!(b[0] == inner && b[1] == cols) && !(b[0] == cols && b[1] == inner)) return std::nullopt;
  return EinsumProduct{a[0] == inner, b[0] == cols};
}

FusionReport LowerMatmul(const std::shared_ptr<torch::jit::Graph>& graph, bool fuse_add) {
  FusionReport report;
  // Collected before any rewrite: the loop destroys adds and lists, never another product.
  std::vector<Node*> products;
  for (Node* node : AllNodes(graph)) {
    if (IsKind(node, {"aten::matmul", "aten::bmm", "aten::einsum"})) products.push_back(node);
  }
  for (Node* node : products) {
    std::string pattern;
    Value* a = nullptr;
    Value* b = nullptr;
    Node* operands = nullptr;  // an einsum's list of operands
    if (!IsKind(node, {"aten::einsum"})) {
      pattern = node->kind().toUnqualString();
      a = node->input(0);
      b = node->input(1);
    } else {
      pattern = "einsum";
      auto equation = torch::jit::toIValue(node->input(0));
      operands = node->input(1)->node();
      if (!equation || !equation->isString() || operands->kind() != c10::prim::ListConstruct ||
          operands->inputs().size() != 2) {
        report.not_fused.push_back(
            {pattern, Where(node->output()), "not two operands under a constant equation"});
        continue;
      }
      auto product = ParseEinsumProduct(equation->toStringRef());
      if (!product) {
        report.not_fused.push_back(
            {pattern, Where(node->output()),
             fmt::format("'{}' is not a (batched) matrix product", equation->toStringRef())});
        continue;
      }
      torch::jit::WithInsertPoint guard(node);
      a = product->transpose_a ? TransposeLastTwo(*graph, operands->input(0)) : operands->input(0);
      b = product->transpose_b ? TransposeLastTwo(*graph, operands->input(1)) : operands->input(1);
    }
    Node* add = fuse_add ? FoldableAdd(node, pattern, report) : nullptr;
    Node* replaced = add ? add : node;
    torch::jit::WithInsertPoint guard(replaced);
    Value* addend = add ? (add->input(0) == node->output() ? add->input(1) : add->input(0))
                        : graph->insertConstant(c10::IValue());
    InsertInPlaceOf(replaced->output(), "ipt::matmul", {a, b, addend});
    if (add) add->destroy();
    node->destroy();
    if (operands && operands->output()->uses().empty()) operands->destroy();
    ++report.fused[add ? pattern + "+add" : pattern];
  }
  return report;
}

}  // namespace ipt::core::passes
