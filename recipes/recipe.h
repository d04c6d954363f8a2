// The recipe: the contract between tuning and production. A value type that says how to
// optimise and run one workload (passes, precision, runtime) and where that advice came from.
// Its YAML form (schema `ipex-tune/recipe/v1`) is read and written by recipe_yaml.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ipt::recipes {

inline constexpr const char* kRecipeSchema = "ipex-tune/recipe/v1";

enum class Dtype { kFp32, kBf16, kInt8, kInt8Dynamic };
enum class MemoryFormat { kAuto, kContiguous, kChannelsLast, kBlocked };
enum class Binding { kNone, kCompact, kScatter };
enum class Allocator { kDefault, kJemalloc, kTcmalloc };
// What a study optimised: items/s, or a percentile of call latency.
enum class Objective { kThroughput, kP50, kP90, kP99 };

// Stable spellings used in YAML, JSON and the store ("fp32", "bf16", "int8", "int8-dynamic"...).
const char* ToString(Dtype v);
const char* ToString(MemoryFormat v);
const char* ToString(Binding v);
const char* ToString(Allocator v);
const char* ToString(Objective v);
// REQUIRES: nothing. Returns nullopt for an unknown spelling.
std::optional<Dtype> ParseDtype(const std::string& s);
std::optional<MemoryFormat> ParseMemoryFormat(const std::string& s);
std::optional<Binding> ParseBinding(const std::string& s);
std::optional<Allocator> ParseAllocator(const std::string& s);
std::optional<Objective> ParseObjective(const std::string& s);
// Every spelling of an enum in declaration order, comma-separated ("fp32, bf16, int8,
// int8-dynamic"), for error messages and --help text.
std::string DtypeSpellings();
std::string MemoryFormatSpellings();
std::string BindingSpellings();
std::string AllocatorSpellings();
std::string ObjectiveSpellings();

// One model input as the user declares it: `x:1x3x224x224:float32`. Dimension 0 is the batch.
struct InputSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype = "float32";
};

// The tensor dtypes an input may declare: float32, bfloat16, int64, int32, bool.
const std::vector<std::string>& InputDtypes();
// Parses `NAME:SHAPE:DTYPE` as users type it on the command line, e.g. `x:1x3x224x224:float32`
// (DTYPE may be left out: float32). Throws ipt::Error(kInvalidArgument) quoting the text and
// saying which part is wrong.
InputSpec ParseInputSpec(const std::string& text);
// The inverse: `x:1x3x224x224:float32`.
std::string FormatInputSpec(const InputSpec& spec);

struct WorkloadRef {
  std::string name;          // registry name ("resnet50") or "model" for a user file
  std::string model_path;    // user TorchScript file; empty for built-in workloads
  std::string model_sha256;  // hash of the built model; empty means "not checked"
  int64_t batch = 1;
  std::optional<int64_t> seq_len;  // sequence models only
  std::vector<InputSpec> inputs;   // user models only
};

// Where the recipe was measured. Informational: a mismatch warns, never refuses.
struct MachineRef {
  std::string fingerprint;
  std::string cpu;
  std::vector<std::string> isa;
  int64_t cores = 0;
};

struct Optimize {
  bool freeze = true;                  // torch::jit::freeze; every other pass needs it
  bool optimize_for_inference = true;  // libtorch's own frozen-graph optimisations
  bool fold_conv_bn = true;
  bool fold_linear_bn = true;
  // Names of the core's fusion passes to run, in the core's own order. Validated by the core,
  // which knows its passes; the recipe only checks that they are strings. Default: every fusion
  // the core does while lowering onto oneDNN.
  std::vector<std::string> fusions = {
      "qkv_merge",      "attention",    "add_layernorm", "interaction",    "merge_embedding_bags",
      "concat_bn_relu", "conv_eltwise", "conv_add",      "linear_eltwise", "linear_add",
      "matmul_add"};
  bool weight_prepack = true;
  MemoryFormat memory_format = MemoryFormat::kAuto;
};

struct Calibration {
  std::string algorithm = "minmax";  // validated by the core, which knows its algorithms
  int64_t samples = 32;              // calibration items (not batches)
  double averaging_constant = 0.01;  // moving_average_minmax only
  double percentile = 99.99;         // percentile only
};

// How the input of one int8 op is quantized: q = clamp(round(x / scale) + zero_point, 0, qmax).
struct ActivationQParams {
  double scale = 1.0;
  int64_t zero_point = 0;
  int64_t qmax = 255;  // 127 (u7) where the calibrating CPU had no VNNI
};

// Calibrated parameters, saved so that production never recalibrates.
struct QParams {
  // A digest of the quantizable ops (kind, weight shape, post-ops, in graph order) they were
  // calibrated for: a recipe applied to another graph is refused, not silently misapplied.
  std::string graph;
  std::map<std::string, ActivationQParams> inputs;  // op name ("conv2d.3") -> its input
  // Op name -> its residual (the accumulator of a conv + add), so that int8 residuals stay
  // uint8 between blocks. Optional: without an entry the op adds an fp32 accumulator.
  std::map<std::string, ActivationQParams> accumulators;
  // Op name ("linear.3") -> its input smoothing factors, one per input feature (SmoothQuant,
  // Precision::smooth_quant); that op's entry in `inputs` quantizes the smoothed input.
  std::map<std::string, std::vector<double>> smoothing;
};

