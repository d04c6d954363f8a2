// Parsing and formatting of CPU lists; see cpu_set.h.
#include "core/platform/cpu_set.h"

#include <algorithm>
#include <cctype>
#include <iterator>

#include "base/error.h"

namespace ipt::platform {
namespace {

void CheckId(int id) {
  if (id < 0 || id > CpuSet::kMaxCpuId) {
    throw Error(ErrorCode::kInvalidArgument, "CPU id " + std::to_string(id) + " is outside 0-" +
                                                 std::to_string(CpuSet::kMaxCpuId));
  }
}

[[noreturn]] void ThrowMalformed(std::string_view text, std::string_view why) {
  throw Error(ErrorCode::kInvalidArgument,
              "malformed CPU list '" + std::string(text) + "': " + std::string(why));
}

// Parses a decimal id at the start of `part`, advancing past it.
int TakeId(std::string_view text, std::string_view& part) {
  std::size_t digits = 0;
  long value = 0;
  while (digits < part.size() && std::isdigit(static_cast<unsigned char>(part[digits]))) {
    value = value * 10 + (part[digits] - '0');
    if (value > CpuSet::kMaxCpuId) {
      ThrowMalformed(text, "CPU id above " + std::to_string(CpuSet::kMaxCpuId));
    }
    ++digits;
  }
  if (digits == 0) ThrowMalformed(text, "expected a CPU id");
  part.remove_prefix(digits);
  return static_cast<int>(value);
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

CpuSet::CpuSet(std::initializer_list<int> ids) : CpuSet(std::vector<int>(ids)) {}

CpuSet::CpuSet(std::vector<int> ids) : ids_(std::move(ids)) {
  for (int id : ids_) CheckId(id);
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

CpuSet CpuSet::Parse(std::string_view text) {
  const std::string_view list = Trim(text);
  std::vector<int> ids;
  if (list.empty()) return CpuSet();
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = list.find(',', start);
    std::string_view part = list.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) ThrowMalformed(text, "empty element");
    const int first = TakeId(text, part);
    int last = first;
    if (!part.empty() && part.front() == '-') {
      part.remove_prefix(1);
      last = TakeId(text, part);
      if (last < first) ThrowMalformed(text, "descending range");
    }
    if (!part.empty()) ThrowMalformed(text, "unexpected '" + std::string(part) + "'");
    for (int id = first; id <= last; ++id) ids.push_back(id);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return CpuSet(std::move(ids));
}

std::string CpuSet::ToString() const {
  std::string out;
  for (std::size_t i = 0; i < ids_.size();) {
    std::size_t j = i;
    while (j + 1 < ids_.size() && ids_[j + 1] == ids_[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ids_[i]);
    if (j > i) out += '-' + std::to_string(ids_[j]);
    i = j + 1;
  }
  return out;
}

bool CpuSet::contains(int cpu) const { return std::binary_search(ids_.begin(), ids_.end(), cpu); }

CpuSet CpuSet::Intersect(const CpuSet& other) const {
  CpuSet result;
  std::set_intersection(ids_.begin(), ids_.end(), other.ids_.begin(), other.ids_.end(),
                        std::back_inserter(result.ids_));
  return result;
}

CpuSet CpuSet::Union(const CpuSet& other) const {
  CpuSet result;
  std::set_union(ids_.begin(), ids_.end(), other.ids_.begin(), other.ids_.end(),
                 std::back_inserter(result.ids_));
  return result;
}

}  // namespace ipt::platform
