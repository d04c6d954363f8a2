#include "core/optimize.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/frozen_conv_add_relu_fusion.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/graph_rewrite_helper.h>
#include <torch/csrc/jit/passes/remove_dropout.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "base/error.h"
#include "core/passes/blocked_layout.h"
#include "core/passes/fold_linear.h"
#include "core/passes/fuse_concat.h"
#include "core/passes/fuse_dlrm.h"
#include "core/passes/fuse_transformer.h"
#include "core/passes/graph_util.h"
#include "core/passes/lower_matmul.h"
#include "core/passes/lower_onednn.h"
#include "core/quantize.h"
#include "kernels/blocked.h"
#include "recipes/qparams_json.h"

namespace ipt::core {
namespace {

using GraphPass = std::function<bool(std::shared_ptr<torch::jit::Graph>&)>;

// The core's own fusions: the transformer ones, then those done while lowering onto oneDNN.
const std::vector<std::string>& CoreFusions() {
  static const std::vector<std::string> kNames = {
      "qkv_merge",      "attention",    "add_layernorm", "interaction",    "merge_embedding_bags",
      "concat_bn_relu", "conv_eltwise", "conv_add",      "linear_eltwise", "linear_add",
      "matmul_add"};
  return kNames;
}

// libtorch's own frozen-graph rewrites, which a recipe may still ask for; they run after the
// lowering, on whatever aten ops it left.
const std::map<std::string, GraphPass>& LibtorchFusionTable() {
  static const std::map<std::string, GraphPass> kTable = {
      {"conv_add_relu",
       [](std::shared_ptr<torch::jit::Graph>& g) {
         auto before = g->toString();
         torch::jit::FuseFrozenConvAddRelu(g);
         return g->toString() != before;
       }},
      {"linear_transpose",
       [](std::shared_ptr<torch::jit::Graph>& g) { return torch::jit::FrozenLinearTranspose(g); }},
  };
  return kTable;
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

torch::jit::IValue CastFloating(const torch::jit::IValue& value, at::ScalarType dtype) {
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    return t.is_floating_point() && t.scalar_type() != dtype ? t.to(dtype) : t;
  }
  if (value.isTuple()) {
    std::vector<torch::jit::IValue> items;
    for (const auto& item : value.toTupleRef().elements())
      items.push_back(CastFloating(item, dtype));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (value.isList()) {
    c10::impl::GenericList list(value.toList().elementType());
    for (const auto& item : value.toList()) list.push_back(CastFloating(item, dtype));
    return list;
  }
  return value;
}

// Module::to(dtype) would cast integer buffers too (BERT's position ids): only floating-point
// parameters and buffers change dtype.
void CastFloatingTensors(torch::jit::Module& module, at::ScalarType dtype) {
  for (torch::jit::Module sub : module.modules()) {
    for (const auto& attribute : sub.named_attributes(/*recurse=*/false)) {
      if (!attribute.value.isTensor()) continue;
      const at::Tensor& tensor = attribute.value.toTensor();
      if (tensor.is_floating_point() && tensor.scalar_type() != dtype)
        sub.setattr(attribute.name, tensor.to(dtype));
    }
  }
}

// The frozen counterpart of CastFloatingTensors: every floating-point tensor constant of the
// graph (the folded weights) in `dtype`.
void CastFloatingConstants(const std::shared_ptr<torch::jit::Graph>& graph, at::ScalarType dtype) {
  std::vector<torch::jit::Node*> constants;
  std::function<void(torch::jit::Block*)> visit = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      if (node->kind() == c10::prim::Constant && node->output()->type()->cast<c10::TensorType>())
        constants.push_back(node);
      for (torch::jit::Block* sub : node->blocks()) visit(sub);
    }
  };
  visit(graph->block());
  for (torch::jit::Node* node : constants) {
    at::Tensor tensor = node->t(c10::attr::value);
    if (!tensor.is_floating_point() || tensor.scalar_type() == dtype) continue;
    torch::jit::WithInsertPoint guard(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(tensor.to(dtype)));
    node->destroy();
  }
}

// Every method's graph as text, to tell whether a pass that does not say changed anything.
std::string GraphsText(torch::jit::Module& module, const std::vector<std::string>& methods) {
  std::string text;
  for (const std::string& method : methods) text += module.get_method(method).graph()->toString();
  return text;
}

// Marks pass `name` as run, changed if it changed any method so far.
void Record(Applied& applied, const std::string& name, bool changed) {
  for (PassResult& pass : applied.passes) {
    if (pass.name == name) {
      pass.changed |= changed;
      return;
    }
  }
  applied.passes.push_back({name, changed});
}

// The methods a caller of the model can reach: forward first, then every other method compiled
// on the top-level module (@torch.jit.export in Python, define() in C++). Freezing keeps only
// forward unless told otherwise; special methods (__getstate__...) are the serializer's.
std::vector<std::string> CallableMethods(const torch::jit::Module& module) {
  if (!module.find_method("forward")) {
    throw Error(ErrorCode::kInvalidArgument, "the model has no forward method to optimise");
  }
  std::vector<std::string> names = {"forward"};
  for (const torch::jit::Method& method : module.get_methods()) {
    const std::string& name = method.name();
    if (name != "forward" && name.rfind("__", 0) != 0) names.push_back(name);
  }
  return names;
}

// Ops with no bf16 kernel in libtorch 1.13's CPU build: each fails on bf16 inputs there
// (checked one by one with Debian's python3-torch 1.13; prod, mish and cdist against this
// libtorch in OptimizeBf16Test), so a bf16 model computes them in fp32.
const std::vector<std::string>& OpsWithoutBf16Kernels() {
  static const std::vector<std::string> kOps = {"aten::embedding_bag",
                                                "aten::avg_pool3d",
                                                "aten::max_pool3d",
                                                "aten::reflection_pad2d",
                                                "aten::replication_pad2d",
                                                "aten::mish",
                                                "aten::grid_sampler",
                                                "aten::prod",
                                                "aten::cdist",
                                                "aten::fft_rfft"};
  return kOps;
}

// Every node of `kinds` in a bf16 graph computed in fp32: its floating-point tensor inputs
// converted on entry (a constant once, here), its tensor results back to bf16. Returns the count
// per kind.
std::map<std::string, int64_t> KeepInFp32(const std::shared_ptr<torch::jit::Graph>& graph,
                                          const std::vector<std::string>& kinds) {
  auto convert = [&](torch::jit::Value* value, at::ScalarType dtype) {
    return graph
        ->insert(c10::Symbol::fromQualString("ipt::floating_to"),
                 {value, static_cast<int64_t>(dtype)})
        ->node();
  };
  std::map<std::string, int64_t> kept;
  for (torch::jit::Node* node : passes::AllNodes(graph)) {
    const std::string kind = node->kind().toQualString();
    if (!Has(kinds, kind)) continue;
    ++kept[kind];
    torch::jit::WithInsertPoint before(node);
    for (size_t i = 0; i < node->inputs().size(); ++i) {
      torch::jit::Value* input = node->input(i);
      if (!input->type()->cast<c10::TensorType>()) continue;
      if (std::optional<at::Tensor> constant = passes::ConstantTensor(input)) {
        if (constant->is_floating_point())
          node->replaceInput(i, graph->insertConstant(constant->to(at::kFloat)));
        continue;
      }
      node->replaceInput(i, convert(input, at::kFloat)->output());
    }
    torch::jit::WithInsertPoint after(node->next());
    for (torch::jit::Value* output : node->outputs()) {
      if (!output->type()->cast<c10::TensorType>()) continue;
      torch::jit::Node* back = convert(output, at::kBFloat16);
      output->replaceAllUsesAfterNodeWith(back, back->output());
    }
  }
  return kept;
}

// bf16 only: the ops without a bf16 kernel and the aten kinds `precision.fallback` names, kept
// in fp32 in every method, each reported as a fallback with its count.
void KeepOpsInFp32(torch::jit::Module& m, const recipes::Precision& precision, Applied& applied) {
  for (const std::string& entry : precision.fallback)
    if (entry.rfind("aten::", 0) != 0)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("precision.fallback: '{}' is not an aten op kind; a bf16 model "
                              "keeps aten ops in fp32 by kind (aten::softmax), op names such as "
                              "linear.3 are int8's",
                              entry));
  std::vector<std::string> kinds = OpsWithoutBf16Kernels();
  kinds.insert(kinds.end(), precision.fallback.begin(), precision.fallback.end());
  std::map<std::string, int64_t> kept;
  for (const std::string& method : applied.methods)
    for (const auto& [kind, count] : KeepInFp32(m.get_method(method).graph(), kinds))
      kept[kind] += count;
  for (const std::string& entry : precision.fallback)
    if (kept.count(entry) == 0)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("precision.fallback: no {} is left in this model's bf16 graph "
                              "(fused ops are listed in applied.op_counts)",
                              entry));
  for (const auto& [kind, count] : kept)
    applied.fallbacks.push_back(
        {fmt::format("{} ({} ops)", kind, count),
         Has(precision.fallback, kind)
             ? "computed in fp32: the recipe's precision.fallback keeps it"
             : "computed in fp32: libtorch 1.13 has no bf16 CPU kernel for it"});
}

