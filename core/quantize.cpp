#include "core/quantize.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/runtime/interpreter.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_set>

#include "base/error.h"
#include "base/sha256.h"
#include "core/calibration/observer.h"
#include "core/passes/graph_util.h"
#include "kernels/conv.h"
#include "kernels/dlrm.h"
#include "kernels/linear.h"
#include "kernels/observe.h"
#include "kernels/qconv.h"
#include "kernels/qlinear.h"

namespace ipt::core {
namespace {

using passes::AllNodes;
using passes::IsKind;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

struct QuantOp {
  Node* node;
  std::string name;  // "conv2d.3"
  std::string kind;  // "conv2d" or "linear"
};

c10::IValue ContextOf(Node* node) { return *torch::jit::toIValue(node->inputs().back()); }

std::vector<QuantOp> FindOps(const std::shared_ptr<Graph>& graph) {
  std::vector<QuantOp> ops;
  int64_t convs = 0, linears = 0;
  for (Node* node : AllNodes(graph)) {
    if (IsKind(node, {"ipt::conv2d", "ipt::conv2d_sum"})) {
      ops.push_back({node, fmt::format("conv2d.{}", convs++), "conv2d"});
    } else if (IsKind(node, {"ipt::linear", "ipt::linear_sum"})) {
      ops.push_back({node, fmt::format("linear.{}", linears++), "linear"});
    }
  }
  return ops;
}

// What the saved parameters depend on: each op's kind, weight shape and post-ops, in order.
std::string GraphDigest(const std::vector<QuantOp>& ops) {
  std::string text;
  for (const QuantOp& op : ops) {
    c10::IValue context = ContextOf(op.node);
    if (op.kind == "conv2d") {
      auto conv = context.toCustomClass<kernels::ConvContext>();
      text += fmt::format("{} {} {}\n", op.node->kind().toQualString(), conv->weight().sizes(),
                          kernels::ToString(conv->post_ops()));
    } else {
      auto linear = context.toCustomClass<kernels::LinearContext>();
      text += fmt::format("{} {} {}\n", op.node->kind().toQualString(), linear->weight().sizes(),
                          kernels::ToString(linear->post_ops()));
    }
  }
  return Sha256Hex(text).substr(0, 16);
}

calibration::AlgorithmSpec SpecOf(const recipes::Calibration& c) {
  calibration::AlgorithmSpec spec;
  try {
    spec.algorithm = calibration::ParseAlgorithm(c.algorithm);
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("precision.calibration.algorithm: {}", e.what()));
  }
  spec.averaging_constant = c.averaging_constant;
  spec.percentile = c.percentile;
  return spec;
}

struct ChainReport {
  int64_t convolutions = 0;  // that write uint8
  int64_t max_pools = 0;     // that pool uint8
};

bool IsSum(const QuantOp& op) { return op.node->inputs().size() == 3; }

// A value calibration observes: an op's input, or the residual a conv + add adds (so that the
// residual can stay uint8 between blocks).
struct Observed {
  size_t op;         // index into the ops
  bool accumulator;  // the op's input 1 rather than its input 0
};

// Runs `samples` calibration items through a copy of the graph in which each observed value
// first passes an ipt::observe, handing it (fp32, contiguous in some layout) to `sink` with its
// slot. An ipt::Error from `sink` stops the run, rethrown naming the op.
void RunObserved(torch::jit::Module& module, const std::shared_ptr<Graph>& graph,
                 const std::vector<Observed>& observed, const std::vector<QuantOp>& ops,
                 int64_t samples, const CalibrationInputs& inputs,
                 const std::function<void(size_t slot, const at::Tensor&)>& sink) {
  std::shared_ptr<Graph> copy = graph->copy();
  std::vector<QuantOp> copied = FindOps(copy);
  for (size_t slot = 0; slot < observed.size(); ++slot) {
    Node* node = copied[observed[slot].op].node;
    const size_t offset = observed[slot].accumulator ? 1 : 0;
    torch::jit::WithInsertPoint guard(node);
    Value* slot_value = copy->insertConstant(static_cast<int64_t>(slot));
    Node* observe = copy->create(c10::Symbol::fromQualString("ipt::observe"),
                                 {node->input(offset), slot_value}, 1);
    observe->output()->setType(node->input(offset)->type());
    copy->insertNode(observe);
    node->replaceInput(offset, observe->output());
  }
  std::optional<std::string> failure;
  kernels::ScopedObserveSink scoped([&](int64_t slot, const at::Tensor& value) {
    at::Tensor t = value.to(at::kFloat);
    if (!t.is_contiguous() && !t.is_contiguous(at::MemoryFormat::ChannelsLast)) t = t.contiguous();
    try {
      sink(static_cast<size_t>(slot), t);
    } catch (const Error& e) {
      if (!failure)
        failure = fmt::format("the {} of {}: {}",
                              observed[slot].accumulator ? "residual accumulator" : "input",
                              ops[observed[slot].op].name, e.what());
    }
  });
  torch::NoGradGuard no_grad;
  torch::jit::Code code(copy, "calibrate");
  const int64_t batch = std::min<int64_t>(samples, 8);
  for (int64_t done = 0, index = 0; done < samples; ++index) {
    const int64_t items = std::min(batch, samples - done);
    torch::jit::Stack stack{module._ivalue()};
    for (auto& input : inputs(items, index)) stack.push_back(std::move(input));
    torch::jit::InterpreterState(code).run(stack);
    if (failure) throw Error(ErrorCode::kInvalidArgument, fmt::format("calibration: {}", *failure));
    done += items;
  }
}

// The calibrated quantization of each observed value, in order. A slot with smoothing factors
// (defined) is observed divided by them, as its op will quantize it.
std::vector<recipes::ActivationQParams> Calibrate(torch::jit::Module& module,
                                                  const std::shared_ptr<Graph>& graph,
                                                  const std::vector<Observed>& observed,
                                                  const std::vector<at::Tensor>& smoothing,
                                                  const recipes::Calibration& settings,
                                                  const CalibrationInputs& inputs,
                                                  const std::vector<QuantOp>& ops) {
  const calibration::AlgorithmSpec spec = SpecOf(settings);
  std::vector<std::unique_ptr<calibration::Observer>> observers;
  for (size_t slot = 0; slot < observed.size(); ++slot)
    observers.push_back(calibration::MakeObserver(spec));
  RunObserved(module, graph, observed, ops, settings.samples, inputs,
              [&](size_t slot, const at::Tensor& value) {
                at::Tensor t = smoothing[slot].defined()
                                   ? (value.contiguous() / smoothing[slot]).contiguous()
                                   : value;
                observers[slot]->Observe(t.data_ptr<float>(), t.numel());
              });
  const calibration::QuantType type =
      kernels::CpuHasVnni() ? calibration::QuantType::kU8 : calibration::QuantType::kU7;
  std::vector<recipes::ActivationQParams> result;
  for (size_t slot = 0; slot < observed.size(); ++slot) {
    calibration::QParams q = calibration::ChooseQParams(
        observers[slot]->Calibrated(type, /*symmetric=*/false), type, /*symmetric=*/false);
    result.push_back({q.scale, q.zero_point, q.qmax});
  }
  return result;
}

// SmoothQuant's factors for the linear ops at `linears` (indices into `ops`): the largest
// magnitude of each input feature over the calibration set (one pass of its own), then
// s_j = max|x_j|^alpha / max|W[:, j]|^(1 - alpha). A feature that was 0 throughout keeps 1,
// as there is nothing to even out; both maxima are floored at 1e-5 as in the paper's code, so
// that a factor never reaches 0 or infinity.
std::vector<std::vector<double>> SmoothingFactors(torch::jit::Module& module,
                                                  const std::shared_ptr<Graph>& graph,
                                                  const std::vector<size_t>& linears,
                                                  const std::vector<QuantOp>& ops, double alpha,
                                                  int64_t samples,
                                                  const CalibrationInputs& inputs) {
  std::vector<Observed> observed;
  std::vector<at::Tensor> maxima(linears.size());
  for (size_t i : linears) observed.push_back({i, false});
  RunObserved(module, graph, observed, ops, samples, inputs,
              [&](size_t slot, const at::Tensor& value) {
                at::Tensor x = value.contiguous();
                at::Tensor m = x.abs().reshape({-1, x.size(-1)}).amax(0).to(at::kDouble);
                if (!at::isfinite(m).all().item<bool>())
                  throw Error(ErrorCode::kInvalidArgument,
                              "holds inf or NaN; smoothing needs finite values");
                maxima[slot] = maxima[slot].defined() ? at::maximum(maxima[slot], m) : m;
              });
  std::vector<std::vector<double>> factors;
  for (size_t slot = 0; slot < linears.size(); ++slot) {
    auto linear = ContextOf(ops[linears[slot]].node).toCustomClass<kernels::LinearContext>();
    at::Tensor w = linear->weight().to(at::kDouble).abs().amax(0).clamp_min(1e-5);
    const at::Tensor& x = maxima[slot];
    at::Tensor s = (x.clamp_min(1e-5).pow(alpha) / w.pow(1 - alpha)).clamp_min(1e-5);
    // Rounded to the kernel's fp32, so that the saved doubles give it these values exactly.
    at::Tensor f = at::where(x > 0, s, at::ones_like(s)).to(at::kFloat).to(at::kDouble);
    factors.emplace_back(f.data_ptr<double>(), f.data_ptr<double>() + f.numel());
  }
  return factors;
}

// An op's smoothing factors as its kernel takes them (fp32), or undefined when it has none.
at::Tensor SmoothingOf(const recipes::QParams& qparams, const std::string& op) {
  auto it = qparams.smoothing.find(op);
  return it == qparams.smoothing.end() ? at::Tensor()
                                       : at::tensor(it->second, at::kDouble).to(at::kFloat);
}

// Replaces `node` by a node of `kind` on `inputs` (made by `make_inputs` at the node's place,
// so that constants it inserts come before the replacement), which takes over its uses.
void ReplaceNode(Node* node, const char* kind,
                 const std::function<std::vector<Value*>()>& make_inputs) {
  torch::jit::WithInsertPoint guard(node);
  passes::InsertInPlaceOf(node->output(), kind, make_inputs());
  node->destroy();
}

void ReplaceContext(Node* node, const char* kind, const c10::IValue& context) {
  ReplaceNode(node, kind, [&] {
    std::vector<Value*> inputs(node->inputs().begin(), node->inputs().end());
    inputs.back() = passes::InsertObjectConstant(*node->owningGraph(), context);
    return inputs;
  });
}

// accumulator: how a convolution's residual is quantized when it arrives in uint8; smoothing: a
// linear's input smoothing factors, or undefined.
void Rewrite(const QuantOp& op, const std::optional<kernels::ActivationQuant>& input,
             const std::optional<kernels::ActivationQuant>& accumulator,
             const at::Tensor& smoothing) {
  const bool sum = IsSum(op);
  c10::IValue context = ContextOf(op.node);
  if (op.kind == "conv2d") {
    auto conv = context.toCustomClass<kernels::ConvContext>();
    auto q = c10::make_intrusive<kernels::QuantConvContext>(conv->weight(), conv->bias(),
                                                            conv->params(), conv->post_ops(),
                                                            *input, std::nullopt, accumulator);
    ReplaceContext(op.node, sum ? "ipt::qconv2d_sum" : "ipt::qconv2d", c10::IValue(q));
  } else {
    auto linear = context.toCustomClass<kernels::LinearContext>();
    auto q = c10::make_intrusive<kernels::QuantLinearContext>(linear->weight(), linear->bias(),
                                                              linear->post_ops(), input, smoothing);
    ReplaceContext(op.node, sum ? "ipt::qlinear_sum" : "ipt::qlinear", c10::IValue(q));
  }
}

bool SameQuant(const kernels::ActivationQuant& a, const kernels::ActivationQuant& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point && a.qmin == b.qmin && a.qmax == b.qmax;
}

kernels::ActivationQuant ToKernel(const recipes::ActivationQParams& a) {
  return {static_cast<float>(a.scale), static_cast<int32_t>(a.zero_point), 0,
          static_cast<int32_t>(a.qmax)};
}

// The quantization in which every use of `value` wants it, when all of them are int8
// convolutions in `block` reading it (as input or as residual accumulator) with the same
// parameters, looking through max pools with constant arguments (collected in `pools`):
// quantization is monotone, so a max pool of the quantized value is the quantized max pool.
// nullopt otherwise.
std::optional<kernels::ActivationQuant> CommonWantedQuant(Value* value,
                                                          const torch::jit::Block* block,
                                                          std::vector<Node*>& pools) {
  if (value->uses().empty()) return std::nullopt;
  std::optional<kernels::ActivationQuant> common;
  for (const torch::jit::Use& use : value->uses()) {
    Node* user = use.user;
    if (user->owningBlock() != block) return std::nullopt;
    std::optional<kernels::ActivationQuant> wanted;
    if (use.offset == 0 && passes::IsConstantMaxPool(user)) {
      pools.push_back(user);
      wanted = CommonWantedQuant(user->output(), block, pools);
    } else if (use.offset == 0 && IsKind(user, {"ipt::qconv2d", "ipt::qconv2d_sum"})) {
      wanted = ContextOf(user).toCustomClass<kernels::QuantConvContext>()->input_quant();
    } else if (use.offset == 1 && IsKind(user, {"ipt::qconv2d_sum"})) {
      wanted = ContextOf(user).toCustomClass<kernels::QuantConvContext>()->accumulator_quant();
    }
    if (!wanted || (common && !SameQuant(*common, *wanted))) return std::nullopt;
    common = wanted;
  }
  return common;
}

// Chained int8: an int8 convolution whose result goes only into int8 convolutions, as their
// input or as their residual accumulator (not out of the graph), directly or through max pools,
// all with the same parameters, writes it quantized with them (kernels/qconv.h), so it is never
// written in fp32 and quantized again; its max pools become ipt::qmax_pool2d (kernels/pool.h).
// A convolution that adds a residual writes uint8 only when that residual is quantized too (its
// accumulator parameters), so that the sum can happen in place in uint8.
ChainReport ChainInt8Convolutions(const std::shared_ptr<Graph>& graph) {
  ChainReport report;
  std::vector<Node*> uint8_pools;
  for (Node* node : AllNodes(graph)) {
    if (!IsKind(node, {"ipt::qconv2d", "ipt::qconv2d_sum"})) continue;
    auto producer = ContextOf(node).toCustomClass<kernels::QuantConvContext>();
    const bool sum = IsKind(node, {"ipt::qconv2d_sum"});
    if (sum && !producer->accumulator_quant()) continue;
    std::vector<Node*> pools;
    const std::optional<kernels::ActivationQuant> common =
        CommonWantedQuant(node->output(), node->owningBlock(), pools);
    if (!common) continue;
    ReplaceContext(node, sum ? "ipt::qconv2d_sum" : "ipt::qconv2d",
                   c10::IValue(producer->WithOutputQuant(*common)));
    uint8_pools.insert(uint8_pools.end(), pools.begin(), pools.end());
    ++report.convolutions;
  }
  // Replaced after the walk, which holds pointers to these nodes.
  for (Node* pool : uint8_pools) {
    ReplaceNode(pool, "ipt::qmax_pool2d",
                [&] { return std::vector<Value*>(pool->inputs().begin(), pool->inputs().end()); });
  }
  report.max_pools = static_cast<int64_t>(uint8_pools.size());
  return report;
}

// The tensors of a list of constants (a ListConstruct of them, or one constant list).
std::optional<std::vector<at::Tensor>> ConstantTensors(Value* list) {
  if (list->node()->kind() == c10::prim::ListConstruct) {
    std::vector<at::Tensor> tensors;
    for (Value* value : list->node()->inputs()) {
      std::optional<at::Tensor> t = passes::ConstantTensor(value);
      if (!t) return std::nullopt;
      tensors.push_back(*t);
    }
    return tensors;
  }
  std::optional<c10::IValue> constant = torch::jit::toIValue(list);
  if (!constant || !constant->isTensorList()) return std::nullopt;
  return constant->toTensorVector();
}

// A merged embedding bag whose tables are constants becomes ipt::qmerged_embedding_bag_sum on
// s8 tables with a scale per row (kernels/dlrm.h): weights only, nothing to calibrate. Returns
// whether it did; throws ipt::Error(kInvalidArgument) naming the op and table for a table with
// inf or NaN.
bool QuantizeEmbeddingTables(const QuantOp& op) {
  Node* bags = op.node;
  std::optional<std::vector<at::Tensor>> tables = ConstantTensors(bags->input(0));
  if (!tables) return false;
  Graph* graph = bags->owningGraph();
  torch::jit::WithInsertPoint guard(bags);
  std::vector<Value*> data, scales;
  for (size_t t = 0; t < tables->size(); ++t) {
    kernels::QuantizedEmbeddingTable q;
    try {
      q = kernels::QuantizeEmbeddingTable((*tables)[t]);
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("{}, table {}: {}", op.name, t, e.what_without_backtrace()));
    }
    data.push_back(graph->insertConstant(q.data));
    scales.push_back(graph->insertConstant(q.scales));
  }
  auto list = [&](const std::vector<Value*>& values) {
    return graph->insertNode(graph->createList(c10::TensorType::get(), values))->output();
  };
  passes::InsertInPlaceOf(bags->output(), "ipt::qmerged_embedding_bag_sum",
                          {list(data), list(scales), bags->input(1), bags->input(2)},
                          bags->output()->type());
  bags->destroy();
  return true;
}

