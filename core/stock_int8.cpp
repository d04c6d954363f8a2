#include "core/stock_int8.h"

#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/passes/remove_dropout.h>

#include <limits>
#include <string>

#include "base/error.h"

namespace ipt::core {
namespace {

// PyTorch's MinMaxObserver for activations, per-tensor affine, in TorchScript. InsertObservers
// deep-copies it once per observed value and calls `forward`; InsertQuantDeQuant reads `dtype`
// and `qscheme` and calls `calculate_qparams`. Module::define resolves no `torch.<dtype>` name
// without Python, so dtypes are spelled as their ScalarType numbers by Define below.
constexpr const char* kMinMaxObserverSource = R"(
def forward(self, x_orig: Tensor) -> Tensor:
    if x_orig.numel() == 0:
        return x_orig
    x = x_orig.detach().to(self.min_val.dtype)
    min_val_cur, max_val_cur = torch.aminmax(x)
    self.min_val.copy_(torch.min(min_val_cur, self.min_val))
    self.max_val.copy_(torch.max(max_val_cur, self.max_val))
    return x_orig

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    if bool(self.min_val == float('inf')) and bool(self.max_val == float('-inf')):
        return torch.tensor([1.0]), torch.tensor([0])
    min_val_neg = torch.min(self.min_val, torch.zeros_like(self.min_val))
    max_val_pos = torch.max(self.max_val, torch.zeros_like(self.max_val))
    scale = (max_val_pos - min_val_neg) / float(self.quant_max - self.quant_min)
    scale = torch.max(scale, self.eps)
    zero_point = torch.round(min_val_neg / scale).to({int32}).neg() + self.quant_min
    zero_point = torch.clamp(zero_point, self.quant_min, self.quant_max)
    return scale, zero_point
)";

// PyTorch's PerChannelMinMaxObserver with a symmetric scheme, for weights. amin and amax give
// the same values as its aminmax(y, dim=1), which libtorch 1.13 computes some 30 times slower
// here; every calibration call observes every weight again.
constexpr const char* kPerChannelObserverSource = R"(
def forward(self, x_orig: Tensor) -> Tensor:
    if x_orig.numel() == 0:
        return x_orig
    x = x_orig.detach()
    y = torch.flatten(x.transpose(0, self.ch_axis).to(self.min_val.dtype), 1)
    min_val = torch.amin(y, 1)
    max_val = torch.amax(y, 1)
    if self.min_val.numel() != 0:
        min_val = torch.min(min_val, self.min_val)
        max_val = torch.max(max_val, self.max_val)
    self.min_val.resize_(min_val.size())
    self.max_val.resize_(max_val.size())
    self.min_val.copy_(min_val)
    self.max_val.copy_(max_val)
    return x_orig

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    if self.min_val.numel() == 0:
        return torch.tensor([1.0]), torch.tensor([0])
    min_val_neg = torch.min(self.min_val, torch.zeros_like(self.min_val))
    max_val_pos = torch.max(self.max_val, torch.zeros_like(self.max_val))
    max_val_pos = torch.max(-min_val_neg, max_val_pos)
    scale = max_val_pos / (float(self.quant_max - self.quant_min) / 2)
    scale = torch.max(scale, self.eps)
    zero_point = torch.zeros(scale.size(), dtype={int64})
    return scale, zero_point
)";

// PyTorch's PlaceholderObserver: the passes recognise it by its class name and take the dtype
// of the run-time quantization from `compute_dtype`.
constexpr const char* kPlaceholderObserverSource = R"(
def forward(self, x: Tensor) -> Tensor:
    return x
)";

// Defines `source` on `observer`, with {int32} and {int64} spelled as TorchScript's dtype ints.
void Define(torch::jit::Module& observer, const char* source) {
  observer.define(fmt::format(fmt::runtime(source), fmt::arg("int32", static_cast<int>(at::kInt)),
                              fmt::arg("int64", static_cast<int>(at::kLong))));
}

// The attributes every uniform observer carries. TorchScript stores dtypes and qschemes as ints.
void RegisterQuantAttributes(torch::jit::Module& observer, at::ScalarType dtype,
                             at::QScheme qscheme, int64_t quant_min, int64_t quant_max) {
  observer.register_attribute("dtype", c10::IntType::get(), static_cast<int64_t>(dtype));
  observer.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(qscheme));
  observer.register_attribute("quant_min", c10::IntType::get(), quant_min);
  observer.register_attribute("quant_max", c10::IntType::get(), quant_max);
  observer.register_buffer("eps", at::tensor({std::numeric_limits<float>::epsilon()}));
}

