// ipex-tune-worker: everything that needs libtorch, in a process of its own, answering in JSON
// lines on stdout (schema_version 1). The front end and the tuner never load libtorch; a model
// that crashes takes down this process only.
//
// Modes: info, workloads, dry-run, trial, bench. Every line is an object with a "type":
// "info", "workload", "progress", "result" or "error". An error line is followed by exit status
// 2 (bad request) or 3 (failure while running).
#include <fmt/format.h>
#include <torch/script.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "core/measure.h"
#include "core/optimize.h"
#include "core/platform/cpu_set.h"
#include "core/platform/machine_key.h"
#include "core/platform/memory_binding.h"
#include "core/platform/system_source.h"
#include "core/runtime.h"
#include "core/stock_int8.h"
#include "core/streams.h"
#include "kernels/onednn_info.h"
#include "recipes/recipe_yaml.h"
#include "workloads/accuracy.h"
#include "workloads/model_cache.h"
#include "workloads/trial_cache.h"
#include "workloads/user_model.h"
#include "workloads/workload.h"

namespace ipt {
namespace {

constexpr int kSchemaVersion = 1;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void Emit(Json line) { std::cout << line.dump() << '\n' << std::flush; }

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t AllowedCpuCount() {
  return static_cast<int64_t>(platform::LinuxSystemSource().Affinity().size());
}

recipes::Recipe ReadRecipe(const std::string& path) {
  if (path == "-") {
    std::string text(std::istreambuf_iterator<char>(std::cin), {});
    return recipes::ParseRecipe(text, "<stdin>");
  }
  return recipes::LoadRecipe(path);
}

Json MeasurementJson(const core::MeasureResult& r) {
  Json blocks = Json::array();
  for (const core::Block& b : r.blocks)
    blocks.push_back({{"calls", b.calls}, {"seconds", b.seconds}});
  return {{"items_per_s", r.ItemsPerSecond()},
          {"median_ms", r.MedianMs()},
          {"p90_ms", r.QuantileMs(0.9)},
          {"p99_ms", r.QuantileMs(0.99)},
          {"mean_ms", r.MeanMs()},
          {"stddev_ms", r.StddevMs()},
          {"cv", r.BlockCv()},
          {"samples", r.latencies_ms.size()},
          {"noisy", r.Noisy()},
          {"hit_time_ceiling", r.hit_time_ceiling},
          {"blocks", blocks},
          {"latencies_ms", r.latencies_ms}};
}

// Agreement of a candidate's outputs with the fp32 reference over the evaluation set: what a
// reader needs to trust that a faster model still computes the same function, and the loss the
// tuner constrains (docs/accuracy.md). Non-finite figures are written as null.
Json AccuracyJson(const workloads::Accuracy& a, const workloads::EvalSet& set) {
  auto number = [](double value) { return std::isfinite(value) ? Json(value) : Json(); };
  Json j = {{"metric", workloads::MetricKindName(a.kind)},
            {"loss", number(a.loss)},
            {"distance_ok", a.distance_ok},
            {"max_relative_l2", workloads::kMaxRelativeL2},
            {"items", a.items},
            {"batches", set.batches},
            {"cosine", number(a.cosine)},
            {"relative_l2", number(a.relative_l2)},
            {"max_abs_error", number(a.max_abs_error)}};
  j["top1_agreement"] = a.top1_agreement;
  if (a.top5_agreement) j["top5_agreement"] = *a.top5_agreement;
  if (a.class_agreement) j["class_agreement"] = *a.class_agreement;
  if (a.agreement_at_half) j["agreement_at_0_5"] = *a.agreement_at_half;
  return j;
}

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  size_t newline = text.rfind('\n');
  return newline == std::string::npos ? text : text.substr(newline + 1);
}

at::Tensor FirstTensor(const torch::jit::IValue& output) {
  if (output.isTensor()) return output.toTensor();
  if (output.isTuple() && !output.toTupleRef().elements().empty()) {
    return FirstTensor(output.toTupleRef().elements()[0]);
  }
  throw Error(ErrorCode::kUnsupported, "the model's output is not a tensor or a tuple of tensors");
}

// A switch in the environment: set, and neither empty nor 0.
bool EnvFlag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}

// workloads::ExecutableHash(), read once: it reads the whole executable.
const std::string& ThisExecutableHash() {
  static const std::string hash = workloads::ExecutableHash();
  return hash;
}

// IPT_NO_MODEL_CACHE=1 builds built-in workloads in the process.
bool ModelCacheDisabled() { return EnvFlag("IPT_NO_MODEL_CACHE"); }