// The conversions KeepInBf16 inserts, so that RemoveRoundTrips touches only its own.
struct Bf16Conversions {
  std::unordered_set<Node*> to_bf16;  // into a kept op
  std::unordered_set<Node*> to_fp32;  // out of one
};

// `value` converted to `dtype` by an aten::to inserted at the graph's insert point.
Node* Convert(Value* value, at::ScalarType dtype) {
  return value->owningGraph()->insert(c10::aten::to, {value, static_cast<int64_t>(dtype)})->node();
}

// Gives the uses of `node`'s output after it the output converted to fp32 instead.
void ConvertOutputToFp32(Node* node, const std::function<Value*(Value*)>& convert) {
  torch::jit::WithInsertPoint guard(node->next());
  Value* converted = convert(node->output());
  node->output()->replaceAllUsesAfterNodeWith(converted->node(), converted);
}

// A kept op computed in bf16 inside the fp32 graph of an int8 model: its weights (and tables)
// rounded to bf16 once, its inputs converted on entry and its result back to fp32. The bias
// stays fp32, as the bf16 kernels add it in fp32. Embedding bags give a list: each result is
// converted.
void KeepInBf16(const QuantOp& op, Bf16Conversions& conversions) {
  Node* node = op.node;
  Graph* graph = node->owningGraph();
  torch::jit::WithInsertPoint guard(node);
  auto to_fp32 = [&](Value* value) {
    Node* to = Convert(value, at::kFloat);
    conversions.to_fp32.insert(to);
    return to->output();
  };
  if (op.kind == "embedding_bag") {
    const std::optional<std::vector<at::Tensor>> fp32 = ConstantTensors(node->input(0));
    if (!fp32)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("precision.fallback_dtype bf16: the tables of {} are not constants "
                              "of the frozen graph, so they cannot be stored in bf16; keep them "
                              "in fp32",
                              op.name));
    std::vector<Value*> tables;
    for (const at::Tensor& table : *fp32)
      tables.push_back(graph->insertConstant(table.to(at::kBFloat16)));
    node->replaceInput(
        0, graph->insertNode(graph->createList(c10::TensorType::get(), tables))->output());
    ConvertOutputToFp32(node, [&](Value* list) {
      Node* unpack = graph->insertNode(graph->createListUnpack(list, tables.size()));
      std::vector<Value*> sums;
      for (Value* sum : unpack->outputs()) sums.push_back(to_fp32(sum));
      return graph->insertNode(graph->createList(c10::TensorType::get(), sums))->output();
    });
    return;
  }
  // The input, and a residual added inside the op, are read in the weights' dtype.
  const size_t tensors = IsSum(op) ? 2 : 1;
  for (size_t i = 0; i < tensors; ++i) {
    Node* to = Convert(node->input(i), at::kBFloat16);
    conversions.to_bf16.insert(to);
    node->replaceInput(i, to->output());
  }
  c10::IValue context = ContextOf(node);
  c10::IValue bf16;
  if (op.kind == "conv2d") {
    auto conv = context.toCustomClass<kernels::ConvContext>();
    bf16 = c10::IValue(c10::make_intrusive<kernels::ConvContext>(
        conv->weight().to(at::kBFloat16), conv->bias(), conv->params(), conv->post_ops(),
        conv->channels_last(), conv->output_block()));
  } else {
    auto linear = context.toCustomClass<kernels::LinearContext>();
    bf16 = c10::IValue(c10::make_intrusive<kernels::LinearContext>(
        linear->weight().to(at::kBFloat16), linear->bias(), linear->post_ops()));
  }
  node->replaceInput(node->inputs().size() - 1, passes::InsertObjectConstant(*graph, bf16));
  ConvertOutputToFp32(node, to_fp32);
}

