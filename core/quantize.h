// INT8 quantization of a frozen graph already lowered onto the oneDNN ops (ipt::conv2d,
// ipt::linear and their _sum forms): each becomes its int8 counterpart (ipt::qconv2d,
// ipt::qlinear), with
//   - static: the input of every op, and the residual of every conv + add, calibrated ahead on
//     a copy of the graph that hands each to an observer (core/calibration), or taken from
//     saved recipe qparams;
//     With precision.smooth_quant, each static int8 linear's input is smoothed first (SmoothQuant:
//     a factor per input feature, calibrated in a pass of its own and saved in qparams);
//   - dynamic: linear only, each input's range taken at run time.
// Ops are named by kind and position ("conv2d.0", "linear.7"); the recipe's fallback list keeps
// named ops, or whole kinds, in fp32 or (precision.fallback_dtype) bf16.
#pragma once

#include <torch/script.h>

#include <functional>
#include <string>
#include <vector>

#include "core/passes/report.h"
#include "recipes/recipe.h"

namespace ipt::core {

// Calibration batch `index` (0, 1, ...) of `batch` items, from data the model is not evaluated on.
using CalibrationInputs =
    std::function<std::vector<torch::jit::IValue>(int64_t batch, int64_t index)>;

struct QuantizeResult {
  std::vector<std::string> quantized;  // op names: embedding bags, then the rest in order
  std::vector<std::string> kept;       // ops the fallback list kept, in precision.fallback_dtype
  std::vector<std::string> smoothed;   // linear ops whose input is smoothed (SmoothQuant)
  std::optional<recipes::QParams> qparams;  // static only: what was calibrated or loaded
  double calibration_s = 0;
  int64_t chained = 0;          // int8 convolutions that hand their result on in uint8
  int64_t uint8_max_pools = 0;  // max pools between them, which pool the uint8 as it is
};

// Rewrites the forward graph of `module` (frozen) in place. Throws ipt::Error(kInvalidArgument)
// for an unknown calibration algorithm, a fallback name that matches no op, static int8 with
// neither qparams nor calibration inputs, and qparams made for another graph (naming both
// digests), and saved smoothing factors missing, unasked for or of the wrong length;
// kInvalidArgument also when calibration or an embedding table meets inf or NaN, naming the op.
QuantizeResult Quantize(torch::jit::Module& module, const recipes::Precision& precision,
                        const CalibrationInputs& calibration);

}  // namespace ipt::core
