// Passes the activations between the oneDNN convolutions of a lowered graph blocked
// ([N, C/b, H, W, b], kernels/blocked.h): every ipt::conv2d / ipt::conv2d_sum whose output
// channels divide by the block writes its output blocked, and a max_pool2d of a blocked value
// pools it blocked. Each value crosses layouts once, where the blocked region meets any other
// consumer (ipt::from_blocked after its producer) or a blocked conv reads a plain input or
// accumulator (ipt::to_blocked before it). A conv whose input channels do not divide by the
// block (a net's 3-channel image) reads its input plain and writes blocked. Run after
// LowerToOneDnn; grouped convolutions and convolutions in nested blocks keep their layout.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>

namespace ipt::core::passes {

struct BlockedLayoutReport {
  int64_t blocked_convs = 0;
  int64_t blocked_pools = 0;
  int64_t reorders = 0;  // ipt::to_blocked and ipt::from_blocked inserted
  bool changed() const { return blocked_convs > 0; }
};

// block: 8 or 16 (kernels::PreferredChannelBlock()). channels_last: the layout of the plain
// tensors the region hands back.
BlockedLayoutReport UseBlockedLayout(const std::shared_ptr<torch::jit::Graph>& graph, int64_t block,
                                     bool channels_last);

}  // namespace ipt::core::passes