// A built-in workload's model from the model cache (IPT_CACHE_DIR, XDG_CACHE_HOME or HOME:
// workloads/model_cache.h), which builds and stores it when it has none, with its ModelHash.
// With the cache disabled it is built here, through the same serialization, so that the model
// hash does not depend on the cache.
workloads::CachedModel BuildThroughCache(const workloads::Workload& workload) {
  const bool disabled = ModelCacheDisabled();
  return workloads::LoadOrBuildModel(
      disabled ? std::filesystem::path()
               : workloads::ModelCacheDir(std::getenv("IPT_CACHE_DIR"),
                                          std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")),
      disabled
          ? workloads::ModelKey()
          : workloads::MakeModelKey(workload, platform::kIpexTuneVersion, ThisExecutableHash()),
      [&workload] { return workload.BuildModel(); });
}

struct CommonOptions {
  std::string workload;
  std::string model;                // a user's TorchScript file instead of a workload
  std::vector<std::string> inputs;  // its inputs, NAME:SHAPE[:DTYPE]
  int64_t batch = 0;                // 0: the recipe's
  int64_t threads = 0;              // 0: the recipe's, else every allowed CPU
  // "latency": one call at a time, a multi-stream candidate cutting each batch over its
  // streams. "throughput": a multi-stream candidate keeps every stream busy with a whole batch
  // of its own, so one timed call is one batch per stream.
  std::string scenario = "latency";
  core::MeasureOptions measure;
  int64_t eval_items = 0;  // 0: workloads::DefaultEvalSet
  // trial only: the least share of the process's life spent in timed blocks; the minimum
  // measuring time grows with the set-up to keep it (core::MeasuringForShare). 0: off.
  double measure_share = 0;
};

void AddCommonOptions(CLI::App* cmd, CommonOptions& o) {
  auto* workload = cmd->add_option("--workload", o.workload, "Workload name");
  auto* model = cmd->add_option("--model", o.model, "TorchScript file to use as the workload");
  cmd->add_option("--input", o.inputs, "Input of --model: NAME:SHAPE[:DTYPE] (repeatable)")
      ->needs(model);
  workload->excludes(model);
  cmd->callback([cmd, workload, model] {
    if (workload->count() == 0 && model->count() == 0) {
      throw CLI::RequiredError(cmd->get_name() + ": --workload or --model");
    }
  });
  cmd->add_option("--batch", o.batch, "Batch size (overrides the recipe's)");
  cmd->add_option("--threads", o.threads, "Threads (overrides the recipe's)");
  cmd->add_option("--scenario", o.scenario,
                  "latency (a batch cut over the streams) or throughput (a batch per stream)")
      ->check(CLI::IsMember({"latency", "throughput"}))
      ->capture_default_str();
  cmd->add_option("--warmup-s", o.measure.warmup_s, "Warm-up seconds per candidate");
  cmd->add_option("--block-s", o.measure.block_s, "Seconds per timed block");
  cmd->add_option("--min-blocks", o.measure.min_blocks, "Minimum timed blocks per candidate");
  cmd->add_option("--min-time-s", o.measure.min_total_s, "Minimum measured seconds per candidate");
  cmd->add_option("--min-calls", o.measure.min_calls, "Minimum timed calls per candidate");
  cmd->add_option("--max-time-s", o.measure.max_total_s,
                  "Ceiling on measured seconds per candidate");
  cmd->add_option("--eval-items", o.eval_items,
                  "Items of the evaluation set at least (default: the workload's default set)")
      ->check(CLI::PositiveNumber);
}

// One candidate of a trial or bench: an optimised model with its batch and threads.
struct Prepared {
  std::string name;
  std::shared_ptr<core::OptimizedModel> model;
  // The model's forward as the recipe runs it on one stream (runtime.micro_batch).
  core::StreamExecutor::Forward forward;
  // A multi-stream recipe runs on its streams; null: one stream, on the calling thread.
  std::shared_ptr<core::StreamExecutor> streams;
  int64_t batch;
  int64_t threads;
  std::vector<torch::jit::IValue> inputs;
  double optimize_s;
  double first_call_ms;
  Json accuracy;
  // A stock baseline: the libtorch path it chose, and what each path measured when choosing.
  std::string path;
  Json paths;
  // What in the recipe this process does not match (core::RecipeWarnings).
  std::vector<std::string> warnings;
  // Static int8: where its quantization parameters came from (calibration cache); null otherwise.
  Json calibration_source = Json();
  // precision.auto_fallback: the search's report (Session::OptimizeWithAutoFallback); null
  // otherwise.
  Json auto_fallback = Json();

  torch::jit::IValue Run(const std::vector<torch::jit::IValue>& inputs) const {
    return streams ? streams->Run(inputs) : forward(inputs);
  }
  // One timed call of the scenario: a batch, or with `throughput` a batch on every stream.
  void RunScenario(const std::string& scenario) const {
    if (!streams || scenario != "throughput") {
      Run(inputs);
      return;
    }
    std::vector<std::future<torch::jit::IValue>> calls;
    for (size_t i = 0; i < streams->streams(); ++i) calls.push_back(streams->Submit(inputs));
    for (auto& call : calls) call.get();
  }
  int64_t ItemsPerCall(const std::string& scenario) const {
    return streams && scenario == "throughput" ? batch * static_cast<int64_t>(streams->streams())
                                               : batch;
  }
};

const char* const kBaselines = "stock, stock-bf16, stock-int8";

// One of libtorch's own ways to run a model: a recipe for core::Optimize, or libtorch's own
// int8 quantization (core::QuantizeStockInt8) when `int8` is set.
struct StockPath {
  std::string name;
  recipes::Recipe recipe;
  std::optional<core::StockInt8Mode> int8;
};

// libtorch's own ways to run a model, among which a stock baseline takes the fastest here:
// stock = fp32 eval, frozen, or frozen + optimize_for_inference (usually fastest, not always);
// stock-bf16 = the model cast to bf16 and frozen, with or without optimize_for_inference (which
// made BERT bf16 up to 2x slower);
// stock-int8 = libtorch's graph-mode quantization (the passes behind quantize_jit), static or
// dynamic: dynamic leaves convolutions in fp32, static BERT runs every layer_norm, softmax and
// gelu in fp32 between dequantize and quantize, so either may win.
std::vector<StockPath> StockPaths(const std::string& baseline) {
  recipes::Recipe optimized = core::StockRecipe();
  recipes::Recipe frozen = optimized;
  frozen.optimize.optimize_for_inference = false;
  if (baseline == "stock") {
    recipes::Recipe eval = frozen;
    eval.optimize.freeze = false;
    eval.optimize.fold_conv_bn = false;
    return {{"eval", eval, {}},
            {"frozen", frozen, {}},
            {"frozen+optimize_for_inference", optimized, {}}};
  }
  if (baseline == "stock-bf16") {
    frozen.precision.dtype = optimized.precision.dtype = recipes::Dtype::kBf16;
    return {{"bf16 frozen", frozen, {}}, {"bf16 frozen+optimize_for_inference", optimized, {}}};
  }
  if (baseline == "stock-int8") {
    return {{"int8 static (libtorch graph mode)", {}, core::StockInt8Mode::kStatic},
            {"int8 dynamic (libtorch graph mode)", {}, core::StockInt8Mode::kDynamic}};
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown baseline '{}' (known: {})", baseline, kBaselines));
}

class Session {
 public:
  // Where `recipe`'s calibration (and automatic fallback search) is cached, and under which
  // key; both empty when there is no cache or IPT_NO_CALIBRATION_CACHE=1 (`disabled`).
  struct CalibrationCacheEntry {
    std::filesystem::path dir;
    std::string key;
    bool disabled = false;
  };

  explicit Session(const CommonOptions& o) : options_(o) {
    auto start = Clock::now();
    workloads::WorkloadOptions workload_options;
    workload_options.model_path = o.model;
    for (const std::string& spec : o.inputs) {
      workload_options.inputs.push_back(recipes::ParseInputSpec(spec));
    }
    workload_ = o.model.empty() ? workloads::MakeWorkload(o.workload, workload_options)
                                : workloads::MakeUserModel(workload_options);
    Emit({{"type", "progress"}, {"phase", "build"}, {"workload", workload_->name()}});
    auto model_start = Clock::now();
    if (o.model.empty()) {
      const bool disabled = ModelCacheDisabled();
      workloads::CachedModel cached = BuildThroughCache(*workload_);
      module_ = std::move(cached.module);
      model_hash_ = std::move(cached.model_hash);
      model_source_ = {
          {"cache", disabled ? "disabled" : workloads::CacheOutcomeName(cached.outcome)},
          {"file", cached.file.string()}};
      if (!disabled && !cached.warning.empty()) {
        model_source_["warning"] = cached.warning;
        Emit({{"type", "progress"}, {"phase", "build"}, {"warning", cached.warning}});
      }
    } else {
      // The user's file, loaded already: nothing to cache.
      module_ = workload_->BuildModel();
      model_source_ = {{"cache", "user_model"}, {"file", o.model}};
    }
    model_source_["seconds"] = SecondsSince(model_start);
    build_s_ = SecondsSince(start);
  }

  Prepared Prepare(const std::string& name, const recipes::Recipe& recipe) {
    // One key for the recipe's calibration, fallback search and accuracy check.
    const CalibrationCacheEntry cache = CalibrationCacheFor(recipe);
    Json calibration_source;
    Json search;
    Prepared prepared = Prepare(
        name, recipe,
        [&](int64_t batch) {
          return recipe.precision.auto_fallback
                     ? OptimizeWithAutoFallback(recipe, batch, cache, calibration_source, search)
                     : OptimizeThroughCalibrationCache(recipe, cache, calibration_source);
        },
        &cache);
    prepared.calibration_source = std::move(calibration_source);
    prepared.auto_fallback = std::move(search);
    return prepared;
  }

  // precision.auto_fallback: the int8 model with the fewest ops kept out of int8 (in the
  // recipe's fallback_dtype, beyond its own fallback list) whose accuracy loss on the evaluation
  // set is within the target. Each op's sensitivity is the relative L2 distance from the fp32
  // reference with that op alone in int8; ops are kept most sensitive first, and the shortest such
  // prefix that meets the target is found by bisection (the loss falls as ops are kept, up to
  // noise). Every variant reuses the parameters calibrated for the full model: a subset of ops
  // quantizes exactly as it would on its own, since calibration observes the fp32 graph. `search`
  // reports what was done.
  core::OptimizedModel OptimizeWithAutoFallback(const recipes::Recipe& recipe, int64_t batch,
                                                const CalibrationCacheEntry& cache,
                                                Json& calibration_source, Json& search) {
    const auto start = Clock::now();
    const double target = *recipe.precision.auto_fallback;
    recipes::Recipe base = recipe;
    base.precision.auto_fallback.reset();
    // `cache` is base's too: calibration keys leave auto_fallback and qparams out.
    core::OptimizedModel model = OptimizeThroughCalibrationCache(base, cache, calibration_source);
    if (model.applied().qparams) base.precision.qparams = model.applied().qparams;
    const workloads::EvalSet set = EvalSetFor(batch);
    const std::string search_key = workloads::FallbackSearchKey(
        cache.key, base.precision.fallback_dtype, target, set.batch, set.batches);
    workloads::CachedFallbackSearch cached = workloads::FindFallbackSearch(cache.dir, search_key);
    if (!cached.warning.empty()) {
      Emit({{"type", "progress"}, {"phase", "fallback"}, {"warning", cached.warning}});
    }
    auto keeping = [&](const std::vector<std::string>& ops) {
      recipes::Recipe r = base;
      r.precision.fallback.insert(r.precision.fallback.end(), ops.begin(), ops.end());
      return core::Optimize(module_, r);
    };
    if (cached.kept) {
      search = Json::parse(cached.report);
      search["cache"] = "hit";
      return cached.kept->empty() ? std::move(model) : keeping(*cached.kept);
    }
    const at::Tensor& reference = Reference(set);
    int64_t evaluations = 0;
    auto accuracy = [&](core::OptimizedModel& m) {
      ++evaluations;
      return workloads::CompareOutputs(
          workload_->Metric(), reference,
          workloads::RunEvalSet(*workload_, set, [&m](const std::vector<torch::jit::IValue>& in) {
            return m.Run(in);
          }));
    };
    auto meets = [target](const workloads::Accuracy& a) {
      return a.distance_ok && a.loss <= target;
    };
    auto progress = [](const std::string& what, size_t step, size_t of) {
      Emit({{"type", "progress"},
            {"phase", "fallback"},
            {"what", what},
            {"step", step},
            {"of", of}});
    };
    const workloads::Accuracy all = accuracy(model);
    search = {{"max_loss", target}, {"loss_all_int8", all.loss}};
    std::vector<std::string> kept;
    bool met = meets(all);
    if (!met) {
      const std::vector<std::string> ops = model.applied().quantized;
      std::vector<std::pair<double, std::string>> sensitivity;
      for (size_t i = 0; i < ops.size(); ++i) {
        progress("sensitivity of " + ops[i], i + 1, ops.size());
        std::vector<std::string> others = ops;
        others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
        core::OptimizedModel alone = keeping(others);
        sensitivity.emplace_back(accuracy(alone).relative_l2, ops[i]);
      }
      std::stable_sort(sensitivity.begin(), sensitivity.end(),
                       [](const auto& a, const auto& b) { return a.first > b.first; });
      auto prefix = [&](size_t n) {
        std::vector<std::string> names;
        for (size_t i = 0; i < n; ++i) names.push_back(sensitivity[i].second);
        return names;
      };
      // lo fails (nothing kept), hi is the shortest prefix known to meet the target.
      size_t lo = 0;
      size_t hi = sensitivity.size();
      std::optional<core::OptimizedModel> best;
      while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        progress(
            fmt::format("{} ops kept in {}", mid, recipes::ToString(base.precision.fallback_dtype)),
            mid, sensitivity.size());
        core::OptimizedModel candidate = keeping(prefix(mid));
        if (meets(accuracy(candidate))) {
          hi = mid;
          best.emplace(std::move(candidate));
        } else {
          lo = mid;
        }
      }
      kept = prefix(hi);
      if (best) {
        model = std::move(*best);
        met = true;
      } else {
        // Nothing shorter met the target, and bisection never tried every op kept.
        model = keeping(kept);
        met = meets(accuracy(model));
      }
      Json ranked = Json::array();
      for (const auto& [distance, op] : sensitivity) {
        ranked.push_back({{"op", op}, {"relative_l2", distance}});
      }
      search["sensitivity"] = std::move(ranked);
    }
    search["kept"] = kept;
    search["met"] = met;
    search["evaluations"] = evaluations;
    search["seconds"] = SecondsSince(start);
    const std::string why =
        workloads::StoreFallbackSearch(cache.dir, search_key, kept, search.dump());
    search["cache"] = CacheState(cache, cached.outcome, why);
    if (!cached.warning.empty()) search["warning"] = cached.warning;
    return model;
  }

  // The same with the model made by `make` (given the batch) instead of core::Optimize; the
  // recipe still gives batch and threads.
  // With `accuracy_cache`, the accuracy check's result is read from the accuracy cache
  // (workloads/trial_cache.h) when the same numbers were judged before, and stored there when
  // not: only for a model core::Optimize made from `recipe` alone.
  Prepared Prepare(const std::string& name, const recipes::Recipe& recipe,
                   const std::function<core::OptimizedModel(int64_t batch)>& make,
                   const CalibrationCacheEntry* accuracy_cache = nullptr) {
    int64_t batch = options_.batch > 0 ? options_.batch : recipe.workload.batch;
    // A recipe never gets more threads than the CPUs this process was given.
    int64_t allowed = AllowedCpuCount();
    int64_t threads = options_.threads > 0         ? options_.threads
                      : recipe.runtime.threads > 0 ? std::min(recipe.runtime.threads, allowed)
                                                   : allowed;
    core::SetThreads(threads);
    Emit({{"type", "progress"}, {"phase", "optimize"}, {"candidate", name}});
    auto start = Clock::now();
    auto model = std::make_shared<core::OptimizedModel>(make(batch));
    // One stream runs on this thread with the process's CPUs, which the tuner bound; more
    // streams get threads of their own, each team pinned to its share of those CPUs.
    const recipes::Runtime& rt = recipe.runtime;
    // Read from the graph only when a call is cut at all: every candidate pays for it.
    std::vector<recipes::InputSplit> split = rt.split;
    if (split.empty() && (rt.streams > 1 || rt.micro_batch > 0)) split = core::InferSplit(module_);
    core::StreamExecutor::Forward forward = core::MicroBatched(
        [model](const std::vector<torch::jit::IValue>& in) { return model->Run(in); },
        rt.micro_batch, split);
    std::shared_ptr<core::StreamExecutor> streams;
    if (rt.streams > 1) {
      streams = std::make_shared<core::StreamExecutor>(
          core::PlanRuntime(rt, {}, Machine().topology), forward, split,
          rt.binding != recipes::Binding::kNone);
      threads = 0;
      for (const core::StreamBinding& b : streams->bindings()) threads += b.threads;
    }
    double optimize_s = SecondsSince(start);
    Prepared prepared{name,
                      model,
                      forward,
                      streams,
                      batch,
                      threads,
                      {},
                      optimize_s,
                      0,
                      Json(),
                      "",
                      Json(),
                      core::RecipeWarnings(recipe, Machine())};
    std::vector<torch::jit::IValue> inputs = workload_->MakeInputs(batch, 0);
    start = Clock::now();
    torch::jit::IValue first_output = prepared.Run(inputs);
    double first_call_ms = SecondsSince(start) * 1e3;
    // The evaluation set's batch 0 is `inputs`: the first call's output counts.
    const workloads::EvalSet eval_set = EvalSetFor(batch);
    const CalibrationCacheEntry cache = accuracy_cache ? *accuracy_cache : CalibrationCacheEntry{};
    const std::string accuracy_key = workloads::AccuracyKey(cache.key, recipe, threads, rt.streams,
                                                            eval_set.batch, eval_set.batches);
    const workloads::CachedDocument cached = workloads::FindAccuracy(cache.dir, accuracy_key);
    Json accuracy;
    if (cached.json) {
      accuracy = Json::parse(*cached.json);
      accuracy["eval_s"] = 0.0;
      accuracy["cache"] = {{"cache", "hit"}, {"file", cached.file.string()}};
    } else {
      start = Clock::now();
      std::vector<at::Tensor> outputs = {workloads::OutputTensor(first_output)};
      for (int64_t i = 1; i < eval_set.batches; ++i) {
        outputs.push_back(workloads::OutputTensor(prepared.Run(workload_->MakeInputs(batch, i))));
      }
      const double eval_s = SecondsSince(start);
      const at::Tensor& reference = Reference(eval_set);
      accuracy = AccuracyJson(
          workloads::CompareOutputs(workload_->Metric(), reference, at::cat(outputs)), eval_set);
      const std::string why = workloads::StoreAccuracy(cache.dir, accuracy_key, accuracy.dump());
      accuracy["eval_s"] = eval_s;
      accuracy["reference"] = reference_source_;
      if (accuracy_cache) {
        accuracy["cache"] = {{"cache", CacheState(cache, cached.outcome, why)},
                             {"file", cached.file.string()}};
        if (!cached.warning.empty()) accuracy["cache"]["warning"] = cached.warning;
      }
    }
    prepared.inputs = std::move(inputs);
    prepared.first_call_ms = first_call_ms;
    prepared.accuracy = std::move(accuracy);
    return prepared;
  }

  // How a lookup in `cache` ended, for results: "disabled", "not_stored" when the store after
  // a miss failed (`store_error`), else the lookup's outcome.
  static const char* CacheState(const CalibrationCacheEntry& cache, workloads::CacheOutcome found,
                                const std::string& store_error) {
    if (cache.disabled) return "disabled";
    return store_error.empty() ? workloads::CacheOutcomeName(found)
                               : workloads::CacheOutcomeName(workloads::CacheOutcome::kNotStored);
  }

  CalibrationCacheEntry CalibrationCacheFor(const recipes::Recipe& recipe) {
    CalibrationCacheEntry entry;
    entry.disabled = EnvFlag("IPT_NO_CALIBRATION_CACHE");
    if (entry.disabled) return entry;
    entry.dir = workloads::CalibrationCacheDir(std::getenv("IPT_CACHE_DIR"),
                                               std::getenv("XDG_CACHE_HOME"), std::getenv("HOME"));
    if (!entry.dir.empty()) {
      entry.key = workloads::CalibrationKey(ThisExecutableHash(), model_hash(), workload_->name(),
                                            kernels::QueryOneDnn().effective_isa, recipe);
    }
    return entry;
  }

  // core::Optimize, with a static int8 recipe's parameters from the calibration cache
  // (IPT_CACHE_DIR, XDG_CACHE_HOME or HOME: workloads/trial_cache.h) when it has them, and
  // stored there when they were calibrated. `source` says which (null when nothing calibrates).
  core::OptimizedModel OptimizeThroughCalibrationCache(const recipes::Recipe& recipe,
                                                       const CalibrationCacheEntry& cache,
                                                       Json& source) {
    auto calibrate = [&](int64_t batch, int64_t index) {
      return workload_->MakeCalibrationInputs(batch, index);
    };
    if (recipe.precision.dtype != recipes::Dtype::kInt8 || recipe.precision.qparams) {
      return core::Optimize(module_, recipe, calibrate);
    }
    workloads::CachedCalibration cached = workloads::FindCalibration(cache.dir, cache.key);
    if (!cached.warning.empty()) {
      Emit({{"type", "progress"}, {"phase", "calibrate"}, {"warning", cached.warning}});
    }
    if (cached.qparams) {
      recipes::Recipe with_qparams = recipe;
      with_qparams.precision.qparams = cached.qparams;
      source = {{"cache", "hit"}, {"file", cached.file.string()}};
      return core::Optimize(module_, with_qparams, calibrate);
    }
    core::OptimizedModel model = core::Optimize(module_, recipe, calibrate);
    // Without a cache (no directory, or disabled) there was nothing to write.
    const bool has_cache = !cache.dir.empty() && !cache.key.empty();
    const std::string why =
        has_cache && model.applied().qparams
            ? workloads::StoreCalibration(cache.dir, cache.key, *model.applied().qparams)
            : std::string();
    source = {{"cache", CacheState(cache, cached.outcome, why)}, {"file", cached.file.string()}};
    if (!cached.warning.empty()) source["warning"] = cached.warning;
    if (!why.empty()) source["warning"] = "calibration cache not written: " + why;
    return model;
  }

  // The fastest of the baseline's stock paths, chosen by a short interleaved measurement
  // (a quarter of the full one); the choice and each path's figure go into the result.
  // A path libtorch cannot apply to this model (stock-int8 on a model its passes cannot
  // quantize) is skipped with its reason among the figures; none left is an error.
  Prepared PrepareBaseline(const std::string& baseline) {
    std::vector<Prepared> prepared;
    Json skipped = Json::array();
    for (const StockPath& path : StockPaths(baseline)) {
      if (!path.int8) {
        prepared.push_back(Prepare(path.name, path.recipe));
        continue;
      }
      try {
        prepared.push_back(Prepare(path.name, path.recipe, [&](int64_t batch) {
          return core::QuantizeStockInt8(module_, CalibrationBatches(batch), *path.int8);
        }));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnsupported) throw;
        skipped.push_back({{"path", path.name}, {"skipped", e.what()}});
      } catch (const c10::Error& e) {
        // Quantized by libtorch, but its quantized ops refuse to run these inputs.
        skipped.push_back(
            {{"path", path.name},
             {"skipped", "fails on its first call: " + LastLine(e.what_without_backtrace())}});
      } catch (const std::exception& e) {
        skipped.push_back(
            {{"path", path.name}, {"skipped", "fails on its first call: " + LastLine(e.what())}});
      }
    }
    if (prepared.empty()) {
      std::string reasons;
      for (const Json& s : skipped) {
        reasons +=
            fmt::format("; {}: {}", s["path"].get<std::string>(), s["skipped"].get<std::string>());
      }
      throw Error(ErrorCode::kUnsupported, fmt::format("no path of baseline {} works for '{}'{}",
                                                       baseline, workload_->name(), reasons));
    }
    size_t best = 0;
    Json figures = Json::array();
    if (prepared.size() > 1) {
      core::MeasureOptions quick = options_.measure;
      quick.min_total_s = std::max(0.2, quick.min_total_s / 4);
      quick.min_blocks = 3;
      quick.min_calls = 3;
      quick.warmup_s = std::min(quick.warmup_s, 0.3);
      std::vector<core::MeasureResult> results = Measure(prepared, quick);
      for (size_t i = 0; i < results.size(); ++i) {
        figures.push_back({{"path", prepared[i].name},
                           {"items_per_s", results[i].ItemsPerSecond()},
                           {"median_ms", results[i].MedianMs()}});
        if (results[i].ItemsPerSecond() > results[best].ItemsPerSecond()) best = i;
      }
    }
    for (Json& s : skipped) figures.push_back(std::move(s));
    Prepared chosen = std::move(prepared[best]);
    chosen.path = chosen.name;
    chosen.name = baseline;
    chosen.paths = std::move(figures);
    return chosen;
  }

  std::vector<core::MeasureResult> Measure(std::vector<Prepared>& prepared) {
    return Measure(prepared, options_.measure);
  }

  std::vector<core::MeasureResult> Measure(std::vector<Prepared>& prepared,
                                           const core::MeasureOptions& options) {
    std::vector<core::Candidate> candidates;
    std::vector<int64_t> items;
    for (Prepared& p : prepared) {
      candidates.push_back([&p, scenario = options_.scenario] {
        if (!p.streams && at::get_num_threads() != p.threads) core::SetThreads(p.threads);
        p.RunScenario(scenario);
      });
      items.push_back(p.ItemsPerCall(options_.scenario));
    }
    Emit({{"type", "progress"}, {"phase", "measure"}});
    return core::MeasureInterleaved(candidates, items, options,
                                    [&](size_t i, size_t blocks, double elapsed) {
                                      Emit({{"type", "progress"},
                                            {"phase", "measure"},
                                            {"candidate", prepared[i].name},
                                            {"blocks", blocks},
                                            {"elapsed_s", elapsed}});
                                    });
  }

  // The evaluation set accuracy is judged on at `batch`: --eval-items, or the workload's default.
  workloads::EvalSet EvalSetFor(int64_t batch) const {
    return options_.eval_items > 0 ? workloads::EvalSetOfAtLeast(batch, options_.eval_items)
                                   : workloads::DefaultEvalSet(batch, workload_->FlopsPerItem());
  }

  const workloads::Workload& workload() const { return *workload_; }
  // This machine, read on first use: every candidate's recipe is checked against it.
  const core::Machine& Machine() {
    if (!machine_) machine_ = core::ReadMachine();
    return *machine_;
  }
  const torch::jit::Module& module() const { return module_; }
  double build_s() const { return build_s_; }
  // How module() was obtained: docs/accuracy.md, "The model cache".
  const Json& model_source() const { return model_source_; }
  // ModelHash(module()): the model cache gives a built-in workload's, a user's model is hashed.
  std::string model_hash() const {
    return model_hash_.empty() ? workloads::ModelHash(module_) : model_hash_;
  }

 private:
  // Calibration for stock int8: as many samples as the core's own int8 calibration takes by
  // default, in batches of the measured size, from the workload's calibration inputs (disjoint
  // from the evaluation inputs).
  std::vector<std::vector<torch::jit::IValue>> CalibrationBatches(int64_t batch) const {
    int64_t samples = recipes::Calibration{}.samples;
    std::vector<std::vector<torch::jit::IValue>> batches;
    for (int64_t i = 0; i * batch < samples; ++i)
      batches.push_back(workload_->MakeCalibrationInputs(batch, i));
    return batches;
  }

  // The fp32 outputs of the unoptimised model over `set`, read once per batch size from the
  // reference cache (IPT_CACHE_DIR, XDG_CACHE_HOME or HOME: workloads/accuracy.h), which computes
  // and stores them when it has none. How they were obtained goes to reference_source_.
  const at::Tensor& Reference(const workloads::EvalSet& set) {
    if (reference_ && reference_set_.batch == set.batch && reference_set_.batches == set.batches) {
      return *reference_;
    }
    Emit({{"type", "progress"}, {"phase", "reference"}, {"items", set.items()}});
    auto start = Clock::now();
    if (model_hash_.empty()) model_hash_ = workloads::ModelHash(module_);
    workloads::CachedReference cached = workloads::LoadOrComputeReference(
        workloads::ReferenceCacheDir(std::getenv("IPT_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"),
                                     std::getenv("HOME")),
        workloads::ReferenceKey(model_hash_, *workload_, set), [&] {
          torch::NoGradGuard no_grad;
          torch::jit::Module eval = module_.clone();
          eval.eval();
          return workloads::RunEvalSet(*workload_, set,
                                       [&eval](const std::vector<torch::jit::IValue>& inputs) {
                                         return eval.forward(inputs);
                                       });
        });
    reference_source_ = {{"cache", workloads::CacheOutcomeName(cached.outcome)},
                         {"file", cached.file.string()},
                         {"seconds", SecondsSince(start)}};
    if (!cached.warning.empty()) {
      reference_source_["warning"] = cached.warning;
      Emit({{"type", "progress"}, {"phase", "reference"}, {"warning", cached.warning}});
    }
    reference_ = std::move(cached.outputs);
    reference_set_ = set;
    return *reference_;
  }

  CommonOptions options_;
  std::unique_ptr<workloads::Workload> workload_;
  torch::jit::Module module_;
  double build_s_ = 0;
  std::optional<core::Machine> machine_;
  std::optional<at::Tensor> reference_;
  workloads::EvalSet reference_set_;
  std::string model_hash_;  // of module_: from the model cache, or computed for the first reference
  Json reference_source_;
  Json model_source_;
};

