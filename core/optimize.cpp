#include "core/optimize.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/passes/frozen_conv_add_relu_fusion.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/passes/remove_dropout.h>

#include <functional>
#include <map>

#include "base/error.h"

namespace ipt::core {
namespace {

using GraphPass = std::function<bool(std::shared_ptr<torch::jit::Graph>&)>;

// The fusions a recipe can name. libtorch's own frozen-graph passes for now; the core's oneDNN
// fusions join this table as they land.
const std::map<std::string, GraphPass>& FusionTable() {
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

at::ScalarType ComputeDtype(recipes::Dtype dtype) {
  switch (dtype) {
    case recipes::Dtype::kFp32:
      return at::kFloat;
    case recipes::Dtype::kBf16:
      return at::kBFloat16;
    case recipes::Dtype::kInt8:
    case recipes::Dtype::kInt8Dynamic:
      break;
  }
  throw Error(ErrorCode::kUnsupported,
              fmt::format("precision.dtype: {} is not supported by this core yet",
                          recipes::ToString(dtype)));
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

}  // namespace

nlohmann::json Applied::ToJson() const {
  nlohmann::json passes_json = nlohmann::json::array();
  for (const PassResult& p : passes)
    passes_json.push_back({{"name", p.name}, {"changed", p.changed}});
  nlohmann::json fallbacks_json = nlohmann::json::array();
  for (const Fallback& f : fallbacks)
    fallbacks_json.push_back({{"what", f.what}, {"reason", f.reason}});
  return {{"dtype", dtype},
          {"passes", passes_json},
          {"op_counts", op_counts},
          {"fallbacks", fallbacks_json}};
}

OptimizedModel::OptimizedModel(torch::jit::Module module, at::ScalarType compute_dtype,
                               Applied applied)
    : module_(std::move(module)), compute_dtype_(compute_dtype), applied_(std::move(applied)) {}

torch::jit::IValue OptimizedModel::Run(const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  std::vector<torch::jit::IValue> cast;
  cast.reserve(inputs.size());
  for (const auto& input : inputs) cast.push_back(CastFloating(input, compute_dtype_));
  torch::jit::IValue output = module_.forward(cast);
  return compute_dtype_ == at::kFloat ? output : CastFloating(output, at::kFloat);
}

std::vector<std::string> KnownFusions() {
  std::vector<std::string> names;
  for (const auto& [name, pass] : FusionTable()) names.push_back(name);
  return names;
}

OptimizedModel Optimize(const torch::jit::Module& module, const recipes::Recipe& recipe) {
  const recipes::Optimize& opt = recipe.optimize;
  for (const std::string& fusion : opt.fusions) {
    if (FusionTable().count(fusion) == 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("optimize.fusions: unknown fusion '{}' (this core has: {})", fusion,
                              fmt::join(KnownFusions(), ", ")));
    }
  }
  at::ScalarType dtype = ComputeDtype(recipe.precision.dtype);
  if (!opt.freeze && (!opt.fusions.empty() || opt.optimize_for_inference || opt.fold_conv_bn)) {
    throw Error(ErrorCode::kInvalidArgument,
                "optimize.freeze: false, but the passes asked for need a frozen graph");
  }

  Applied applied;
  applied.dtype = recipes::ToString(recipe.precision.dtype);
  torch::jit::Module m = module.clone();
  m.eval();
  if (dtype != at::kFloat) m.to(dtype);
  if (opt.freeze) {
    // Numerics are folded below under the recipe's control, not by freeze behind its back.
    m = torch::jit::freeze(m, c10::nullopt, /*optimize_numerics=*/false);
    applied.passes.push_back({"freeze", true});
    auto graph = m.get_method("forward").graph();
    torch::jit::removeDropout(graph);
    if (opt.fold_conv_bn) {
      bool changed = torch::jit::FoldFrozenConvBatchnorm(graph);
      changed |= torch::jit::FoldFrozenConvAddOrSub(graph);
      changed |= torch::jit::FoldFrozenConvMulOrDiv(graph);
      applied.passes.push_back({"fold_conv_bn", changed});
    }
    for (const std::string& fusion : opt.fusions) {
      applied.passes.push_back({fusion, FusionTable().at(fusion)(graph)});
    }
    if (opt.optimize_for_inference) {
      auto before = graph->toString();
      m = torch::jit::optimize_for_inference(m);
      applied.passes.push_back(
          {"optimize_for_inference", m.get_method("forward").graph()->toString() != before});
    }
  }
  // Accepted but not applied yet: said, never silently dropped.
  if (opt.memory_format != recipes::MemoryFormat::kAuto) {
    applied.fallbacks.push_back(
        {"optimize.memory_format",
         fmt::format("{} is not applied by this core yet", recipes::ToString(opt.memory_format))});
  }
  if (opt.fold_linear_bn && opt.freeze) {
    applied.fallbacks.push_back(
        {"optimize.fold_linear_bn", "linear+batch_norm folding is not in this core yet"});
  }
  applied.op_counts = CountOps(m.get_method("forward").graph());
  return OptimizedModel(std::move(m), dtype, std::move(applied));
}

recipes::Recipe StockRecipe() {
  // torch.jit.freeze folds conv+bn by default (optimize_numerics), then optimize_for_inference.
  recipes::Recipe recipe;
  recipe.optimize.weight_prepack = false;
  recipe.optimize.fold_linear_bn = false;
  return recipe;
}

void SetThreads(int64_t threads) {
  if (threads < 1)
    throw Error(ErrorCode::kInvalidArgument, fmt::format("threads: {} < 1", threads));
  at::set_num_threads(static_cast<int>(threads));
}

}  // namespace ipt::core