// One frozen method's graph through the recipe's graph passes, in their order.
void RunGraphPasses(std::shared_ptr<torch::jit::Graph> graph, const recipes::Optimize& opt,
                    at::ScalarType dtype, bool blocked_layout, bool int8, Applied& applied) {
  torch::jit::removeDropout(graph);
  // A traced model holds aten::_convolution, which neither the folding nor the lowering
  // matches; as aten::conv2d both take it.
  torch::jit::graph_rewrite_helper::replaceConvolutionWithAtenConv(graph);
  if (opt.fold_conv_bn) {
    bool changed = torch::jit::FoldFrozenConvBatchnorm(graph);
    changed |= torch::jit::FoldFrozenConvAddOrSub(graph);
    changed |= torch::jit::FoldFrozenConvMulOrDiv(graph);
    Record(applied, "fold_conv_bn", changed);
  }
  if (opt.fold_linear_bn) {
    bool changed = passes::FoldLinearBatchNorm(graph);
    changed |= passes::FoldLinearArithmetic(graph);
    Record(applied, "fold_linear_bn", changed);
  }
  if (dtype != at::kFloat) CastFloatingConstants(graph, dtype);
  torch::jit::ConstantPropagation(graph);
  // Before the lowering: they match aten ops it would replace (the merged linear is lowered
  // with the rest; the add of an add+layer_norm is not taken as a linear's sum).
  using GraphFusion = passes::FusionReport (*)(const std::shared_ptr<torch::jit::Graph>&);
  const std::pair<const char*, GraphFusion> kGraphFusions[] = {
      {"qkv_merge", passes::MergeSiblingLinears},
      {"attention", passes::FuseAttention},
      {"add_layernorm", passes::FuseAddLayerNorm},
      {"interaction", passes::FuseInteraction},
      {"merge_embedding_bags", passes::MergeEmbeddingBags},
      {"concat_bn_relu", passes::FuseConcatBatchNorm},
  };
  for (const auto& [name, fuse] : kGraphFusions) {
    if (!Has(opt.fusions, name)) continue;
    passes::FusionReport report = fuse(graph);
    Record(applied, name, report.changed());
    applied.fusions.Merge(report);
  }
  if (opt.weight_prepack) {
    passes::LoweringOptions lowering;
    lowering.conv_eltwise = Has(opt.fusions, "conv_eltwise");
    lowering.conv_add = Has(opt.fusions, "conv_add");
    lowering.linear_eltwise = Has(opt.fusions, "linear_eltwise");
    lowering.linear_add = Has(opt.fusions, "linear_add");
    lowering.channels_last = opt.memory_format != recipes::MemoryFormat::kContiguous;
    passes::FusionReport lowered = passes::LowerToOneDnn(graph, lowering);
    // After the attention fusion (which takes attention's matmuls whole) and the linears.
    lowered.Merge(passes::LowerMatmul(graph, Has(opt.fusions, "matmul_add")));
    Record(applied, "weight_prepack", lowered.changed());
    applied.fusions.Merge(lowered);
    if (blocked_layout) {
      passes::BlockedLayoutReport blocked =
          passes::UseBlockedLayout(graph, kernels::PreferredChannelBlock(), lowering.channels_last);
      Record(applied, "blocked_layout", blocked.changed());
    }
  }
  for (const std::string& fusion : opt.fusions) {
    auto pass = LibtorchFusionTable().find(fusion);
    if (pass != LibtorchFusionTable().end()) Record(applied, fusion, pass->second(graph));
  }
}

