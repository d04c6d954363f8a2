#include "core/platform/memory_binding.h"

#include <linux/mempolicy.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace ipt::platform {
namespace {

// Nodes a mask can name; the kernel's MAX_NUMNODES is at most 1024.
constexpr unsigned long kMaxNodes = 1024;
constexpr unsigned long kBitsPerWord = 8 * sizeof(unsigned long);
using NodeMask = std::array<unsigned long, kMaxNodes / kBitsPerWord>;

std::string NodeList(const NodeMask& mask) {
  std::string text;
  for (unsigned long node = 0; node < kMaxNodes; ++node) {
    if ((mask[node / kBitsPerWord] >> (node % kBitsPerWord) & 1UL) == 0) continue;
    if (!text.empty()) text += ',';
    text += std::to_string(node);
  }
  return text;
}

}  // namespace

MemoryBinding BindMemoryToNode(int node) {
  if (node < 0 || static_cast<unsigned long>(node) >= kMaxNodes) {
    throw Error(ErrorCode::kInvalidArgument, "no NUMA node " + std::to_string(node));
  }
  MemoryBinding out;
  out.node = node;
  NodeMask mask{};
  mask[node / kBitsPerWord] |= 1UL << (node % kBitsPerWord);
  // maxnode counts bits and the kernel reads one fewer than it is given.
  if (syscall(SYS_set_mempolicy, MPOL_BIND, mask.data(), kMaxNodes + 1) != 0) {
    out.detail = "set_mempolicy(MPOL_BIND, node " + std::to_string(node) +
                 "): " + std::strerror(errno) + "; memory follows the default (local) policy";
    return out;
  }
  out.detail = DescribeMemoryPolicy();
  out.bound = out.detail == "bound to node " + std::to_string(node);
  return out;
}

std::string DescribeMemoryPolicy() {
  int mode = 0;
  NodeMask mask{};
  if (syscall(SYS_get_mempolicy, &mode, mask.data(), kMaxNodes + 1, nullptr, 0UL) != 0) {
    return std::string("unknown (get_mempolicy: ") + std::strerror(errno) + ")";
  }
  std::string nodes = NodeList(mask);
  bool several = nodes.find(',') != std::string::npos;
  switch (mode & ~MPOL_MODE_FLAGS) {
    case MPOL_DEFAULT:
      return "default";
    case MPOL_BIND:
      return (several ? "bound to nodes " : "bound to node ") + nodes;
    case MPOL_INTERLEAVE:
      return "interleaved over nodes " + nodes;
    case MPOL_LOCAL:
      return "local";
    case MPOL_PREFERRED:
      return nodes.empty() ? "preferred: local node" : "preferred node " + nodes;
    default:
      return "policy " + std::to_string(mode) + " on nodes " + nodes;
  }
}

}  // namespace ipt::platform
