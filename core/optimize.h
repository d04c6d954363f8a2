// optimize(module, recipe): the optimisation core's entry point. Takes an fp32 TorchScript
// module in eval mode and a recipe, returns the optimised model and a report of what was really
// done (accepting a recipe is not the same as applying it).
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/passes/report.h"
#include "core/quantize.h"
#include "recipes/recipe.h"

namespace ipt::core {

struct PassResult {
  std::string name;
  bool changed = false;
};

struct Fallback {
  std::string what;  // an op or a whole feature ("bf16 input cast")
  std::string reason;
};

struct Applied {
  std::string dtype;
  // The methods optimised: forward, then every other method of the top-level module (each goes
  // through the same graph passes; int8 quantizes forward only). op_counts are forward's.
  std::vector<std::string> methods;
  std::vector<PassResult> passes;            // in the order they ran
  std::map<std::string, int64_t> op_counts;  // node kinds of the final forward graph
  passes::FusionReport fusions;              // fused patterns and candidates left alone
  std::vector<Fallback> fallbacks;
  // int8 only: the ops quantized, those the recipe kept in fp32 or bf16 (its fallback_dtype),
  // and (static) the parameters used, which a recipe can carry so that production never
  // recalibrates.
  std::vector<std::string> quantized;
  std::vector<std::string> kept_fp32;
  std::vector<std::string> kept_bf16;
  std::vector<std::string> smoothed;  // linear ops with input smoothing (SmoothQuant)
  std::optional<recipes::QParams> qparams;
  double calibration_s = 0;
  nlohmann::json ToJson() const;
};

class OptimizedModel {
 public:
  OptimizedModel(torch::jit::Module module, at::ScalarType compute_dtype, Applied applied);

  // Runs forward. Floating-point inputs are cast to the model's compute dtype and floating-point
  // outputs back to fp32, so callers always speak fp32.
  torch::jit::IValue Run(const std::vector<torch::jit::IValue>& inputs);
  // The same for another method of the model (applied().methods). Throws ipt::Error(kNotFound)
  // naming the methods there are.
  torch::jit::IValue RunMethod(const std::string& method,
                               const std::vector<torch::jit::IValue>& inputs);

  const Applied& applied() const { return applied_; }
  // For callers that apply part of a recipe themselves (the runtime) and could not.
  void AddFallback(Fallback fallback) { applied_.fallbacks.push_back(std::move(fallback)); }
  torch::jit::Module& module() { return module_; }

 private:
  torch::jit::Module module_;
  at::ScalarType compute_dtype_;
  Applied applied_;
};

// How many nodes of each kind `graph` holds, nested blocks included, constants and list
// constructions left out: what `Applied::op_counts` reports.
std::map<std::string, int64_t> CountOps(const std::shared_ptr<torch::jit::Graph>& graph);

// Names of the fusion passes a recipe may list in `optimize.fusions`.
std::vector<std::string> KnownFusions();

// Throws ipt::Error(kInvalidArgument) naming the key for a recipe asking for something the
// core does not have (an unknown fusion or calibration algorithm) or that does not fit the model
// (qparams calibrated for another graph). Static int8 calibrates on `calibration` unless the
// recipe carries qparams (see core/quantize.h).
OptimizedModel Optimize(const torch::jit::Module& module, const recipes::Recipe& recipe,
                        const CalibrationInputs& calibration = {});

// The recipe of libtorch's own best fp32 path: frozen + optimize_for_inference, nothing else.
recipes::Recipe StockRecipe();

// The dtype a recipe's precision computes in: bf16 for bf16, fp32 otherwise (the int8 ops take
// and give fp32).
at::ScalarType ComputeDtype(recipes::Dtype dtype);

// Sets the intra-op thread count of libtorch (OpenMP) for the calling process.
void SetThreads(int64_t threads);

}  // namespace ipt::core