// Whether the convolutions pass their activations blocked (kernels/blocked.h). `auto` takes it
// where the CPU has no AVX-512: there oneDNN 2.6's direct 3x3 convolutions run faster on
// nChw8c than on NHWC (ResNet-50 bs16: docs/search-space.md); with AVX-512, auto keeps
// channels-last, the layout oneDNN's AVX-512 kernels and IPEX's default are tuned for (not
// measurable on this machine).
bool WantsBlockedLayout(const recipes::Optimize& opt, bool int8, Applied& applied) {
  if (opt.memory_format == recipes::MemoryFormat::kBlocked && int8) {
    applied.fallbacks.push_back(
        {"optimize.memory_format: blocked",
         "the int8 convolutions take channels-last activations; blocked applies to fp32 and bf16"});
    return false;
  }
  if (opt.memory_format == recipes::MemoryFormat::kAuto)
    return !int8 && kernels::PreferredChannelBlock() == 8;
  return opt.memory_format == recipes::MemoryFormat::kBlocked;
}

}  // namespace

at::ScalarType ComputeDtype(recipes::Dtype dtype) {
  switch (dtype) {
    case recipes::Dtype::kFp32:
      return at::kFloat;
    case recipes::Dtype::kBf16:
      return at::kBFloat16;
    case recipes::Dtype::kInt8:
    case recipes::Dtype::kInt8Dynamic:
      // The int8 ops take and give fp32; what is not quantized runs in fp32.
      return at::kFloat;
  }
  throw Error(ErrorCode::kInternal, "unknown precision.dtype");
}

