// What a fused conv or linear does to its result before writing it: optionally add an
// accumulator tensor (oneDNN's sum post-op), then optionally one elementwise function. The
// spelling (`ToString`/`ParsePostOps`) is what a serialised model stores, so it is versioned
// by the op schema that carries it.
#pragma once

#include <optional>
#include <string>

namespace ipt::kernels {

enum class Eltwise {
  kRelu,
  kLeakyRelu,  // alpha = negative slope
  kGeluErf,
  kGeluTanh,
  kTanh,
  kSigmoid,
  kSilu,
  kHardtanh,  // clamp to [alpha, beta]
  kElu,       // alpha
  kHardswish,
};

struct EltwiseOp {
  Eltwise kind = Eltwise::kRelu;
  float alpha = 0;
  float beta = 0;
  bool operator==(const EltwiseOp& other) const;
};

struct PostOps {
  bool sum = false;  // dst = op(x) + accumulator, before the eltwise
  std::optional<EltwiseOp> eltwise;
  bool operator==(const PostOps& other) const;
  bool empty() const { return !sum && !eltwise; }
};

// "sum+relu", "leaky_relu(0.01)", "hardtanh(0,6)", "" for none.
std::string ToString(const PostOps& post_ops);
std::string ToString(const EltwiseOp& eltwise);
// Throws ipt::Error(kInvalidArgument) naming the text.
PostOps ParsePostOps(const std::string& text);

}  // namespace ipt::kernels
