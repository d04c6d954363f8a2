#include "core/passes/lower_onednn.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/passes/graph_util.h"
#include "kernels/conv.h"
#include "kernels/linear.h"
#include "kernels/qconv.h"

namespace ipt::core::passes {
namespace {

using kernels::Eltwise;
using kernels::EltwiseOp;
using kernels::PostOps;
using torch::jit::Node;
using torch::jit::Value;

// The nodes after an anchor (conv or linear) that fold into its post-ops.
struct PostOpMatch {
  PostOps post_ops;
  Value* accumulator = nullptr;
  std::vector<Node*> consumed;  // in program order; the last one defines `result`
  Value* result = nullptr;
};

std::string PatternName(const std::string& anchor, const PostOps& post_ops) {
  std::string name = anchor;
  if (post_ops.sum) name += "+add";
  if (post_ops.eltwise) {
    std::string eltwise = kernels::ToString(*post_ops.eltwise);
    name += "+" + eltwise.substr(0, eltwise.find('('));
  }
  return name;
}

// `x * sigmoid(x)` (either operand order) starting from x's uses.
bool MatchSigmoidMul(Value* x, PostOpMatch& match) {
  if (x->uses().size() != 2) return false;
  Node* sigmoid = nullptr;
  Node* mul = nullptr;
  for (const auto& use : x->uses()) {
    if (IsKind(use.user, {"aten::sigmoid"})) sigmoid = use.user;
    if (IsKind(use.user, {"aten::mul"})) mul = use.user;
  }
  if (!sigmoid || !mul || OnlyUser(sigmoid->output()) != mul) return false;
  Value* a = mul->input(0);
  Value* b = mul->input(1);
  if (!((a == x && b == sigmoid->output()) || (b == x && a == sigmoid->output()))) return false;
  match.post_ops.eltwise = EltwiseOp{Eltwise::kSilu, 0, 0};
  match.consumed.push_back(sigmoid);
  match.consumed.push_back(mul);
  match.result = mul->output();
  return true;
}

// The elementwise op `user` applies to `x`, if the kernels have it as a post-op. `why_not`
// explains an elementwise op that cannot be fused.
std::optional<EltwiseOp> AsEltwise(Node* user, Value* x, std::string& why_not) {
  if (user->inputs().empty() || user->input(0) != x) return std::nullopt;
  auto number = [&](size_t i) -> std::optional<float> {
    if (i >= user->inputs().size()) return std::nullopt;
    auto n = ConstantNumber(user->input(i));
    if (!n) why_not = fmt::format("{} has a non-constant argument", user->kind().toQualString());
    return n ? std::optional<float>(static_cast<float>(*n)) : std::nullopt;
  };
  if (IsKind(user, {"aten::relu", "aten::relu_"})) return EltwiseOp{Eltwise::kRelu, 0, 0};
  if (IsKind(user, {"aten::tanh", "aten::tanh_"})) return EltwiseOp{Eltwise::kTanh, 0, 0};
  if (IsKind(user, {"aten::sigmoid", "aten::sigmoid_"})) return EltwiseOp{Eltwise::kSigmoid, 0, 0};
  if (IsKind(user, {"aten::silu", "aten::silu_"})) return EltwiseOp{Eltwise::kSilu, 0, 0};
  if (IsKind(user, {"aten::hardswish", "aten::hardswish_"}))
    return EltwiseOp{Eltwise::kHardswish, 0, 0};
  if (IsKind(user, {"aten::leaky_relu", "aten::leaky_relu_"})) {
    auto slope = number(1);
    if (slope) return EltwiseOp{Eltwise::kLeakyRelu, *slope, 0};
    return std::nullopt;
  }
  if (IsKind(user, {"aten::gelu", "aten::gelu_"})) {
    auto approximate = torch::jit::toIValue(user->input(1));
    if (!approximate || !approximate->isString()) {
      why_not = "gelu's approximate is not a constant";
      return std::nullopt;
    }
    if (approximate->toStringRef() == "none") return EltwiseOp{Eltwise::kGeluErf, 0, 0};
    if (approximate->toStringRef() == "tanh") return EltwiseOp{Eltwise::kGeluTanh, 0, 0};
    why_not = "unknown gelu approximation '" + approximate->toStringRef() + "'";
    return std::nullopt;
  }
  if (IsKind(user, {"aten::hardtanh", "aten::hardtanh_"})) {
    auto low = number(1), high = number(2);
    if (low && high) return EltwiseOp{Eltwise::kHardtanh, *low, *high};
    return std::nullopt;
  }
  if (IsKind(user, {"aten::clamp", "aten::clamp_"})) {
    // Only clamp(Scalar?, Scalar?); the Tensor overload has tensor bounds.
    const bool low_none = IsNone(user->input(1)), high_none = IsNone(user->input(2));
    auto low = low_none ? std::nullopt : ConstantNumber(user->input(1));
    auto high = high_none ? std::nullopt : ConstantNumber(user->input(2));
    if (low && high) return EltwiseOp{Eltwise::kHardtanh, float(*low), float(*high)};
    if (low && high_none && *low == 0) return EltwiseOp{Eltwise::kRelu, 0, 0};
    why_not = "clamp without two constant bounds";
    return std::nullopt;
  }
  if (IsKind(user, {"aten::elu", "aten::elu_"})) {
    auto alpha = number(1), scale = number(2), input_scale = number(3);
    if (alpha && scale && input_scale && *scale == 1 && *input_scale == 1)
      return EltwiseOp{Eltwise::kElu, *alpha, 0};
    why_not = "elu with a scale other than 1";
    return std::nullopt;
  }
  return std::nullopt;
}

PostOpMatch MatchPostOps(Node* anchor, const std::string& anchor_name, bool allow_add,
                         bool allow_eltwise, FusionReport& report) {
  PostOpMatch match;
  match.result = anchor->output();
  auto blocked = [&](const std::string& pattern, const std::string& reason) {
    report.not_fused.push_back({pattern, Where(match.result), reason});
  };
  if (allow_add) {
    Value* x = match.result;
    Node* user = OnlyUser(x);
    bool is_add = user && IsKind(user, {"aten::add", "aten::add_"}) && user->inputs().size() == 3;
    if (is_add) {
      Value* other = user->input(0) == x ? user->input(1) : user->input(0);
      auto alpha = ConstantNumber(user->input(2));
      if (other == x || !other->type()->isSubtypeOf(*c10::TensorType::get())) {
        // x + x or x + scalar: not an accumulation.
      } else if (IsKind(user, {"aten::add_"}) && user->input(0) != x) {
        blocked(anchor_name + "+add", "the in-place add writes into the other operand");
      } else if (!alpha || *alpha != 1) {
        blocked(anchor_name + "+add", "add with alpha other than 1");
      } else {
        match.post_ops.sum = true;
        match.accumulator = other;
        match.consumed.push_back(user);
        match.result = user->output();
      }
    } else if (x->uses().size() > 1) {
      for (const auto& use : x->uses())
        if (IsKind(use.user, {"aten::add", "aten::add_"}))
          blocked(anchor_name + "+add",
                  fmt::format("its output has {} uses, not only the add", x->uses().size()));
    }
  }
  if (allow_eltwise) {
    Value* x = match.result;
    if (MatchSigmoidMul(x, match)) return match;
    Node* user = OnlyUser(x);
    std::string why_not;
    if (user) {
      if (auto eltwise = AsEltwise(user, x, why_not)) {
        match.post_ops.eltwise = *eltwise;
        match.consumed.push_back(user);
        match.result = user->output();
      }
    } else {
      for (const auto& use : x->uses())
        if (AsEltwise(use.user, x, why_not))
          why_not = fmt::format("its output has {} uses, not only the {}", x->uses().size(),
                                use.user->kind().toUnqualString());
    }
    if (!why_not.empty()) blocked(PatternName(anchor_name, match.post_ops) + "+eltwise", why_not);
  }
  return match;
}

// The fused op reads the anchor's input where the last matched node ran: when something in
// between may write to a tensor, or the match spans blocks, fuse nothing and lower the anchor
// alone.
void KeepReadsInPlace(Node* anchor, const std::string& anchor_name, PostOpMatch& match,
                      FusionReport& report) {
  if (match.consumed.empty() || NoWritesBetween(anchor, match.consumed.back())) return;
  report.not_fused.push_back({PatternName(anchor_name, match.post_ops), Where(anchor->output()),
                              "a node between may write to an input (or the match spans blocks)"});
  match = PostOpMatch{};
  match.result = anchor->output();
}

// Replaces the anchor and the matched nodes by one `op(input, [accumulator,] context)`.
void Replace(Node* anchor, const PostOpMatch& match, const char* op, const char* sum_op,
             c10::IValue context) {
  auto graph = anchor->owningGraph();
  Node* last = match.consumed.empty() ? anchor : match.consumed.back();
  torch::jit::WithInsertPoint guard(last);
  Value* constant = InsertObjectConstant(*graph, context);
  std::vector<Value*> inputs{anchor->input(0)};
  if (match.accumulator) inputs.push_back(match.accumulator);
  inputs.push_back(constant);
  InsertInPlaceOf(match.result, match.accumulator ? sum_op : op, inputs);
  for (auto it = match.consumed.rbegin(); it != match.consumed.rend(); ++it) (*it)->destroy();
  anchor->destroy();
}

// Whether the conv was lowered.
bool LowerConv(Node* conv, const LoweringOptions& options, FusionReport& report) {
  auto weight = ConstantTensor(conv->input(1));
  if (!weight) {
    report.not_fused.push_back(
        {"conv", Where(conv->output()), "the weight is not a constant (is the graph frozen?)"});
    return false;
  }
  std::optional<at::Tensor> bias;
  if (!IsNone(conv->input(2))) {
    bias = ConstantTensor(conv->input(2));
    if (!bias) {
      report.not_fused.push_back({"conv", Where(conv->output()), "the bias is not a constant"});
      return false;
    }
  }
  auto list = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    auto ivalue = torch::jit::toIValue(conv->input(i));
    if (!ivalue || !ivalue->isIntList()) return std::nullopt;
    return ivalue->toIntVector();
  };
  auto stride = list(3), padding = list(4), dilation = list(5);
  auto groups = torch::jit::toIValue(conv->input(6));
  if (!stride || !padding || !dilation || !groups || !groups->isInt() || weight->dim() != 4) {
    report.not_fused.push_back(
        {"conv", Where(conv->output()),
         "stride, padding (a string padding is not lowered), dilation or groups is not a "
         "constant, or the weight is not 4-D"});
    return false;
  }
  PostOpMatch match = MatchPostOps(conv, "conv", options.conv_add, options.conv_eltwise, report);
  KeepReadsInPlace(conv, "conv", match, report);
  auto context = c10::make_intrusive<kernels::ConvContext>(
      *weight, bias.value_or(at::Tensor()),
      kernels::ConvParams{*stride, *padding, *dilation, groups->toInt()}, match.post_ops,
      options.channels_last);
  ++report.fused[PatternName("conv", match.post_ops)];
  Replace(conv, match, "ipt::conv2d", "ipt::conv2d_sum", c10::IValue(std::move(context)));
  return true;
}

void LowerLinear(Node* linear, const LoweringOptions& options, FusionReport& report) {
  auto weight = ConstantTensor(linear->input(1));
  if (!weight || weight->dim() != 2) {
    report.not_fused.push_back({"linear", Where(linear->output()),
                                "the weight is not a constant 2-D tensor (is the graph frozen?)"});
    return;
  }
  std::optional<at::Tensor> bias;
  if (!IsNone(linear->input(2))) {
    bias = ConstantTensor(linear->input(2));
    if (!bias) {
      report.not_fused.push_back({"linear", Where(linear->output()), "the bias is not a constant"});
      return;
    }
  }
  PostOpMatch match =
      MatchPostOps(linear, "linear", options.linear_add, options.linear_eltwise, report);
  KeepReadsInPlace(linear, "linear", match, report);
  auto context = c10::make_intrusive<kernels::LinearContext>(*weight, bias.value_or(at::Tensor()),
                                                             match.post_ops);
  ++report.fused[PatternName("linear", match.post_ops)];
  Replace(linear, match, "ipt::linear", "ipt::linear_sum", c10::IValue(std::move(context)));
}

// Whether an int8 op hands its result on in uint8: a chained convolution (kernels/qconv.h) or a
// max pool between chained ones.
bool WritesUint8(const Node* node) {
  const std::string kind = node->kind().toQualString();
  if (kind == "ipt::qmax_pool2d") return true;
  if (kind.rfind("ipt::qconv2d", 0) != 0) return false;
  return torch::jit::toIValue(node->inputs().back())
      ->toCustomClass<kernels::QuantConvContext>()
      ->output_quant()
      .has_value();
}

}  // namespace

