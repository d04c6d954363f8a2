// The stock int8 baseline: libtorch's own graph-mode post-training quantization, run from C++
// exactly as torch.ao.quantization.quantize_jit (static) and quantize_dynamic_jit (dynamic) run
// it, on the onednn quantized engine. It is what a user gets in int8 from libtorch without
// ipex-tune, and the figure the core's int8 is compared with in the same run.
#pragma once

#include <torch/script.h>

#include <vector>

#include "core/optimize.h"

namespace ipt::core {

enum class StockInt8Mode {
  // Weights and activations int8, activation ranges calibrated ahead (quantize_jit).
  kStatic,
  // Linear weights int8, activations quantized per call from their own range
  // (quantize_dynamic_jit); convolutions stay fp32.
  kDynamic,
};

// "static" or "dynamic".
const char* ToString(StockInt8Mode mode);

// Quantizes `module` (fp32, eval, not frozen) with libtorch's passes, in quantize_jit's order:
//   1. clone and freeze; fold conv+batch_norm (libtorch's frozen-graph folding: quantize_jit's
//      fuse_conv_bn_jit folds nn.Conv2d/nn.BatchNorm2d submodules only, and the workloads write
//      batch_norm as an aten op);
//   2. InsertObservers with the qconfig {"": (activation observer, weight observer)};
//   3. static: forward on every batch of `calibration`; dynamic: nothing (weights are observed
//      by InsertQuantDeQuant itself);
//   4. InsertQuantDeQuant, Finalize (QuantFusion, prepack, freeze, fold the prepacking), then
//      constant propagation and dead-code elimination.
// The observers are TorchScript modules (Module::define) with PyTorch's semantics:
//   activations (static): MinMaxObserver, quint8, per-tensor affine, range 0..255
//     (reduce_range=False as in get_default_qconfig("onednn"), which uses a HistogramObserver
//     there; MinMax here);
//   activations (dynamic): PlaceholderObserver(dtype=quint8, compute_dtype=quint8), as in
//     per_channel_dynamic_qconfig: the range is chosen at run time;
//   weights: PerChannelMinMaxObserver, qint8, per-channel symmetric on axis 0, range -128..127
//     (default_per_channel_weight_observer).
// On a small conv net the result was bit-identical to PyTorch 1.13's quantize_jit run with its
// own Python observers of these settings.
//
// Returns a model that takes and returns fp32 (compute dtype fp32), whose Applied says dtype
// "int8" or "int8-dynamic", the steps run, and the op counts of the final graph.
// Throws ipt::Error(kInvalidArgument) for static quantization without calibration batches, and
// kUnsupported with libtorch's reason when its passes fail on the model or quantize no op.
// Effects: sets libtorch's process-wide quantized engine to onednn (its default in the Debian
// build); the quantized ops read it when they run as well.
OptimizedModel QuantizeStockInt8(const torch::jit::Module& module,
                                 const std::vector<std::vector<torch::jit::IValue>>& calibration,
                                 StockInt8Mode mode);

}  // namespace ipt::core
