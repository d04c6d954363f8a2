// serve: a minimal production program on ipex-tune's runtime library. It loads a TorchScript
// model with the recipe `ipex-tune --export` wrote for it, prints what the runtime did, then
// runs requests on inputs made up from the recipe's declared inputs and prints their latency.
//
//   serve MODEL.pt RECIPE.yaml [--requests N] [--save-optimized OUT.pt]
//   serve --optimized OUT.pt [--requests N]
//
// --save-optimized writes the optimised model with its recipe into one file; --optimized loads
// such a file, so a service restarts without optimising (or calibrating) again.
// Copy this file as a starting point: replace MakeInputs with your own request data.
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "core/runtime.h"
#include "recipes/recipe_yaml.h"

namespace {

struct Args {
  std::string model;
  std::string recipe;
  std::string optimized;       // --optimized: a file written by --save-optimized
  std::string save_optimized;  // --save-optimized
  int requests = 100;
};

constexpr const char* kUsage =
    "usage: serve MODEL.pt RECIPE.yaml [--requests N] [--save-optimized OUT.pt]\n"
    "       serve --optimized OUT.pt [--requests N]\n";

// Returns false (after printing why) when the command line is not one of the two forms.
bool ParseArgs(int argc, char** argv, Args& args) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool has_value = i + 1 < argc;
    if (a == "--requests" && has_value) {
      args.requests = std::atoi(argv[++i]);
    } else if (a == "--save-optimized" && has_value) {
      args.save_optimized = argv[++i];
    } else if (a == "--optimized" && has_value) {
      args.optimized = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      std::cerr << "serve: unknown or incomplete option '" << a << "'\n" << kUsage;
      return false;
    } else {
      positional.push_back(a);
    }
  }
  bool ok = args.optimized.empty() ? positional.size() == 2 : positional.empty();
  if (!ok || args.requests < 1) {
    std::cerr << kUsage;
    return false;
  }
  if (args.optimized.empty()) {
    args.model = positional[0];
    args.recipe = positional[1];
  }
  return true;
}

// One tensor per input the recipe declares (`ipex-tune --model F --input NAME:SHAPE:DTYPE`
// records them under workload.inputs), with dimension 0 set to the recipe's batch. Floating
// inputs are random; integer inputs (token ids, indices) are zeros, which every embedding
// accepts.
std::vector<torch::jit::IValue> MakeInputs(const ipt::recipes::Recipe& recipe) {
  const ipt::recipes::WorkloadRef& workload = recipe.workload;
  if (workload.inputs.empty()) {
    throw ipt::Error(ipt::ErrorCode::kInvalidArgument,
                     "the recipe declares no inputs (workload.inputs): it was not exported for a "
                     "model file, so this example cannot make up requests for it");
  }
  std::vector<torch::jit::IValue> inputs;
  for (const ipt::recipes::InputSpec& spec : workload.inputs) {
    std::vector<int64_t> shape = spec.shape;
    if (!shape.empty()) shape[0] = workload.batch;
    if (spec.dtype == "float32") {
      inputs.emplace_back(torch::randn(shape));
    } else if (spec.dtype == "bfloat16") {
      inputs.emplace_back(torch::randn(shape).to(torch::kBFloat16));
    } else if (spec.dtype == "int64") {
      inputs.emplace_back(torch::zeros(shape, torch::kLong));
    } else if (spec.dtype == "int32") {
      inputs.emplace_back(torch::zeros(shape, torch::kInt));
    } else if (spec.dtype == "bool") {
      inputs.emplace_back(torch::zeros(shape, torch::kBool));
    } else {
      throw ipt::Error(ipt::ErrorCode::kInvalidArgument,
                       "input '" + spec.name + "' has dtype '" + spec.dtype +
                           "', which this example does not make up");
    }
  }
  return inputs;
}

// "[8, 4] Float", or "(a, b)" for a tuple of outputs.
std::string Describe(const torch::jit::IValue& value) {
  if (value.isTensor()) {
    const torch::Tensor& t = value.toTensor();
    return c10::str(t.sizes(), " ", t.scalar_type());
  }
  if (value.isTuple() || value.isList()) {
    std::vector<torch::jit::IValue> items =
        value.isTuple() ? value.toTupleRef().elements().vec() : value.toListRef().vec();
    std::string text = value.isTuple() ? "(" : "[";
    for (size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + Describe(items[i]);
    return text + (value.isTuple() ? ")" : "]");
  }
  return value.tagKind();
}

// What Load did: its times, the streams laid over the CPUs, the CPU each stream thread was
// really pinned to, and what the recipe asked that this process does not have.
void PrintReport(const ipt::core::RuntimeReport& report) {
  std::cout << "load: " << report.load_ms << " ms, optimize: " << report.optimize_ms << " ms\n";
  std::cout << "plan:\n";
  std::istringstream plan(report.plan);
  for (std::string line; std::getline(plan, line);) {
    if (!line.empty()) std::cout << "  " << line << "\n";
  }
  for (size_t i = 0; i < report.streams.size(); ++i) {
    const ipt::core::StreamBinding& stream = report.streams[i];
    std::cout << "stream " << i << ": " << stream.threads << " thread(s) pinned to";
    if (stream.applied.empty()) std::cout << " nothing (not bound)";
    for (const ipt::platform::CpuSet& cpus : stream.applied)
      std::cout << " {" << cpus.ToString() << "}";
    std::cout << "\n";
  }
  for (const std::string& warning : report.warnings) std::cout << "warning: " << warning << "\n";
}

int Serve(const Args& args) {
  // Load: either the model and the recipe (optimising now), or a previously saved optimised
  // model, which carries its recipe. RuntimeOptions{} uses every CPU this process may use.
  std::unique_ptr<ipt::core::Runtime> runtime;
  if (args.optimized.empty()) {
    ipt::recipes::Recipe recipe = ipt::recipes::LoadRecipe(args.recipe);
    runtime = ipt::core::Runtime::Load(args.model, recipe);
  } else {
    runtime = ipt::core::Runtime::LoadOptimized(args.optimized);
  }
  PrintReport(runtime->report());
  std::cout << "precision: " << ipt::recipes::ToString(runtime->recipe().precision.dtype)
            << ", batch: " << runtime->recipe().workload.batch << "\n";

  if (!args.save_optimized.empty()) {
    runtime->SaveOptimized(args.save_optimized);
    std::cout << "optimized model written to " << args.save_optimized << "\n";
  }

  // Serve: one request at a time. The first call is slower (it creates the oneDNN primitives);
  // the report records it.
  std::vector<torch::jit::IValue> inputs = MakeInputs(runtime->recipe());
  std::vector<double> latencies_ms;
  torch::jit::IValue output;
  for (int i = 0; i < args.requests; ++i) {
    auto start = std::chrono::steady_clock::now();
    output = runtime->Run(inputs);
    std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    latencies_ms.push_back(elapsed.count());
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  std::cout << "output: " << Describe(output) << "\n"
            << "first call: " << runtime->report().first_call_ms.value_or(0) << " ms\n"
            << "requests: " << args.requests
            << ", median latency: " << latencies_ms[latencies_ms.size() / 2] << " ms\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) return 2;
  // Failures are exceptions: ipt::Error from ipex-tune (a missing file, a recipe this machine
  // cannot follow, each naming the problem), c10::Error from libtorch (inputs the model rejects).
  try {
    return Serve(args);
  } catch (const ipt::Error& e) {
    std::cerr << "serve: error: " << e.what() << "\n";
  } catch (const c10::Error& e) {
    std::cerr << "serve: libtorch error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "serve: error: " << e.what() << "\n";
  }
  return 1;
}
