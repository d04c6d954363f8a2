// Small helpers the passes share for reading and rewriting a frozen graph.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <optional>
#include <string>
#include <vector>

namespace ipt::core::passes {

// Every node of the graph, nested blocks included, in program order; collected up front so a
// pass can rewrite while it walks.
std::vector<torch::jit::Node*> AllNodes(const std::shared_ptr<torch::jit::Graph>& graph);

// A prim::Constant holding `object` (a kernel context: a custom class, which
// Graph::insertConstant does not take), inserted at the graph's insert point.
torch::jit::Value* InsertObjectConstant(torch::jit::Graph& graph, const c10::IValue& object);

// `kind`(inputs) with one output typed `type`, inserted at the graph's insert point, and given
// every use of `replaced`: the last step of most rewrites. Returns the new output.
torch::jit::Value* InsertInPlaceOf(torch::jit::Value* replaced, const char* kind,
                                   at::ArrayRef<torch::jit::Value*> inputs,
                                   const c10::TypePtr& type = c10::TensorType::get());

// The constant tensor behind `value`, if it is one; nullopt for None and for a non-constant.
std::optional<at::Tensor> ConstantTensor(torch::jit::Value* value);
// For optional tensor arguments (a batch norm's weight): an undefined tensor for None, the
// constant tensor otherwise, nullopt when the value is not a constant.
std::optional<at::Tensor> OptionalConstantTensor(torch::jit::Value* value);
bool IsNone(torch::jit::Value* value);
// An aten::max_pool2d whose arguments besides the input are constants, so that an ipt op can
// take them as they are.
bool IsConstantMaxPool(torch::jit::Node* node);
std::optional<double> ConstantNumber(torch::jit::Value* value);

// "%x.3", for reports.
std::string Where(torch::jit::Value* value);

// The one node that uses `value`, or nullptr when it has none or several.
torch::jit::Node* OnlyUser(torch::jit::Value* value);

bool IsKind(const torch::jit::Node* node, std::initializer_list<const char*> qualified_names);

// Whether moving a read of values from `first` to `last` (or the other way) is safe: both in
// one block, `first` not after `last`, and no node strictly between them that could write to
// any tensor (a mutable schema, an attribute store, or a nested block). Conservative: a fused
// op reads its inputs where the last node it replaces ran, not where the first did.
bool NoWritesBetween(torch::jit::Node* first, torch::jit::Node* last);

}  // namespace ipt::core::passes