Json CandidateJson(const Prepared& p, const core::MeasureResult& r) {
  Json j = MeasurementJson(r);
  j["name"] = p.name;
  j["batch"] = p.batch;
  j["items_per_call"] = r.items_per_call;
  j["threads"] = p.threads;
  j["optimize_s"] = p.optimize_s;
  j["first_call_ms"] = p.first_call_ms;
  j["accuracy"] = p.accuracy;
  j["applied"] = p.model->applied().ToJson();
  if (!p.warnings.empty()) j["warnings"] = p.warnings;
  if (!p.calibration_source.is_null()) j["calibration_source"] = p.calibration_source;
  if (!p.auto_fallback.is_null()) j["auto_fallback"] = p.auto_fallback;
  if (p.streams) {
    Json streams = Json::array();
    for (const core::StreamBinding& b : p.streams->bindings()) {
      Json applied = Json::array();
      for (const platform::CpuSet& cpus : b.applied) applied.push_back(cpus.ToString());
      streams.push_back(
          {{"cpus", b.cpus.ToString()}, {"threads", b.threads}, {"applied", applied}});
    }
    j["streams"] = std::move(streams);
  }
  if (!p.path.empty()) {
    j["path"] = p.path;
    j["paths"] = p.paths;
  }
  return j;
}