nlohmann::json Applied::ToJson() const {
  nlohmann::json passes_json = nlohmann::json::array();
  for (const PassResult& p : passes)
    passes_json.push_back({{"name", p.name}, {"changed", p.changed}});
  nlohmann::json fallbacks_json = nlohmann::json::array();
  for (const Fallback& f : fallbacks)
    fallbacks_json.push_back({{"what", f.what}, {"reason", f.reason}});
  nlohmann::json not_fused_json = nlohmann::json::array();
  for (const passes::NotFused& n : fusions.not_fused)
    not_fused_json.push_back({{"pattern", n.pattern}, {"where", n.where}, {"reason", n.reason}});
  nlohmann::json out = {{"dtype", dtype},
                        {"methods", methods},
                        {"passes", passes_json},
                        {"fusions", fusions.fused},
                        {"not_fused", not_fused_json},
                        {"op_counts", op_counts},
                        {"fallbacks", fallbacks_json}};
  if (!quantized.empty() || !kept_fp32.empty() || !kept_bf16.empty()) {
    out["quantized"] = quantized;
    out["kept_fp32"] = kept_fp32;
    out["kept_bf16"] = kept_bf16;
  }
  if (!smoothed.empty()) out["smoothed"] = smoothed;
  if (qparams) {
    out["qparams"] = recipes::QParamsToJson(*qparams);
    out["calibration_s"] = calibration_s;
  }
  return out;
}

OptimizedModel::OptimizedModel(torch::jit::Module module, at::ScalarType compute_dtype,
                               Applied applied)
    : module_(std::move(module)), compute_dtype_(compute_dtype), applied_(std::move(applied)) {}

torch::jit::IValue OptimizedModel::Run(const std::vector<torch::jit::IValue>& inputs) {
  return RunMethod("forward", inputs);
}

torch::jit::IValue OptimizedModel::RunMethod(const std::string& method,
                                             const std::vector<torch::jit::IValue>& inputs) {
  if (!module_.find_method(method)) {
    throw Error(ErrorCode::kNotFound,
                fmt::format("the optimised model has no method '{}' (it has: {})", method,
                            fmt::join(applied_.methods, ", ")));
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::jit::IValue> cast;
  cast.reserve(inputs.size());
  for (const auto& input : inputs) cast.push_back(CastFloating(input, compute_dtype_));
  torch::jit::IValue output = module_.get_method(method)(cast);
  return compute_dtype_ == at::kFloat ? output : CastFloating(output, at::kFloat);
}

std::map<std::string, int64_t> CountOps(const std::shared_ptr<torch::jit::Graph>& graph) {
  std::map<std::string, int64_t> counts;
  std::function<void(torch::jit::Block*)> visit = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      std::string kind = node->kind().toQualString();
      if (kind.rfind("prim::Constant", 0) == 0 || kind == "prim::ListConstruct") continue;
      ++counts[kind];
      for (torch::jit::Block* sub : node->blocks()) visit(sub);
    }
  };
  visit(graph->block());
  return counts;
}

std::vector<std::string> KnownFusions() {
  std::vector<std::string> names = CoreFusions();
  for (const auto& [name, pass] : LibtorchFusionTable()) names.push_back(name);
  return names;
}

