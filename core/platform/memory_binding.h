// Binding a process's memory to a NUMA node (set_mempolicy MPOL_BIND), for the tuner's
// multi-instance mode: an instance whose pages come from another node's memory controller
// measures the interconnect, not the recipe. No libnuma: two system calls do it.
#pragma once

#include <string>

namespace ipt::platform {

struct MemoryBinding {
  bool bound = false;  // the kernel accepted the policy and reads it back
  int node = -1;       // the node asked for
  // What applies now, read back with get_mempolicy: "bound to node 0", or, when binding was
  // refused, the default policy and why ("set_mempolicy(MPOL_BIND, node 3): Invalid argument;
  // memory follows the default (local) policy"). Containers often refuse it (EPERM).
  std::string detail;
};

// Binds every later allocation of the calling thread, and of the threads and processes it creates
// afterwards, to `node`: call it before any thread pool starts (OpenMP's team inherits it). A
// refusal by the kernel is not an exception: it is a fallback to the default policy, returned with
// its reason so the caller can record it. Throws ipt::Error kInvalidArgument for a negative node.
MemoryBinding BindMemoryToNode(int node);

// The calling thread's policy as the kernel reports it: "default", "bound to node 0",
// "bound to nodes 0,1", "interleaved over nodes 0,1", "preferred node 1".
std::string DescribeMemoryPolicy();

}  // namespace ipt::platform
