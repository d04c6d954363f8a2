#include "core/runtime.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "base/error.h"
#include "core/platform/core_pool.h"
#include "core/platform/stream_plan.h"
#include "core/platform/system_source.h"
#include "kernels/onednn_info.h"
#include "recipes/recipe_yaml.h"

namespace ipt::core {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kRecipeEntry = "ipex_tune/recipe.yaml";
constexpr const char* kAppliedEntry = "ipex_tune/applied.json";

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

torch::jit::Module LoadModule(const std::string& path, torch::jit::ExtraFilesMap& extra) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, fmt::format("model '{}' does not exist", path));
  }
  try {
    return torch::jit::load(path, c10::nullopt, extra);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kCorrupt, fmt::format("'{}' is not a TorchScript archive: {}", path,
                                                 FirstLine(e.what_without_backtrace())));
  } catch (const std::exception& e) {  // the IR's own errors, e.g. a constant it cannot read
    throw Error(ErrorCode::kCorrupt, fmt::format("'{}' is not a TorchScript model this libtorch "
                                                 "can load: {}",
                                                 path, FirstLine(e.what())));
  }
}

// The allocator the process really runs with: the recipe's can only come from LD_PRELOAD at
// start.
recipes::Allocator LoadedAllocator() {
  if (dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return recipes::Allocator::kJemalloc;
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return recipes::Allocator::kTcmalloc;
  return recipes::Allocator::kDefault;
}

std::vector<std::string> EnvironmentWarnings(const recipes::Runtime& runtime) {
  std::vector<std::string> warnings;
  const recipes::Allocator loaded = LoadedAllocator();
  if (runtime.allocator != recipes::Allocator::kDefault && runtime.allocator != loaded) {
    warnings.push_back(
        fmt::format("runtime.allocator is {} but this process runs {}: start it with the allocator "
                    "preloaded (LD_PRELOAD), as the tuner measured",
                    recipes::ToString(runtime.allocator), recipes::ToString(loaded)));
  }
  for (const auto& [name, value] : runtime.env) {
    const char* current = std::getenv(name.c_str());
    if (current != nullptr && value == current) continue;
    warnings.push_back(fmt::format(
        "runtime.env {}={} is not set in this process ({}): OpenMP and the allocator read it "
        "only at start, so set it before the process starts",
        name, value, current ? fmt::format("it has {}", current) : "it is unset"));
  }
  return warnings;
}

}  // namespace

Machine ReadMachine() {
  const platform::LinuxSystemSource source;
  Machine machine{platform::ReadTopology(source), platform::ReadCpuInfo(source), ""};
  machine.key = platform::MachineKey(
      platform::MachineKeyFields(machine.cpu, machine.topology, CurrentLibraries()));
  return machine;
}

platform::StreamPlan PlanRuntime(const recipes::Runtime& runtime, const platform::CpuSet& cpus,
                                 const platform::Topology& topology) {
  const platform::CorePool pool = cpus.empty() ? platform::CorePool::AllAllowed(topology)
                                               : platform::CorePool::FromCpus(topology, cpus);
  platform::StreamRequest request;
  request.streams = static_cast<int>(std::max<int64_t>(1, runtime.streams));
  request.cores_per_stream = static_cast<int>(runtime.cores_per_stream);
  if (request.cores_per_stream == 0 && runtime.threads > 0) {
    request.cores_per_stream = static_cast<int>(std::max<int64_t>(
        1,
        std::min<int64_t>(runtime.threads, static_cast<int64_t>(pool.size())) / request.streams));
  }
  request.binding = runtime.binding == recipes::Binding::kScatter ? platform::Binding::kScatter
                                                                  : platform::Binding::kCompact;
  try {
    return platform::PlanStreams(topology, pool, request);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("recipe runtime (streams {}, cores_per_stream {}) does not "
                                      "fit CPUs {}: {}",
                                      runtime.streams, runtime.cores_per_stream,
                                      pool.cpus().ToString(), e.what()));
  }
}

platform::Libraries CurrentLibraries() {
  const kernels::OneDnnInfo onednn = kernels::QueryOneDnn();
  return {TORCH_VERSION, onednn.version, onednn.effective_isa};
}

