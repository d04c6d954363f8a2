// Stable spellings of the recipe enums. They appear in YAML files, JSON output and the store, so
// changing one breaks every recipe already written: add new spellings, never rename.
#include "recipes/recipe.h"

#include <cstddef>

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

std::optional<Dtype> ParseDtype(const std::string& s) { return Find(kDtypes, s); }
std::optional<MemoryFormat> ParseMemoryFormat(const std::string& s) {
  return Find(kMemoryFormats, s);
}
std::optional<Binding> ParseBinding(const std::string& s) { return Find(kBindings, s); }
std::optional<Allocator> ParseAllocator(const std::string& s) { return Find(kAllocators, s); }

std::string DtypeSpellings() { return Join(kDtypes); }
std::string MemoryFormatSpellings() { return Join(kMemoryFormats); }
std::string BindingSpellings() { return Join(kBindings); }
std::string AllocatorSpellings() { return Join(kAllocators); }

}  // namespace ipt::recipes