// A kept op whose input is another's result converts it to fp32 and straight back: bf16 ->
// fp32 -> bf16 is exact, so it reads the other's bf16 result instead, unless something may
// write to the fp32 copy in between.
void RemoveRoundTrips(Bf16Conversions& conversions) {
  for (Node* to_bf16 : conversions.to_bf16) {
    Node* to_fp32 = to_bf16->input(0)->node();
    // An in-place op on the fp32 copy (x.relu_()) between them must be seen by the reader.
    if (conversions.to_fp32.count(to_fp32) == 0 || !passes::NoWritesBetween(to_fp32, to_bf16))
      continue;
    to_bf16->output()->replaceAllUsesWith(to_fp32->input(0));
    to_bf16->destroy();
    if (!to_fp32->hasUses()) {
      conversions.to_fp32.erase(to_fp32);
      to_fp32->destroy();
    }
  }
  conversions.to_bf16.clear();
}

}  // namespace

QuantizeResult Quantize(torch::jit::Module& module, const recipes::Precision& precision,
                        const CalibrationInputs& calibration) {
  const bool dynamic = precision.dtype == recipes::Dtype::kInt8Dynamic;
  std::shared_ptr<Graph> graph = module.get_method("forward").graph();
  std::vector<QuantOp> ops = FindOps(graph);
  QuantizeResult result;

  // DLRM's merged embedding bags: not in `ops`, whose digest the saved parameters carry.
  std::vector<QuantOp> bags;
  for (Node* node : AllNodes(graph))
    if (IsKind(node, {"ipt::merged_embedding_bag_sum"}))
      bags.push_back({node, fmt::format("embedding_bag.{}", bags.size()), "embedding_bag"});

  std::vector<std::string> names;
  for (const QuantOp& op : ops) names.push_back(op.name);
  for (const QuantOp& op : bags) names.push_back(op.name);
  for (const std::string& entry : precision.fallback) {
    bool matches = entry == "conv2d" || entry == "linear" || entry == "embedding_bag" ||
                   std::find(names.begin(), names.end(), entry) != names.end();
    if (!matches)
      throw Error(
          ErrorCode::kInvalidArgument,
          fmt::format("precision.fallback: '{}' is not an op of this model (its int8 ops "
                      "are {}; a kind, conv2d, linear or embedding_bag, names them all)",
                      entry, names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  auto kept = [&](const QuantOp& op) {
    return std::find_if(precision.fallback.begin(), precision.fallback.end(),
                        [&](const std::string& e) { return e == op.name || e == op.kind; }) !=
           precision.fallback.end();
  };
  std::vector<QuantOp> kept_ops;
  for (const QuantOp& op : bags) {
    if (kept(op)) {
      kept_ops.push_back(op);
    } else if (QuantizeEmbeddingTables(op)) {
      result.quantized.push_back(op.name);
    }
  }
  std::vector<size_t> chosen;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (dynamic && ops[i].kind != "linear") continue;
    if (kept(ops[i])) {
      kept_ops.push_back(ops[i]);
    } else {
      chosen.push_back(i);
    }
  }
  for (const QuantOp& op : kept_ops) result.kept.push_back(op.name);
  // After calibration, which observes the fp32 graph whatever is kept.
  auto keep_in_bf16 = [&] {
    if (precision.fallback_dtype != recipes::Dtype::kBf16 || kept_ops.empty()) return;
    Bf16Conversions conversions;
    for (const QuantOp& op : kept_ops) KeepInBf16(op, conversions);
    RemoveRoundTrips(conversions);
  };

  if (dynamic) {
    for (size_t i : chosen) {
      Rewrite(ops[i], std::nullopt, std::nullopt, at::Tensor());
      result.quantized.push_back(ops[i].name);
    }
    keep_in_bf16();
    torch::jit::EliminateDeadCode(graph);
    return result;
  }

  recipes::QParams qparams;
  qparams.graph = GraphDigest(ops);
  const std::optional<recipes::SmoothQuant>& smooth = precision.smooth_quant;
  std::vector<size_t> linears;  // the chosen ops that smoothing applies to
  if (smooth)
    for (size_t i : chosen)
      if (ops[i].kind == "linear") linears.push_back(i);
  if (precision.qparams) {
    const recipes::QParams& saved = *precision.qparams;
    if (saved.graph != qparams.graph)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("precision.qparams: calibrated for another graph (digest {}; this "
                              "model with this recipe's passes gives {}): remove qparams to "
                              "recalibrate, or use the model they were made for",
                              saved.graph, qparams.graph));
    for (size_t i : chosen) {
      auto it = saved.inputs.find(ops[i].name);
      if (it == saved.inputs.end())
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("precision.qparams.inputs: no parameters for {} (was it in the "
                                "fallback list when they were calibrated?)",
                                ops[i].name));
      qparams.inputs[ops[i].name] = it->second;
      // A recipe saved before residuals were calibrated has none: those adds stay fp32.
      if (auto acc = saved.accumulators.find(ops[i].name); acc != saved.accumulators.end())
        qparams.accumulators[ops[i].name] = acc->second;
    }
    // The saved input scales quantize smoothed inputs or plain ones, so the factors must come
    // with exactly the ops the recipe smooths.
    if (!smooth && !saved.smoothing.empty())
      throw Error(ErrorCode::kInvalidArgument,
                  "precision.qparams.smoothing: these parameters were calibrated with "
                  "precision.smooth_quant, which this recipe does not set");
    for (size_t i : linears) {
      const std::string& name = ops[i].name;
      auto it = saved.smoothing.find(name);
      if (it == saved.smoothing.end())
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("precision.qparams.smoothing: no factors for {} (were these "
                                "parameters calibrated without precision.smooth_quant?)",
                                name));
      const int64_t features =
          ContextOf(ops[i].node).toCustomClass<kernels::LinearContext>()->weight().size(1);
      if (static_cast<int64_t>(it->second.size()) != features)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("precision.qparams.smoothing: {} has {} factors for {} input "
                                "features",
                                name, it->second.size(), features));
      qparams.smoothing[name] = it->second;
    }
  } else if (!chosen.empty()) {
    if (!calibration)
      throw Error(ErrorCode::kInvalidArgument,
                  "precision.dtype int8 needs calibration data or saved precision.qparams");
    const auto start = std::chrono::steady_clock::now();
    const recipes::Calibration settings = precision.calibration.value_or(recipes::Calibration{});
    if (!linears.empty()) {
      std::vector<std::vector<double>> factors = SmoothingFactors(
          module, graph, linears, ops, smooth->alpha, settings.samples, calibration);
      for (size_t k = 0; k < linears.size(); ++k)
        qparams.smoothing[ops[linears[k]].name] = std::move(factors[k]);
    }
    std::vector<Observed> observed;
    std::vector<at::Tensor> observed_smoothing;
    for (size_t i : chosen) {
      observed.push_back({i, false});
      observed_smoothing.push_back(SmoothingOf(qparams, ops[i].name));
      if (ops[i].kind == "conv2d" && IsSum(ops[i])) {
        observed.push_back({i, true});
        observed_smoothing.emplace_back();
      }
    }
    std::vector<recipes::ActivationQParams> calibrated =
        Calibrate(module, graph, observed, observed_smoothing, settings, calibration, ops);
    for (size_t slot = 0; slot < observed.size(); ++slot) {
      const std::string& name = ops[observed[slot].op].name;
      (observed[slot].accumulator ? qparams.accumulators : qparams.inputs)[name] = calibrated[slot];
    }
    result.calibration_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  for (size_t i : chosen) {
    std::optional<kernels::ActivationQuant> accumulator;
    if (auto acc = qparams.accumulators.find(ops[i].name); acc != qparams.accumulators.end())
      accumulator = ToKernel(acc->second);
    const at::Tensor smoothing = SmoothingOf(qparams, ops[i].name);
    Rewrite(ops[i], ToKernel(qparams.inputs.at(ops[i].name)), accumulator, smoothing);
    result.quantized.push_back(ops[i].name);
    if (smoothing.defined()) result.smoothed.push_back(ops[i].name);
  }
  keep_in_bf16();
  const ChainReport chain = ChainInt8Convolutions(graph);
  // The fp32 weights and tables the rewrites replaced, so that neither memory nor a saved model
  // keeps them.
  torch::jit::EliminateDeadCode(graph);
  result.chained = chain.convolutions;
  result.uint8_max_pools = chain.max_pools;
  result.qparams = std::move(qparams);
  return result;
}

}  // namespace ipt::core
