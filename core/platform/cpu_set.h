// CpuSet: a set of logical CPU ids, the unit every binding decision in ipex-tune is made of, with
// the Linux list syntax ("0-3,8,10-11") that sysfs, cgroups and taskset use.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace ipt::platform {

// A value type: sorted, unique, non-negative CPU ids. Cheap to copy for the machine sizes we
// see (hundreds of CPUs). Thread-compatible.
class CpuSet {
 public:
  // Ids above this are rejected: no kernel supports more CPUs, and the bound keeps a malformed
  // "0-999999999" from allocating gigabytes.
  static constexpr int kMaxCpuId = 65535;

  CpuSet() = default;
  // Sorts and removes duplicates. Throws ipt::Error kInvalidArgument for an id outside
  // [0, kMaxCpuId].
  CpuSet(std::initializer_list<int> ids);
  explicit CpuSet(std::vector<int> ids);

  // Parses the Linux list syntax: comma-separated ids and inclusive ranges "a-b". Surrounding
  // whitespace (the '\n' ending every sysfs file) is ignored; "" is the empty set. Throws
  // ipt::Error kInvalidArgument naming the text for anything else ("1-", "3-1", "1,,2", "x").
  static CpuSet Parse(std::string_view text);

  // The shortest list form: "0-3,8,10-11"; "" for the empty set. Parse(ToString()) == *this.
  std::string ToString() const;

  bool contains(int cpu) const;
  std::size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }
  const std::vector<int>& ids() const { return ids_; }
  std::vector<int>::const_iterator begin() const { return ids_.begin(); }
  std::vector<int>::const_iterator end() const { return ids_.end(); }
  // The largest id, or -1 for the empty set.
  int max() const { return ids_.empty() ? -1 : ids_.back(); }

  CpuSet Intersect(const CpuSet& other) const;
  CpuSet Union(const CpuSet& other) const;

  friend bool operator==(const CpuSet& a, const CpuSet& b) { return a.ids_ == b.ids_; }
  friend bool operator!=(const CpuSet& a, const CpuSet& b) { return a.ids_ != b.ids_; }

 private:
  std::vector<int> ids_;
};

}  // namespace ipt::platform