std::vector<std::string> MachineDifferences(const recipes::MachineRef& recorded,
                                            const platform::CpuInfo& cpu,
                                            const platform::Topology& topology,
                                            const std::string& key) {
  if (recorded.fingerprint.empty() || recorded.fingerprint == key) return {};
  std::vector<std::string> differences;
  if (!recorded.cpu.empty() && recorded.cpu != cpu.model_name) {
    differences.push_back(fmt::format("the recipe was measured on CPU '{}', this one is '{}'",
                                      recorded.cpu, cpu.model_name));
  }
  std::vector<std::string> missing, extra;
  // A recipe that names no ISA says nothing about it.
  for (const std::string& flag : recorded.isa) {
    if (!cpu.HasIsa(flag)) missing.push_back(flag);
  }
  for (const std::string& flag : recorded.isa.empty() ? recorded.isa : cpu.isa_flags) {
    if (std::find(recorded.isa.begin(), recorded.isa.end(), flag) == recorded.isa.end()) {
      extra.push_back(flag);
    }
  }
  if (!missing.empty()) {
    differences.push_back(
        fmt::format("this CPU lacks {}, which the recipe's machine had", fmt::join(missing, ", ")));
  }
  if (!extra.empty()) {
    differences.push_back(
        fmt::format("this CPU has {}, which the recipe's machine lacked", fmt::join(extra, ", ")));
  }
  const int64_t cores = topology.PhysicalCoreCount();
  if (recorded.cores > 0 && recorded.cores != cores) {
    differences.push_back(fmt::format("the recipe's machine had {} physical cores, this one has {}",
                                      recorded.cores, cores));
  }
  if (differences.empty()) {
    differences.push_back(
        "the machine fingerprint differs (same CPU, ISA and cores: another topology or other "
        "libtorch, oneDNN or ipex-tune versions)");
  }
  return differences;
}

std::vector<std::string> RecipeWarnings(const recipes::Recipe& recipe, const Machine& machine) {
  std::vector<std::string> warnings;
  for (const std::string& d :
       MachineDifferences(recipe.machine, machine.cpu, machine.topology, machine.key)) {
    warnings.push_back("machine: " + d);
  }
  for (std::string& w : EnvironmentWarnings(recipe.runtime)) warnings.push_back(std::move(w));
  return warnings;
}

Runtime::Runtime(OptimizedModel model, recipes::Recipe recipe, const RuntimeOptions& options,
                 RuntimeReport report)
    : model_(std::make_unique<OptimizedModel>(std::move(model))),
      recipe_(std::move(recipe)),
      report_(std::move(report)) {
  // A recipe built in code may leave the workload unnamed; the saved form needs a name.
  if (recipe_.workload.name.empty()) recipe_.workload.name = "model";
  const Machine machine = ReadMachine();
  report_.warnings = RecipeWarnings(recipe_, machine);
  const platform::StreamPlan plan = PlanRuntime(recipe_.runtime, options.cpus, machine.topology);
  report_.plan = platform::Describe(plan);
  OptimizedModel* shared = model_.get();
  std::vector<InputSplit> split = options.split.value_or(recipe_.runtime.split);
  executor_ = std::make_unique<StreamExecutor>(
      plan,
      MicroBatched([shared](const std::vector<torch::jit::IValue>& in) { return shared->Run(in); },
                   recipe_.runtime.micro_batch, split),
      split, recipe_.runtime.binding != recipes::Binding::kNone);
  report_.streams = executor_->bindings();
}

Runtime::~Runtime() = default;

std::unique_ptr<Runtime> Runtime::Load(const std::string& model_path, const recipes::Recipe& recipe,
                                       RuntimeOptions options) {
  const Clock::time_point start = Clock::now();
  torch::jit::ExtraFilesMap none;
  torch::jit::Module module = LoadModule(model_path, none);
  const double load_ms = MsSince(start);
  std::unique_ptr<Runtime> runtime = Create(module, recipe, std::move(options));
  runtime->report_.load_ms = load_ms;
  return runtime;
}

std::unique_ptr<Runtime> Runtime::Create(const torch::jit::Module& module,
                                         const recipes::Recipe& recipe, RuntimeOptions options) {
  const Clock::time_point start = Clock::now();
  OptimizedModel model = Optimize(module, recipe, options.calibration);
  RuntimeReport report;
  report.optimize_ms = MsSince(start);
  report.applied = model.applied().ToJson();
  // The split goes into the recipe the runtime keeps, so a saved model carries it: the
  // optimised graph no longer shows which inputs are EmbeddingBag offsets.
  recipes::Recipe applied = recipe;
  if (!options.split && applied.runtime.split.empty()) applied.runtime.split = InferSplit(module);
  if (!applied.precision.qparams) applied.precision.qparams = model.applied().qparams;
  return std::unique_ptr<Runtime>(
      new Runtime(std::move(model), std::move(applied), options, std::move(report)));
}

