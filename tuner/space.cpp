#include "tuner/space.h"

#include <fmt/format.h>

#include "base/error.h"
#include "base/sha256.h"
#include "tuner/space_yaml.h"

namespace ipt::tuner {
namespace {

// Threads up to 256: Prune keeps the values this machine can give. Streams share a trial's
// threads, at least one each.
// int8 keeps the ops whose quantization hurts most in fp32 until the study's accuracy target is
// met (auto_fallback: target), so it competes as a feasible candidate rather than one the target
// rules out. Its linears' inputs are smoothed (SmoothQuant, alpha 0.5): at the same speed, that
// took DLRM's agreement from 0.956 to 0.983 and BERT static int8's cosine from 0.991-0.997 to
// 0.998-0.999 (docs/benchmarks.md, calibration section), so fewer ops need to fall back.
constexpr const char* kDefaultSpace = R"(schema: ipex-tune/space/v1
dimensions:
  dtype: [fp32, bf16, int8]
  auto_fallback: {values: [target], when: {dtype: int8}}
  smooth_quant: {values: [0.5], when: {dtype: int8}}
  threads: [1, 2, 4, 8, 16, 32, 64, 128, 256]
  streams: {values: [1, 2, 4], constraint: "streams <= threads"}
)";

int64_t PositiveInt(const nlohmann::json& value, const std::string& dimension) {
  if (!value.is_number_integer() || value.get<int64_t>() < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: {} is not a positive integer", dimension, value.dump()));
  }
  return value.get<int64_t>();
}

std::string Text(const nlohmann::json& value, const std::string& dimension) {
  if (!value.is_string()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: {} is not a string", dimension, value.dump()));
  }
  return value.get<std::string>();
}

// The enum a dimension's string value spells, or an error listing the spellings it could be.
template <typename E>
E EnumValue(const nlohmann::json& value, const std::string& dimension,
            std::optional<E> (*parse)(const std::string&), const std::string& spellings) {
  std::optional<E> parsed = parse(Text(value, dimension));
  if (!parsed) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: {} is not one of {}", dimension, value.dump(), spellings));
  }
  return *parsed;
}

}  // namespace

std::string DefaultSpaceYaml(const std::string& workload) { return kDefaultSpace; }

SpaceDefinition DefaultSpace(const std::string& workload) {
  return ParseSpace(DefaultSpaceYaml(workload), "<default space of " + workload + ">");
}

Candidate StockCandidate(int64_t threads) { return {{"baseline", "stock"}, {"threads", threads}}; }

bool IsStock(const Candidate& candidate) {
  return candidate.is_object() && candidate.value("baseline", "") == "stock";
}

std::string ConfigHash(const Candidate& candidate) { return Sha256Hex(candidate.dump()); }

recipes::Recipe CandidateToRecipe(const Candidate& candidate, const recipes::WorkloadRef& workload,
                                  std::optional<double> accuracy_loss) {
  using namespace recipes;
  Recipe recipe;
  recipe.workload = workload;
  auto calibration = [&recipe]() -> Calibration& {
    if (!recipe.precision.calibration) recipe.precision.calibration = Calibration{};
    return *recipe.precision.calibration;
  };
  for (const auto& [key, value] : candidate.items()) {
    if (key == "dtype") {
      recipe.precision.dtype = EnumValue(value, key, ParseDtype, DtypeSpellings());
    } else if (key == "threads") {
      recipe.runtime.threads = PositiveInt(value, key);
    } else if (key == "calibration") {
      calibration().algorithm = Text(value, key);
    } else if (key == "calibration_samples") {
      calibration().samples = PositiveInt(value, key);
    } else if (key == "streams") {
      recipe.runtime.streams = PositiveInt(value, key);
    } else if (key == "cores_per_stream") {
      recipe.runtime.cores_per_stream = PositiveInt(value, key);
    } else if (key == "instances") {
      recipe.runtime.instances = PositiveInt(value, key);
    } else if (key == "micro_batch") {
      recipe.runtime.micro_batch = PositiveInt(value, key);
    } else if (key == "binding") {
      recipe.runtime.binding = EnumValue(value, key, ParseBinding, BindingSpellings());
    } else if (key == "allocator") {
      recipe.runtime.allocator = EnumValue(value, key, ParseAllocator, AllocatorSpellings());
      if (recipe.runtime.allocator == Allocator::kJemalloc) {
        recipe.runtime.env["MALLOC_CONF"] = kJemallocConf;
      }
    } else if (key == "omp_wait_policy") {
      // GNU OpenMP's idle threads spin (ACTIVE) or sleep (PASSIVE) between parallel regions.
      const std::string policy = Text(value, key);
      if (policy != "active" && policy != "passive") {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("omp_wait_policy: {} is not one of active, passive", value.dump()));
      }
      recipe.runtime.env["OMP_WAIT_POLICY"] = policy == "active" ? "ACTIVE" : "PASSIVE";
    } else if (key == "batch") {
      recipe.workload.batch = PositiveInt(value, key);
    } else if (key == "memory_format") {
      recipe.optimize.memory_format =
          EnumValue(value, key, ParseMemoryFormat, MemoryFormatSpellings());
    } else if (key == "auto_fallback") {
      if (value.is_string() && value.get<std::string>() == "target") {
        recipe.precision.auto_fallback = accuracy_loss;
      } else if (!(value.is_string() && value.get<std::string>() == "off")) {
        if (!value.is_number() || !(value.get<double>() >= 0 && value.get<double>() < 1)) {
          throw Error(
              ErrorCode::kInvalidArgument,
              fmt::format("auto_fallback: {} is not off, target or an accuracy loss in [0, 1)",
                          value.dump()));
        }
        recipe.precision.auto_fallback = value.get<double>();
      }
    } else if (key == "smooth_quant") {
      if (value.is_number() && value.get<double>() >= 0 && value.get<double>() <= 1) {
        recipe.precision.smooth_quant = SmoothQuant{value.get<double>()};
      } else if (!(value.is_string() && value.get<std::string>() == "off")) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("smooth_quant: {} is not off or an alpha in [0, 1]", value.dump()));
      }
    } else if (key == "fallback_dtype") {
      const std::string dtype = Text(value, key);
      if (dtype != "fp32" && dtype != "bf16") {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("fallback_dtype: {} is not one of fp32, bf16", value.dump()));
      }
      recipe.precision.fallback_dtype = dtype == "bf16" ? Dtype::kBf16 : Dtype::kFp32;
    } else if (key == "fusions") {
      if (!value.is_array()) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("fusions: {} is not a list of pass names", value.dump()));
      }
      recipe.optimize.fusions.clear();
      for (const auto& f : value) recipe.optimize.fusions.push_back(Text(f, key));
    } else {
      throw Error(ErrorCode::kInvalidArgument, fmt::format("unknown dimension '{}'", key));
    }
  }
  // Calibration and smoothing only mean something for static int8; the recipe refuses them
  // elsewhere.
  if (recipe.precision.dtype != Dtype::kInt8) {
    recipe.precision.calibration.reset();
    recipe.precision.smooth_quant.reset();
  }
  if (recipe.precision.dtype != Dtype::kInt8 && recipe.precision.dtype != Dtype::kInt8Dynamic) {
    recipe.precision.auto_fallback.reset();
    recipe.precision.fallback_dtype = Dtype::kFp32;
  }
  return recipe;
}

std::string Describe(const Candidate& candidate) {
  std::string text;
  for (const auto& [key, value] : candidate.items()) {
    if (!text.empty()) text += ' ';
    text += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return text;
}

}  // namespace ipt::tuner