void RunInfo() {
  kernels::OneDnnInfo onednn = kernels::QueryOneDnn();
  const char* capability = std::getenv("ATEN_CPU_CAPABILITY");
  Emit({{"type", "info"},
        {"schema_version", kSchemaVersion},
        {"libtorch", TORCH_VERSION},
        {"onednn", onednn.version},
        {"onednn_isa", onednn.effective_isa},
        {"aten_cpu_capability", capability ? capability : "default"},
        {"threads", at::get_num_threads()},
        {"allowed_cpus", AllowedCpuCount()}});
}

void RunWorkloads(const std::vector<std::string>& names) {
  for (const std::string& name : names.empty() ? workloads::WorkloadNames() : names) {
    auto w = workloads::MakeWorkload(name, {});
    Json inputs = Json::array();
    for (const auto& spec : w->DescribeInputs(1)) {
      inputs.push_back({{"name", spec.name}, {"shape", spec.shape}, {"dtype", spec.dtype}});
    }
    Emit({{"type", "workload"},
          {"name", name},
          {"model_hash", BuildThroughCache(*w).model_hash},
          {"flops_per_item", w->FlopsPerItem()},
          {"inputs", inputs}});
  }
}

// Builds the workload and runs one batch: what a study checks before any trial, so a missing
// file, a bad archive or a wrong input shape fails in seconds with a clear message.
void RunDry(const CommonOptions& o) {
  Session session(o);
  int64_t batch = o.batch > 0 ? o.batch : 1;
  const workloads::Workload& w = session.workload();
  torch::NoGradGuard no_grad;
  torch::jit::Module eval = session.module().clone();
  at::Tensor out;
  try {
    out = FirstTensor(eval.forward(w.MakeInputs(batch, 0)));
  } catch (const std::exception& e) {
    // c10::Error or the interpreter's JITException, whose last line holds libtorch's reason.
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("forward of '{}' fails with the declared inputs: {}", w.name(),
                            LastLine(e.what())));
  }
  Json inputs = Json::array();
  for (const auto& spec : w.DescribeInputs(batch)) inputs.push_back(recipes::FormatInputSpec(spec));
  Emit({{"type", "result"},
        {"workload", w.name()},
        {"batch", batch},
        {"model_hash", session.model_hash()},
        {"flops_per_item", w.FlopsPerItem()},
        {"inputs", inputs},
        {"output_shape", out.sizes().vec()},
        {"build_s", session.build_s()},
        {"model_source", session.model_source()}});
}

