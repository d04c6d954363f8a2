// Stable spellings of the recipe enums. They appear in YAML files, JSON output and the store, so
// changing one breaks every recipe already written: add new spellings, never rename.
#include "recipes/recipe.h"

#include <algorithm>
#include <cstddef>

#include "base/error.h"

namespace ipt::recipes {
namespace {

template <typename E>
struct Spelling {
  E value;
  const char* text;
};

constexpr Spelling<Dtype> kDtypes[] = {
    {Dtype::kFp32, "fp32"},
    {Dtype::kBf16, "bf16"},
    {Dtype::kInt8, "int8"},
    {Dtype::kInt8Dynamic, "int8-dynamic"},
};
constexpr Spelling<MemoryFormat> kMemoryFormats[] = {
    {MemoryFormat::kAuto, "auto"},
    {MemoryFormat::kContiguous, "contiguous"},
    {MemoryFormat::kChannelsLast, "channels_last"},
    {MemoryFormat::kBlocked, "blocked"},
};
constexpr Spelling<Binding> kBindings[] = {
    {Binding::kNone, "none"},
    {Binding::kCompact, "compact"},
    {Binding::kScatter, "scatter"},
};
constexpr Spelling<Allocator> kAllocators[] = {
    {Allocator::kDefault, "default"},
    {Allocator::kJemalloc, "jemalloc"},
    {Allocator::kTcmalloc, "tcmalloc"},
};
constexpr Spelling<Objective> kObjectives[] = {
    {Objective::kThroughput, "throughput"},
    {Objective::kP50, "p50"},
    {Objective::kP90, "p90"},
    {Objective::kP99, "p99"},
};

template <typename E, std::size_t N>
const char* Find(const Spelling<E> (&table)[N], E v) {
  for (const auto& s : table) {
    if (s.value == v) return s.text;
  }
  // Only reachable with a value cast from an out-of-range integer.
  return "?";
}

template <typename E, std::size_t N>
std::optional<E> Find(const Spelling<E> (&table)[N], const std::string& text) {
  for (const auto& s : table) {
    if (text == s.text) return s.value;
  }
  return std::nullopt;
}

template <typename E, std::size_t N>
std::string Join(const Spelling<E> (&table)[N]) {
  std::string out;
  for (const auto& s : table) {
    if (!out.empty()) out += ", ";
    out += s.text;
  }
  return out;
}

}  // namespace

const char* ToString(Dtype v) { return Find(kDtypes, v); }
const char* ToString(MemoryFormat v) { return Find(kMemoryFormats, v); }
const char* ToString(Binding v) { return Find(kBindings, v); }
const char* ToString(Allocator v) { return Find(kAllocators, v); }
const char* ToString(Objective v) { return Find(kObjectives, v); }

std::optional<Dtype> ParseDtype(const std::string& s) { return Find(kDtypes, s); }
std::optional<MemoryFormat> ParseMemoryFormat(const std::string& s) {
  return Find(kMemoryFormats, s);
}
std::optional<Binding> ParseBinding(const std::string& s) { return Find(kBindings, s); }
std::optional<Allocator> ParseAllocator(const std::string& s) { return Find(kAllocators, s); }
std::optional<Objective> ParseObjective(const std::string& s) { return Find(kObjectives, s); }

std::string DtypeSpellings() { return Join(kDtypes); }
std::string MemoryFormatSpellings() { return Join(kMemoryFormats); }
std::string BindingSpellings() { return Join(kBindings); }
std::string AllocatorSpellings() { return Join(kAllocators); }
std::string ObjectiveSpellings() { return Join(kObjectives); }

const std::vector<std::string>& InputDtypes() {
  static const std::vector<std::string> kInputDtypes = {"float32", "bfloat16", "int64", "int32",
                                                        "bool"};
  return kInputDtypes;
}

InputSpec ParseInputSpec(const std::string& text) {
  auto fail = [&text](const std::string& problem) {
    return Error(ErrorCode::kInvalidArgument, "input '" + text + "': " + problem +
                                                  " (expected NAME:SHAPE[:DTYPE], e.g. " +
                                                  "x:1x3x224x224:float32)");
  };
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) throw fail("wrong number of ':'-separated parts");
  InputSpec spec;
  spec.name = parts[0];
  if (spec.name.empty()) throw fail("the name is empty");
  size_t dim_start = 0;
  while (true) {
    size_t x = parts[1].find('x', dim_start);
    std::string dim = parts[1].substr(dim_start, x - dim_start);
    if (dim.empty() || dim.find_first_not_of("0123456789") != std::string::npos || dim.size() > 9 ||
        std::stoll(dim) < 1) {
      throw fail("shape dimension '" + dim + "' is not a positive integer");
    }
    spec.shape.push_back(std::stoll(dim));
    if (x == std::string::npos) break;
    dim_start = x + 1;
  }
  if (parts.size() == 3) {
    const auto& known = InputDtypes();
    if (std::find(known.begin(), known.end(), parts[2]) == known.end()) {
      throw fail("dtype '" + parts[2] + "' is not one of float32, bfloat16, int64, int32, bool");
    }
    spec.dtype = parts[2];
  }
  return spec;
}

std::string FormatInputSpec(const InputSpec& spec) {
  std::string text = spec.name + ":";
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    text += (i ? "x" : "") + std::to_string(spec.shape[i]);
  }
  return text + ":" + spec.dtype;
}

}  // namespace ipt::recipes