void FusionReport::Merge(const FusionReport& other) {
  for (const auto& [pattern, count] : other.fused) fused[pattern] += count;
  not_fused.insert(not_fused.end(), other.not_fused.begin(), other.not_fused.end());
}

FusionReport LowerToOneDnn(const std::shared_ptr<torch::jit::Graph>& graph,
                           const LoweringOptions& options) {
  FusionReport report;
  std::vector<Node*> anchors;
  for (Node* node : AllNodes(graph)) {
    if ((options.conv && IsKind(node, {"aten::conv2d"})) ||
        (options.linear && IsKind(node, {"aten::linear"})))
      anchors.push_back(node);
  }
  // Anchors are only ever destroyed by their own replacement, so the list stays valid.
  bool channels_last_convs = false;
  for (Node* anchor : anchors) {
    if (IsKind(anchor, {"aten::conv2d"})) {
      channels_last_convs |= LowerConv(anchor, options, report) && options.channels_last;
    } else {
      LowerLinear(anchor, options, report);
    }
  }
  // aten::view cannot flatten a channels-last tensor whose H and W exceed 1 (LeNet's
  // x.view(-1, 16 * 5 * 5)): give every view a contiguous input, which costs nothing when it
  // already is.
  if (channels_last_convs) {
    for (Node* node : AllNodes(graph)) {
      if (!IsKind(node, {"aten::view"})) continue;
      torch::jit::WithInsertPoint guard(node);
      Value* contiguous = graph->insert(c10::aten::contiguous, {node->input(0)});
      node->replaceInput(0, contiguous);
    }
  }
  return report;
}