// Fault injection for the tuner's tests, which must see real workers crash and hang:
// IPT_FAULT=crash@threads=N or hang@threads=N makes a recipe trial with N threads do so once
// measuring would start. Unset in production; the baseline is never affected.
void InjectFault(const recipes::Recipe& recipe) {
  const char* fault = std::getenv("IPT_FAULT");
  if (fault == nullptr) return;
  std::string spec = fault;
  std::string target = "@threads=" + std::to_string(recipe.runtime.threads);
  if (spec.size() < target.size() ||
      spec.compare(spec.size() - target.size(), target.size(), target) != 0) {
    return;
  }
  std::string mode = spec.substr(0, spec.size() - target.size());
  if (mode == "crash") std::raise(SIGSEGV);
  if (mode == "hang") {
    while (true) pause();
  }
}

// A trial that is one of several worker processes measuring side by side (the tuner's
// multi-instance mode).
struct InstanceOptions {
  int membind = -1;      // NUMA node for this process's memory; -1 leaves the policy alone
  std::string sync_dir;  // where the instances meet before timing; empty when alone
  int sync_count = 0;    // how many meet there
};

// How long an instance waits for the others at the start of timing. The tuner kills every
// instance when one fails, so this only ends a wait nobody will end (a wrong count by hand).
constexpr double kSyncTimeoutS = 300;