// SmoothQuant (Xiao et al. 2023): before a static int8 linear quantizes its input, input
// feature j is divided by s_j = max|x_j|^alpha / max|W[:, j]|^(1 - alpha) (maxima over the
// calibration set and the weight's column) and the weight's column multiplied by it, moving
// range from channels that would waste the u8 steps onto the weights. alpha 0 leaves the input
// as it is; 1 evens its channels out completely.
struct SmoothQuant {
  double alpha = 0.5;
};

struct Precision {
  Dtype dtype = Dtype::kFp32;
  std::optional<Calibration> calibration;  // int8 only
  // int8: ops kept out of int8, names the core reports ("linear.11") or whole kinds ("conv2d",
  // "linear", "embedding_bag"), computed in `fallback_dtype`. bf16: aten op kinds
  // ("aten::softmax") computed in fp32, beside the ops libtorch has no bf16 kernel for.
  std::vector<std::string> fallback;
  // int8 only: kFp32 or kBf16, for the ops `fallback` and `auto_fallback` keep. bf16 runs them on
  // oneDNN's bf16 kernels, converting their inputs and results at the op.
  Dtype fallback_dtype = Dtype::kFp32;
  std::optional<QParams> qparams;           // int8 only
  std::optional<SmoothQuant> smooth_quant;  // int8 only; linear layers
  // int8 only, when tuning: the accuracy loss (as the tuner's --accuracy-loss) to reach by keeping
  // the ops whose quantization hurts most in `fallback_dtype`, found by measuring each op's
  // sensitivity (docs/int8.md). The tuner exports the ops found as `fallback` instead, so
  // production never searches.
  std::optional<double> auto_fallback;
};

// How one forward input is cut when a call's batch is shared among streams; every item of the
// batch goes to exactly one stream and the outputs are concatenated back in order.
struct InputSplit {
  enum class Kind {
    kDim,         // cut along `dim` (a tensor, or every tensor of a list)
    kReplicate,   // every stream gets the whole input (a table, a flag)
    kBagIndices,  // EmbeddingBag indices: cut where input `offsets` (a kBagOffsets) cuts its bags
    kBagOffsets,  // EmbeddingBag offsets (one per bag, include_last_offset false): cut along
                  // dim 0 and rebased to start at 0
  };
  Kind kind = Kind::kDim;
  int64_t dim = 0;       // kDim only
  int64_t offsets = -1;  // kBagIndices only: position of the offsets input
  bool operator==(const InputSplit& other) const {
    return kind == other.kind && dim == other.dim && offsets == other.offsets;
  }
};

struct Runtime {
  // Processes the recipe was measured as, side by side, each with the rest of this section on
  // its own share of the CPUs (the tuner's multi-instance mode). One process runs one instance:
  // a launcher starts the others, each bound to its CPUs (docs/runtime.md).
  int64_t instances = 1;
  int64_t threads = 0;  // OpenMP threads of one process; 0 means "every CPU of the pool"
  int64_t streams = 1;
  int64_t cores_per_stream = 0;  // 0 means "pool size / streams"
  // Items a stream hands the model at once: its share of a call runs as consecutive pieces of at
  // most this many, so that a large batch's intermediates stay in cache; 0: the whole share.
  int64_t micro_batch = 0;
  Binding binding = Binding::kCompact;
  Allocator allocator = Allocator::kDefault;
  std::map<std::string, std::string> env;  // extra environment (OMP_WAIT_POLICY, MALLOC_CONF...)
  // One entry per forward input, in order; empty means every input is cut along dim 0.
  std::vector<InputSplit> split;
};

struct Measured {
  double items_per_s = 0;
  double median_ms = 0;
  double p90_ms = 0;
  std::optional<double> p99_ms;
  std::optional<std::pair<double, double>> ci95_items_per_s;
  // With a latency objective: the 95% interval of the objective percentile, as the final
  // comparison measured it (median over blocks of each block's percentile).
  std::optional<std::pair<double, double>> ci95_latency_ms;
  // The winner's accuracy loss against the fp32 reference in [0, 1], as its trial measured it
  // over the evaluation set (docs/accuracy.md); absent when it had none.
  std::optional<double> accuracy_loss;
};

struct Provenance {
  int64_t study = 0;
  int64_t trial = 0;
  std::string created;  // ISO 8601 UTC
  std::string ipex_tune_version;
  // What the study optimised; absent in recipes written before objectives existed (throughput).
  std::optional<Objective> objective;
  // The latency bound every candidate had to meet (on the objective percentile, or p99 with the
  // throughput objective); absent when the study had none.
  std::optional<double> latency_bound_ms;
  // The tolerable accuracy loss every candidate had to meet, in [0, 1] (--accuracy-loss);
  // absent when the study had none.
  std::optional<double> max_accuracy_loss;
  Measured measured;
  // The ratio to the study's stock baseline on the objective: items/s over stock's, or stock's
  // latency percentile over this one's. Above 1 is better either way.
  std::optional<double> vs_stock;
};

struct Recipe {
  std::string schema = kRecipeSchema;
  WorkloadRef workload;
  MachineRef machine;
  Optimize optimize;
  Precision precision;
  Runtime runtime;
  std::optional<Provenance> provenance;
};

}  // namespace ipt::recipes