int64_t AccumulateInPlace(const std::shared_ptr<torch::jit::Graph>& graph) {
  const std::map<std::string, std::string> in_place_of = {
      {"ipt::conv2d_sum", "ipt::conv2d_sum_"}, {"ipt::qconv2d_sum", "ipt::qconv2d_sum_"}};
  using Kinds = std::vector<std::string>;
  auto one_of = [](const Node* node, const Kinds& kinds) {
    return std::find(kinds.begin(), kinds.end(), node->kind().toQualString()) != kinds.end();
  };
  const Kinds fresh_makers = {
      "ipt::conv2d",     "ipt::conv2d_sum",  "ipt::conv2d_sum_",  "ipt::to_blocked",
      "ipt::qconv2d",    "ipt::qconv2d_sum", "ipt::qconv2d_sum_", "ipt::blocked_max_pool2d",
      "ipt::qmax_pool2d"};
  Kinds readers = fresh_makers;
  readers.push_back("ipt::from_blocked");
  std::vector<Node*> sums;
  for (Node* node : graph->block()->nodes())
    if (in_place_of.count(node->kind().toQualString()) > 0) sums.push_back(node);
  int64_t turned = 0;
  for (Node* node : sums) {
    Value* accumulator = node->input(1);
    Node* producer = accumulator->node();
    const bool fresh =
        producer->owningBlock() == node->owningBlock() && one_of(producer, fresh_makers);
    if (!fresh || node->input(0) == accumulator || WritesUint8(producer) != WritesUint8(node))
      continue;
    // Earlier readers must be our ops, whose outputs never alias their inputs: a view taken
    // earlier and read later would see the add.
    bool dies_here = true;
    for (const torch::jit::Use& use : accumulator->uses()) {
      if (use.user == node) continue;
      dies_here &= use.user->owningBlock() == node->owningBlock() && use.user->isBefore(node) &&
                   one_of(use.user, readers);
    }
    if (!dies_here) continue;
    Node* in_place =
        graph->create(c10::Symbol::fromQualString(in_place_of.at(node->kind().toQualString())),
                      node->inputs(), 1);
    in_place->output()->setType(node->output()->type());
    in_place->insertBefore(node);
    node->output()->replaceAllUsesWith(in_place->output());
    node->destroy();
    ++turned;
  }
  return turned;
}

}  // namespace ipt::core::passes
