// A workload: a model built in C++ (or loaded from a user's TorchScript file) with deterministic
// seeded weights, its inputs, and its cost. The registry maps names to builders.
//
// Contract: the same name, options and seed give bit-identical weights and inputs in every
// process, so a trial worker and the tuner's reference agree without sharing files.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recipes/recipe.h"

namespace ipt::workloads {

// How a candidate's outputs are compared with the fp32 reference (accuracy.h): which agreement
// gives the workload's scalar accuracy loss.
enum class MetricKind {
  kTopK,         // logits over many classes [items, classes]: top-1 and top-5 agreement
  kClasses,      // logits over a few classes [items, classes]: class agreement, logit cosine
  kProbability,  // one probability per item in (0, 1): agreement at 0.5, max abs error
  kGeneric,      // any output: cosine and relative L2, top-1 agreement when it is 2-D
};

struct WorkloadOptions {
  std::optional<int64_t> seq_len;          // sequence models; their default otherwise
  std::string model_path;                  // user TorchScript file (workload "model")
  std::vector<recipes::InputSpec> inputs;  // user model inputs, dimension 0 the batch
  uint64_t seed = 0x1b5e7;                 // weights; inputs use seeds of their own
};

class Workload {
 public:
  virtual ~Workload() = default;

  virtual const std::string& name() const = 0;
  // The fp32 model in eval mode, not frozen: optimisation is the core's job.
  virtual torch::jit::Module BuildModel() const = 0;
  // Everything BuildModel's result depends on besides the code that builds it, as one line: the
  // name, the configuration (layers, widths, table sizes...) and the options that shape the
  // weights (seed, seq_len). The model cache (model_cache.h) keys on it, so two workloads with
  // the same description must build the same model. Empty, the default, keeps the model out of
  // the cache: a user's file is loaded, not built.
  virtual std::string BuildDescription() const { return {}; }
  // Evaluation inputs for one call at `batch`; `index` selects one of many distinct batches.
  virtual std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const = 0;
  // Calibration inputs: the evaluation generator on indices no evaluation batch uses (every
  // generator seeds from its index), so the two sets are disjoint.
  std::vector<torch::jit::IValue> MakeCalibrationInputs(int64_t batch, int64_t index) const {
    return MakeInputs(batch, kCalibrationIndexBase + index);
  }
  static constexpr int64_t kCalibrationIndexBase = int64_t{1} << 40;
  // Multiply-adds counted twice, per item of the batch.
  virtual double FlopsPerItem() const = 0;
  // Inputs as a user would declare them at `batch`, for reports and recipes.
  virtual std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const = 0;
  // How accuracy against the fp32 reference is measured; kGeneric unless the workload knows
  // what its output means.
  virtual MetricKind Metric() const { return MetricKind::kGeneric; }
};

// `name` is a registered name or an alias of one ("bert" for "bert-base").
// Throws ipt::Error(kNotFound) naming the known workloads when `name` is not one of them.
std::unique_ptr<Workload> MakeWorkload(const std::string& name, const WorkloadOptions& options);
// Registered names, aliases excluded, in a stable order.
std::vector<std::string> WorkloadNames();

// A hash of the model's code and weights: the forward graph and every parameter and buffer.
std::string ModelHash(const torch::jit::Module& module);

}  // namespace ipt::workloads
