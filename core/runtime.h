// The production API of the optimisation core: a TorchScript model and a recipe in, a runnable
// object out that applies the recipe's passes, precision and runtime (streams, core binding).
//
//   auto runtime = ipt::core::Runtime::Load("model.pt", ipt::recipes::LoadRecipe("recipe.yaml"));
//   torch::jit::IValue out = runtime->Run({input});
//
// The optimised model can be saved and loaded again, so that a service does not re-optimise (or
// recalibrate) at every start. No tuner, store or Qt behind it.
#pragma once

#include <torch/script.h>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/optimize.h"
#include "core/platform/cpu_info.h"
#include "core/platform/cpu_set.h"
#include "core/platform/machine_key.h"
#include "core/platform/stream_plan.h"
#include "core/platform/topology.h"
#include "core/streams.h"
#include "recipes/recipe.h"

namespace ipt::core {

struct RuntimeOptions {
  // The CPUs the runtime may use; empty means every CPU this process may use. One CPU per
  // physical core is used (SMT siblings left out), as the tuner measured.
  platform::CpuSet cpus;
  // How each input is cut over the streams; overrides the recipe's runtime.split, which
  // overrides what InferSplit reads from the model.
  std::optional<std::vector<InputSplit>> split;
  // Static int8 without saved qparams calibrates on these. A recipe exported by the tuner
  // carries its qparams, so production normally leaves this empty.
  CalibrationInputs calibration;
};

struct RuntimeReport {
  double load_ms = 0;      // reading the model file; 0 for a module handed in
  double optimize_ms = 0;  // applying the recipe; 0 when a saved optimised model was loaded
  std::optional<double> first_call_ms;  // the first call, which creates the oneDNN primitives
  std::string plan;                     // the streams and their CPUs (platform::Describe)
  std::vector<StreamBinding> streams;   // what each stream's threads were really bound to
  // What the recipe asked for that this process does not have: another machine than the one
  // the recipe was measured on, an allocator or environment the process was not started with.
  std::vector<std::string> warnings;
  nlohmann::json applied;  // core::Applied::ToJson of the optimisation
};

// Thread-safe: Run and RunAsync may be called from several threads at once.
class Runtime {
 public:
  // Reads a TorchScript file and applies `recipe`. Throws ipt::Error: kNotFound for a missing
  // file, kCorrupt for a file that is not a TorchScript archive, kInvalidArgument for a recipe
  // the core or this machine cannot follow (unknown fusion, qparams of another graph, more
  // streams than CPUs), each naming the problem.
  static std::unique_ptr<Runtime> Load(const std::string& model_path, const recipes::Recipe& recipe,
                                       RuntimeOptions options = {});
  // The same for a module already in memory (fp32, eval mode, not frozen).
  static std::unique_ptr<Runtime> Create(const torch::jit::Module& module,
                                         const recipes::Recipe& recipe,
                                         RuntimeOptions options = {});
  // A model written by SaveOptimized, with the recipe it was optimised with: no optimisation or
  // calibration happens. Throws as Load, and kCorrupt for a TorchScript file that SaveOptimized
  // did not write.
  static std::unique_ptr<Runtime> LoadOptimized(const std::string& path,
                                                RuntimeOptions options = {});

  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Writes the optimised model with its recipe into one TorchScript file (atomically).
  void SaveOptimized(const std::string& path) const;

  // Runs the model: with several streams the batch is cut over them (RuntimeOptions::split or
  // the recipe's) and the outputs joined. Floating-point inputs and outputs are fp32 whatever
  // the recipe's precision.
  torch::jit::IValue Run(std::vector<torch::jit::IValue> inputs);
  std::future<torch::jit::IValue> RunAsync(std::vector<torch::jit::IValue> inputs);

  RuntimeReport report() const;
  // The recipe as applied: runtime.split filled in when it was inferred from the model, and
  // precision.qparams when they were calibrated here (save it for a service that must not
  // recalibrate: recipes::SaveRecipe).
  const recipes::Recipe& recipe() const { return recipe_; }

 private:
  Runtime(OptimizedModel model, recipes::Recipe recipe, const RuntimeOptions& options,
          RuntimeReport report);
  void RecordFirstCall(double ms);

  std::unique_ptr<OptimizedModel> model_;
  recipes::Recipe recipe_;
  mutable std::mutex report_mutex_;
  RuntimeReport report_;
  std::unique_ptr<StreamExecutor> executor_;
};

// This machine as the runtime compares and plans with it: read once, passed around.
struct Machine {
  platform::Topology topology;
  platform::CpuInfo cpu;
  std::string key;  // platform::MachineKey with this process's libraries
};
Machine ReadMachine();

// The streams a recipe's runtime section asks for, laid over `cpus` (empty: every CPU this
// process may use) of `topology`, one CPU per physical core. Throws ipt::Error(kInvalidArgument)
// naming the numbers when they do not fit.
platform::StreamPlan PlanRuntime(const recipes::Runtime& runtime, const platform::CpuSet& cpus,
                                 const platform::Topology& topology);

// What in `recipe` this process does not match, one sentence each: the machine it was measured
// on (MachineDifferences, prefixed "machine: "), an allocator or environment variable the
// process was not started with. RuntimeReport::warnings holds these.
std::vector<std::string> RecipeWarnings(const recipes::Recipe& recipe, const Machine& machine);

// The libraries this process runs with (libtorch, oneDNN and the ISA oneDNN dispatches to).
platform::Libraries CurrentLibraries();

// How the machine a recipe was measured on differs from this one, one sentence per difference
// ("the recipe was measured on AMD EPYC 9B45, this is Intel Xeon ...", "this CPU lacks
// avx512_bf16, which the recipe's machine had"). Empty when `recorded` names no fingerprint or
// its fingerprint is `key`.
std::vector<std::string> MachineDifferences(const recipes::MachineRef& recorded,
                                            const platform::CpuInfo& cpu,
                                            const platform::Topology& topology,
                                            const std::string& key);

}  // namespace ipt::core