std::unique_ptr<Runtime> Runtime::LoadOptimized(const std::string& path, RuntimeOptions options) {
  const Clock::time_point start = Clock::now();
  torch::jit::ExtraFilesMap extra = {{kRecipeEntry, ""}, {kAppliedEntry, ""}};
  torch::jit::Module module = LoadModule(path, extra);
  if (extra[kRecipeEntry].empty() || extra[kAppliedEntry].empty()) {
    throw Error(ErrorCode::kCorrupt,
                fmt::format("'{}' is a TorchScript model but not one saved by "
                            "Runtime::SaveOptimized (it carries no recipe): load it with "
                            "Runtime::Load and a recipe",
                            path));
  }
  recipes::Recipe recipe = recipes::ParseRecipe(extra[kRecipeEntry], path + ":" + kRecipeEntry);
  nlohmann::json applied_json = nlohmann::json::parse(extra[kAppliedEntry], nullptr, false);
  if (applied_json.is_discarded()) {
    throw Error(ErrorCode::kCorrupt, fmt::format("'{}': {} is not JSON", path, kAppliedEntry));
  }
  module.eval();
  Applied applied;
  applied.dtype = recipes::ToString(recipe.precision.dtype);
  OptimizedModel model(module, ComputeDtype(recipe.precision.dtype), std::move(applied));
  RuntimeReport report;
  report.load_ms = MsSince(start);
  report.applied = std::move(applied_json);
  return std::unique_ptr<Runtime>(
      new Runtime(std::move(model), std::move(recipe), options, std::move(report)));
}

void Runtime::SaveOptimized(const std::string& path) const {
  // TorchScript writes the MKLDNN tensor constants that optimize_for_inference makes for ops the
  // core did not lower (prim::ConstantMKLDNNTensor) but cannot read them back: refuse instead of
  // writing a broken file.
  bool mkldnn = false;
  std::function<void(torch::jit::Block*)> visit = [&](torch::jit::Block* block) {
    for (torch::jit::Node* node : block->nodes()) {
      for (torch::jit::Block* sub : node->blocks()) visit(sub);
      if (std::string(node->kind().toQualString()) == "prim::ConstantMKLDNNTensor") {
        mkldnn = true;
      }
    }
  };
  visit(model_->module().get_method("forward").graph()->block());
  if (mkldnn) {
    throw Error(ErrorCode::kUnsupported,
                fmt::format("cannot save the optimised model to '{}': optimize_for_inference "
                            "left MKLDNN tensors in it, which TorchScript cannot load again; set "
                            "optimize.optimize_for_inference: false in the recipe to save it",
                            path));
  }
  const std::string temporary = path + ".tmp";
  torch::jit::ExtraFilesMap extra = {{kRecipeEntry, recipes::ToYaml(recipe_)},
                                     {kAppliedEntry, report().applied.dump()}};
  try {
    model_->module().save(temporary, extra);
  } catch (const c10::Error& e) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw Error(ErrorCode::kIo, fmt::format("cannot save the optimised model to '{}': {}", path,
                                            FirstLine(e.what_without_backtrace())));
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw Error(ErrorCode::kIo,
                fmt::format("cannot save the optimised model to '{}': {}", path, ec.message()));
  }
}

void Runtime::RecordFirstCall(double ms) {
  std::lock_guard<std::mutex> lock(report_mutex_);
  if (!report_.first_call_ms) report_.first_call_ms = ms;
}

torch::jit::IValue Runtime::Run(std::vector<torch::jit::IValue> inputs) {
  return RunAsync(std::move(inputs)).get();
}

std::future<torch::jit::IValue> Runtime::RunAsync(std::vector<torch::jit::IValue> inputs) {
  const Clock::time_point start = Clock::now();
  std::future<torch::jit::IValue> result = executor_->RunAsync(std::move(inputs));
  return std::async(std::launch::deferred, [this, start, result = std::move(result)]() mutable {
    torch::jit::IValue output = result.get();
    RecordFirstCall(MsSince(start));
    return output;
  });
}

RuntimeReport Runtime::report() const {
  std::lock_guard<std::mutex> lock(report_mutex_);
  return report_;
}

}  // namespace ipt::core