// Blocks until `count` instances have reached the start of timing: each leaves a file named
// after its pid in `dir` and waits for the others' files.
void MeetOtherInstances(const std::string& dir, int count) {
  namespace fs = std::filesystem;
  const fs::path mine = fs::path(dir) / ("ready-" + std::to_string(getpid()));
  if (!std::ofstream(mine)) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot write {} to meet the other instances", mine.string()));
  }
  Emit({{"type", "progress"}, {"phase", "sync"}, {"instances", count}});
  auto start = Clock::now();
  while (true) {
    int ready = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename().string().rfind("ready-", 0) == 0) ++ready;
    }
    if (ready >= count) return;
    if (SecondsSince(start) > kSyncTimeoutS) {
      throw Error(ErrorCode::kWorkerFailed,
                  fmt::format("only {} of {} instances reached the start of timing in {}: "
                              "waited {:.0f} s",
                              ready, count, dir, kSyncTimeoutS));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// How far --measure-share may stretch the minimum measuring time (--min-time-s).
constexpr double kMaxShareStretch = 6;

void RunTrial(CommonOptions o, const std::string& recipe_path, const std::string& baseline,
              const InstanceOptions& instance) {
  auto start = Clock::now();
  // Exec, the dynamic loader and libtorch's static initialisers ran before any clock here could.
  const double startup_s = platform::ProcessAgeSeconds(platform::LinuxSystemSource()).value_or(0.0);
  // Before the model exists and before any thread starts, so weights and every OpenMP thread's
  // pages follow the policy.
  std::optional<platform::MemoryBinding> memory;
  if (instance.membind >= 0) memory = platform::BindMemoryToNode(instance.membind);
  if (!instance.sync_dir.empty()) {
    o.measure.before_timing = [&instance] {
      MeetOtherInstances(instance.sync_dir, instance.sync_count);
    };
  }
  if (!baseline.empty()) StockPaths(baseline);  // an unknown name fails before the build
  recipes::Recipe recipe = baseline.empty() ? ReadRecipe(recipe_path) : recipes::Recipe{};
  Session session(o);
  std::vector<Prepared> prepared;
  prepared.push_back(baseline.empty() ? session.Prepare("recipe", recipe)
                                      : session.PrepareBaseline(baseline));
  double setup_s = startup_s + SecondsSince(start);
  if (baseline.empty()) InjectFault(recipe);
  core::MeasureOptions measure = o.measure;
  // The accuracy check has just run the model on its evaluation batches, of the timed size and
  // on these threads: that was warm-up already.
  measure.warmup_s = std::max(0.0, measure.warmup_s - prepared[0].accuracy.value("eval_s", 0.0));
  // Instances measured side by side keep the tuner's minimum: each has its own set-up, and one
  // measuring on alone after the others stopped would count time without contention.
  // At most kMaxShareStretch times the given minimum: a one-off cost (a cold model cache, the
  // first calibration, an automatic fallback search) is not worth minutes of timing.
  if (instance.sync_dir.empty()) {
    measure.min_total_s =
        std::min({measure.max_total_s, kMaxShareStretch * measure.min_total_s,
                  std::max(measure.min_total_s,
                           core::MeasuringForShare(setup_s + measure.warmup_s, o.measure_share))});
  }
  std::vector<core::MeasureResult> results = session.Measure(prepared, measure);
  Json result = CandidateJson(prepared[0], results[0]);
  result["type"] = "result";
  result["schema_version"] = kSchemaVersion;
  result["workload"] = session.workload().name();
  // Read back, not assumed: the OpenMP team size and the CPUs this process was bound to.
  result["threads"] = at::get_num_threads();
  result["cpus"] = platform::LinuxSystemSource().Affinity().ToString();
  result["build_s"] = session.build_s();
  result["model_source"] = session.model_source();
  result["startup_s"] = startup_s;
  result["setup_s"] = setup_s;
  result["min_time_s"] = measure.min_total_s;
  if (memory) {
    result["memory"] = {
        {"node", memory->node}, {"bound", memory->bound}, {"policy", memory->detail}};
    if (!memory->bound) {
      if (!result.contains("warnings")) result["warnings"] = Json::array();
      result["warnings"].push_back("memory not bound: " + memory->detail);
    }
  }
  Emit(result);
}

void RunBench(const CommonOptions& o, const std::vector<std::string>& recipe_paths,
              const std::string& baseline) {
  StockPaths(baseline);  // an unknown name fails before the build
  // Recipes are read before the model is built, so a bad file fails in milliseconds.
  std::vector<recipes::Recipe> recipes;
  for (const std::string& path : recipe_paths) recipes.push_back(ReadRecipe(path));
  Session session(o);
  std::vector<Prepared> prepared;
  prepared.push_back(session.PrepareBaseline(baseline));
  for (size_t i = 0; i < recipes.size(); ++i)
    prepared.push_back(session.Prepare(recipe_paths[i], recipes[i]));
  std::vector<core::MeasureResult> results = session.Measure(prepared);
  Json candidates = Json::array();
  for (size_t i = 0; i < prepared.size(); ++i)
    candidates.push_back(CandidateJson(prepared[i], results[i]));
  Emit({{"type", "result"},
        {"schema_version", kSchemaVersion},
        {"workload", session.workload().name()},
        {"model_hash", session.model_hash()},
        {"model_source", session.model_source()},
        {"candidates", candidates}});
}

int Main(int argc, char** argv) {
  CLI::App app{"ipex-tune-worker: runs what needs libtorch for ipex-tune, answering in JSON lines"};
  app.require_subcommand(1);
  CommonOptions common;
  std::string recipe_path;
  std::string baseline;
  std::vector<std::string> recipe_paths;
  std::vector<std::string> names;
  auto* info = app.add_subcommand("info", "Library versions, ISA and threads");
  auto* list = app.add_subcommand("workloads", "Known workloads with model hash and FLOPs");
  list->add_option("names", names, "Only these workloads");
  auto* dry = app.add_subcommand("dry-run", "Build a workload and run one batch");
  AddCommonOptions(dry, common);
  auto* trial = app.add_subcommand("trial", "Optimise with one recipe and measure it");
  AddCommonOptions(trial, common);
  auto* recipe_opt = trial->add_option("--recipe", recipe_path, "Recipe YAML file, '-' for stdin");
  trial
      ->add_option("--baseline", baseline,
                   fmt::format("Measure a baseline ({}) instead of a recipe", kBaselines))
      ->excludes(recipe_opt);
  trial
      ->add_option("--measure-share", common.measure_share,
                   "Least share of this process's time spent measuring: the minimum measured "
                   "time grows to set-up x F / (1 - F), up to 6 x --min-time-s (0: off)")
      ->check(CLI::Range(0.0, 0.95));
  InstanceOptions instance;
  trial->add_option("--membind", instance.membind,
                    "Bind this process's memory to a NUMA node (the result says if the kernel "
                    "refused)");
  auto* sync_dir = trial->add_option(
      "--sync-dir", instance.sync_dir,
      "Folder where instances measured side by side meet before timing (with --sync-count)");
  trial->add_option("--sync-count", instance.sync_count, "How many instances meet in --sync-dir")
      ->check(CLI::PositiveNumber)
      ->needs(sync_dir);
  sync_dir->needs(trial->get_option("--sync-count"));
  auto* bench = app.add_subcommand("bench", "Measure recipes and a baseline interleaved");
  AddCommonOptions(bench, common);
  bench->add_option("--recipe", recipe_paths, "Recipe YAML files")->required();
  std::string bench_baseline = "stock";
  bench->add_option("--baseline", bench_baseline,
                    fmt::format("Baseline to compare against ({})", kBaselines));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*info) RunInfo();
    if (*list) RunWorkloads(names);
    if (*dry) RunDry(common);
    if (*trial) {
      if (recipe_path.empty() && baseline.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "trial needs --recipe or --baseline");
      }
      RunTrial(common, recipe_path, baseline, instance);
    }
    if (*bench) RunBench(common, recipe_paths, bench_baseline);
  } catch (const Error& e) {
    Emit({{"type", "error"}, {"code", ErrorCodeName(e.code())}, {"message", e.what()}});
    return e.code() == ErrorCode::kInvalidArgument || e.code() == ErrorCode::kNotFound ? 2 : 3;
  } catch (const std::exception& e) {
    Emit({{"type", "error"}, {"code", "internal"}, {"message", e.what()}});
    return 3;
  }
  return 0;
}

}  // namespace
}  // namespace ipt

int main(int argc, char** argv) { return ipt::Main(argc, argv); }