// quint8 over 0..255: reduce_range=False, as PyTorch's qconfig for the onednn engine.
torch::jit::Module ActivationObserver() {
  torch::jit::Module observer("MinMaxObserver");
  RegisterQuantAttributes(observer, at::kQUInt8, at::kPerTensorAffine, 0, 255);
  observer.register_buffer("min_val", at::tensor(std::numeric_limits<float>::infinity()));
  observer.register_buffer("max_val", at::tensor(-std::numeric_limits<float>::infinity()));
  Define(observer, kMinMaxObserverSource);
  return observer;
}

torch::jit::Module DynamicActivationObserver() {
  torch::jit::Module observer("PlaceholderObserver");
  observer.register_attribute("dtype", c10::IntType::get(), static_cast<int64_t>(at::kQUInt8));
  observer.register_attribute("compute_dtype", c10::IntType::get(),
                              static_cast<int64_t>(at::kQUInt8));
  observer.define(kPlaceholderObserverSource);
  return observer;
}

torch::jit::Module WeightObserver() {
  torch::jit::Module observer("PerChannelMinMaxObserver");
  RegisterQuantAttributes(observer, at::kQInt8, at::kPerChannelSymmetric, -128, 127);
  observer.register_attribute("ch_axis", c10::IntType::get(), int64_t{0});
  observer.register_buffer("min_val", at::empty({0}));
  observer.register_buffer("max_val", at::empty({0}));
  Define(observer, kPerChannelObserverSource);
  return observer;
}

// libtorch's reason without its C++ backtrace.
std::string Reason(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e))
    return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace

const char* ToString(StockInt8Mode mode) {
  return mode == StockInt8Mode::kStatic ? "static" : "dynamic";
}

OptimizedModel QuantizeStockInt8(const torch::jit::Module& module,
                                 const std::vector<std::vector<torch::jit::IValue>>& calibration,
                                 StockInt8Mode mode) {
  bool is_static = mode == StockInt8Mode::kStatic;
  if (is_static && calibration.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "stock int8 static quantization needs at least one calibration batch");
  }
  auto quant_type = is_static ? torch::jit::QuantType::STATIC : torch::jit::QuantType::DYNAMIC;
  Applied applied;
  applied.dtype = is_static ? "int8" : "int8-dynamic";
  std::string step = "freeze";
  torch::jit::Module m;
  try {
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    torch::NoGradGuard no_grad;
    m = module.clone();
    m.eval();
    m = torch::jit::freeze(m, c10::nullopt, /*optimize_numerics=*/false);
    applied.passes.push_back({"freeze", true});
    auto graph = m.get_method("forward").graph();
    torch::jit::removeDropout(graph);
    step = "fold_conv_bn";
    bool folded = torch::jit::FoldFrozenConvBatchnorm(graph);
    folded |= torch::jit::FoldFrozenConvAddOrSub(graph);
    folded |= torch::jit::FoldFrozenConvMulOrDiv(graph);
    torch::jit::ConstantPropagation(graph);
    applied.passes.push_back({"fold_conv_bn", folded});

    step = "insert_observers";
    torch::jit::QConfigDict qconfig = {
        {"", std::make_tuple(is_static ? ActivationObserver() : DynamicActivationObserver(),
                             WeightObserver())}};
    m = torch::jit::InsertObservers(m, "forward", qconfig, /*inplace=*/false, quant_type);
    applied.passes.push_back({"insert_observers", true});
    if (is_static) {
      step = "calibrate";
      for (const auto& inputs : calibration) m.forward(inputs);
      applied.passes.push_back({fmt::format("calibrate ({} batches)", calibration.size()), true});
    }

    step = "insert_quant_dequant";
    // In place or not, the module to go on with is the one returned (as in quantize_jit).
    m = torch::jit::InsertQuantDeQuant(m, "forward", /*inplace=*/true, /*debug=*/false, quant_type);
    applied.passes.push_back({"insert_quant_dequant", true});
    step = "finalize";
    m = torch::jit::Finalize(m, quant_type);
    graph = m.get_method("forward").graph();
    torch::jit::ConstantPropagation(graph);
    torch::jit::EliminateDeadCode(graph);
    applied.passes.push_back({"finalize", true});
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("libtorch's {} int8 quantization failed at {}: {}", ToString(mode),
                            step, Reason(e)));
  }
  applied.op_counts = CountOps(m.get_method("forward").graph());
  int64_t quantized_ops = 0;
  for (const auto& [kind, count] : applied.op_counts) {
    if (kind.rfind("quantized::", 0) == 0) quantized_ops += count;
  }
  if (quantized_ops == 0) {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("libtorch's {} int8 quantization quantized no op of this model",
                            ToString(mode)));
  }
  return OptimizedModel(std::move(m), at::kFloat, std::move(applied));
}

}  // namespace ipt::core
