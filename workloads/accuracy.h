// Accuracy of an optimised model against the fp32 reference: the evaluation set a trial runs,
// the metrics of each MetricKind with the one scalar loss the tuner constrains, and the on-disk
// cache of reference outputs. docs/accuracy.md gives the formulas and the reasons for them.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "workloads/cache.h"
#include "workloads/workload.h"

namespace ipt::workloads {

// The evaluation set of a trial: batches 0 .. batches - 1 of Workload::MakeInputs at `batch`
// (calibration uses other indices, so the two never share an item).
struct EvalSet {
  int64_t batch = 1;
  int64_t batches = 1;
  int64_t items() const { return batch * batches; }
};

// The default evaluation set at `batch`: at least kMinEvalBatches batches, and enough to hold
// kMinEvalItems items unless that would cost more than kEvalFlops (given `flops_per_item`; 0
// when unknown). bs1: 16 calls (bert-large: 6); bs4: 4 calls, 16 items; bs8: 4 calls, 32 items.
// More items resolve smaller accuracy losses (one changed prediction in 16 items is a loss of
// 6%); every call is paid once per candidate before it is measured. Several batches, not one,
// because a candidate can be right on its first call and wrong on later ones (state kept
// between calls). Throws ipt::Error(kInvalidArgument) when batch < 1.
inline constexpr int64_t kMinEvalBatches = 4;
inline constexpr int64_t kMinEvalItems = 16;
// About 10 s of a candidate on two AVX2 cores; only bert-large at small batches reaches it.
inline constexpr double kEvalFlops = 4e11;
EvalSet DefaultEvalSet(int64_t batch, double flops_per_item = 0);

// The evaluation set a user asked for (--eval-items): at least `items` items and
// kMinEvalBatches batches at `batch`, whatever it costs. With 100 items one changed prediction is
// a loss of 1%, the default target. Throws ipt::Error(kInvalidArgument) when batch or items < 1.
EvalSet EvalSetOfAtLeast(int64_t batch, int64_t items);

// The output of one call as the metrics read it: the first tensor of the output (recursing
// into tuples and lists), as float32 on the CPU, at least 1-D. Throws ipt::Error(kUnsupported)
// for an output that holds no tensor.
at::Tensor OutputTensor(const torch::jit::IValue& output);

// Runs `run` on each batch of `set` in order and concatenates the OutputTensor of each along
// dimension 0.
using RunFn = std::function<torch::jit::IValue(const std::vector<torch::jit::IValue>&)>;
at::Tensor RunEvalSet(const Workload& workload, const EvalSet& set, const RunFn& run);

// The largest relative L2 distance (|candidate - reference| / |reference|) a candidate may
// have: beyond it the outputs no longer compute the same function, whatever the agreement
// says, and the loss is 1. Reduced precision stays well inside it: bf16 and int8 move these
// outputs by a few percent.
inline constexpr double kMaxRelativeL2 = 0.25;

// A candidate's outputs against the reference's over the same items.
struct Accuracy {
  MetricKind kind = MetricKind::kGeneric;
  int64_t items = 0;
  // What the tuner constrains, in [0, 1]: 0 for the reference's predictions, 1 when the
  // distance check fails. Per kind (docs/accuracy.md):
  //   kTopK         1 - top1_agreement
  //   kClasses      1 - class_agreement
  //   kProbability  1 - agreement_at_half
  //   kGeneric      1 - top1_agreement for 2-D outputs of 2 columns or more, else
  //                 min(1, relative_l2)
  double loss = 0;
  // The distance check: relative_l2 <= kMaxRelativeL2 and every output finite.
  bool distance_ok = true;
  // Distances over all outputs, flattened.
  double cosine = 1;
  double relative_l2 = 0;
  double max_abs_error = 0;
  // Fractions of items. top1_agreement (each item's argmax equal) is there for every kind, as
  // results always carried it (1 for outputs of one value per item); the others are set only
  // for the kinds listed.
  double top1_agreement = 1;
  std::optional<double> top5_agreement;     // reference's class in the candidate's top 5: kTopK
  std::optional<double> class_agreement;    // argmax equal: kClasses
  std::optional<double> agreement_at_half;  // both above 0.5 or both not: kProbability
};

// "top_k", "classes", "probability", "generic": the metric's name in results.
const char* MetricKindName(MetricKind kind);

// Throws ipt::Error(kInvalidArgument) when the two shapes differ or hold no item.
Accuracy CompareOutputs(MetricKind kind, const at::Tensor& reference, const at::Tensor& candidate);

// Where reference outputs are cached: CacheRoot(...)/references ($IPT_CACHE_DIR/references, else
// $XDG_CACHE_HOME/ipex-tune/references, else $HOME/.cache/ipex-tune/references); empty (no
// cache) when CacheRoot is.
std::filesystem::path ReferenceCacheDir(const char* ipt_cache_dir, const char* xdg_cache_home,
                                        const char* home);

// The cache key of a reference: a hash of the model's hash, the metric kind, the evaluation
// set and every input tensor of it, so that a change to the weights, the input generator or
// the set gives a new key and a stale file is never read.
std::string ReferenceKey(const std::string& model_hash, const Workload& workload,
                         const EvalSet& set);

struct CachedReference {
  at::Tensor outputs;
  CacheOutcome outcome = CacheOutcome::kComputed;
  std::filesystem::path file;  // empty without a cache
  std::string warning;         // why a file was not trusted or not written; empty otherwise
};

// The reference outputs for `key`: read from `dir` when a valid file is there, else computed
// by `compute` (float32, any shape) and stored, atomically (WriteFileAtomically). A file is trusted
// only when its header names `key` and its payload has the length and SHA-256 the header gives.
// Nothing here throws for the cache: a cache that cannot be read or written costs a recomputation,
// said in `warning`; exceptions of `compute` propagate. Safe to call from several processes at
// once.
CachedReference LoadOrComputeReference(const std::filesystem::path& dir, const std::string& key,
                                       const std::function<at::Tensor()>& compute);

}  // namespace ipt::workloads