OptimizedModel Optimize(const torch::jit::Module& module, const recipes::Recipe& recipe,
                        const CalibrationInputs& calibration) {
  const recipes::Optimize& opt = recipe.optimize;
  for (const std::string& fusion : opt.fusions) {
    if (!Has(KnownFusions(), fusion)) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("optimize.fusions: unknown fusion '{}' (this core has: {})", fusion,
                              fmt::join(KnownFusions(), ", ")));
    }
  }
  at::ScalarType dtype = ComputeDtype(recipe.precision.dtype);
  if (!opt.freeze && (!opt.fusions.empty() || opt.optimize_for_inference || opt.fold_conv_bn ||
                      opt.weight_prepack)) {
    throw Error(ErrorCode::kInvalidArgument,
                "optimize.freeze: false, but the passes asked for need a frozen graph");
  }
  const bool int8 = recipe.precision.dtype == recipes::Dtype::kInt8 ||
                    recipe.precision.dtype == recipes::Dtype::kInt8Dynamic;
  if (int8 && !opt.weight_prepack) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("precision.dtype {} needs optimize.weight_prepack: the int8 ops are "
                            "the prepacked oneDNN ones",
                            recipes::ToString(recipe.precision.dtype)));
  }

  Applied applied;
  applied.dtype = recipes::ToString(recipe.precision.dtype);
  torch::jit::Module m = module.clone();
  m.eval();
  applied.methods = CallableMethods(m);
  const std::vector<std::string> other_methods(applied.methods.begin() + 1, applied.methods.end());
  // A frozen graph folds in fp32 and casts its constants afterwards, so batch-norm statistics
  // are not rounded to bf16 before the folding arithmetic; an unfrozen module casts up front.
  if (dtype != at::kFloat && !opt.freeze) CastFloatingTensors(m, dtype);
  if (opt.freeze) {
    // Numerics are folded below under the recipe's control, not by freeze behind its back.
    m = torch::jit::freeze(m, other_methods, /*optimize_numerics=*/false);
    applied.passes.push_back({"freeze", true});
    const bool blocked_layout = WantsBlockedLayout(opt, int8, applied);
    for (const std::string& method : applied.methods)
      RunGraphPasses(m.get_method(method).graph(), opt, dtype, blocked_layout, int8, applied);
    if (dtype == at::kBFloat16) KeepOpsInFp32(m, recipe.precision, applied);
    if (int8) {
      QuantizeResult quantized = Quantize(m, recipe.precision, calibration);
      applied.passes.push_back({"quantize_int8", !quantized.quantized.empty()});
      applied.quantized = std::move(quantized.quantized);
      (recipe.precision.fallback_dtype == recipes::Dtype::kBf16 ? applied.kept_bf16
                                                                : applied.kept_fp32) =
          std::move(quantized.kept);
      applied.smoothed = std::move(quantized.smoothed);
      applied.qparams = std::move(quantized.qparams);
      applied.calibration_s = quantized.calibration_s;
      if (quantized.chained > 0) applied.fusions.fused["int8 chain"] = quantized.chained;
      if (quantized.uint8_max_pools > 0)
        applied.fusions.fused["int8 max pool"] = quantized.uint8_max_pools;
      for (const std::string& method : other_methods) {
        applied.fallbacks.push_back({"method " + method,
                                     "int8 quantizes forward only (calibration observes forward); "
                                     "this method runs its fp32 optimised graph"});
      }
    }
    if (opt.weight_prepack) {
      for (const std::string& method : applied.methods)
        Record(applied, "accumulate_in_place",
               passes::AccumulateInPlace(m.get_method(method).graph()) > 0);
    }
    if (opt.optimize_for_inference) {
      const std::string before = GraphsText(m, applied.methods);
      m = torch::jit::optimize_for_inference(m, other_methods);
      applied.passes.push_back(
          {"optimize_for_inference", GraphsText(m, applied.methods) != before});
    }
  }
  for (const std::string fusion :
       {"conv_eltwise", "conv_add", "linear_eltwise", "linear_add", "matmul_add"}) {
    if (Has(opt.fusions, fusion) && !opt.weight_prepack)
      applied.fallbacks.push_back(
          {"optimize.fusions: " + fusion,
           "fuses into prepacked oneDNN ops, and optimize.weight_prepack is false"});
  }
  if (!opt.weight_prepack && (opt.memory_format == recipes::MemoryFormat::kChannelsLast ||
                              opt.memory_format == recipes::MemoryFormat::kBlocked)) {
    applied.fallbacks.push_back(
        {"optimize.memory_format",
         fmt::format("{} is applied by the oneDNN convolutions, which need weight_prepack",
                     recipes::ToString(opt.memory_format))});
  }
  applied.op_counts = CountOps(m.get_method("forward").graph());
  return OptimizedModel(std::move(m), dtype, std::move(applied));
}

recipes::Recipe StockRecipe() {
  // torch.jit.freeze folds conv+bn by default (optimize_numerics), then optimize_for_inference.
  recipes::Recipe recipe;
  recipe.optimize.weight_prepack = false;
  recipe.optimize.fold_linear_bn = false;
  recipe.optimize.fusions.clear();
  return recipe;
}

void SetThreads(int64_t threads) {
  if (threads < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("threads: {} < 1", threads));
  at::set_num_threads(static_cast<int>(threads));
}

}  // namespace ipt::core
