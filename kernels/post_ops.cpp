#include "kernels/post_ops.h"

#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <utility>

#include "base/error.h"

namespace ipt::kernels {
namespace {

struct EltwiseName {
  Eltwise kind;
  const char* name;
  int args;
};

constexpr std::array<EltwiseName, 10> kEltwiseNames = {{
    {Eltwise::kRelu, "relu", 0},
    {Eltwise::kLeakyRelu, "leaky_relu", 1},
    {Eltwise::kGeluErf, "gelu", 0},
    {Eltwise::kGeluTanh, "gelu_tanh", 0},
    {Eltwise::kTanh, "tanh", 0},
    {Eltwise::kSigmoid, "sigmoid", 0},
    {Eltwise::kSilu, "silu", 0},
    {Eltwise::kHardtanh, "hardtanh", 2},
    {Eltwise::kElu, "elu", 1},
    {Eltwise::kHardswish, "hardswish", 0},
}};

const EltwiseName& NameOf(Eltwise kind) {
  for (const auto& entry : kEltwiseNames)
    if (entry.kind == kind) return entry;
  throw Error(ErrorCode::kInternal, "eltwise kind without a name");
}

float ParseFloat(const std::string& text, const std::string& whole) {
  char* end = nullptr;
  float value = std::strtof(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("post-ops '{}': '{}' is not a number", whole, text));
  return value;
}

}  // namespace

bool EltwiseOp::operator==(const EltwiseOp& other) const {
  return kind == other.kind && alpha == other.alpha && beta == other.beta;
}

bool PostOps::operator==(const PostOps& other) const {
  return sum == other.sum && eltwise == other.eltwise;
}

std::string ToString(const EltwiseOp& eltwise) {
  const EltwiseName& name = NameOf(eltwise.kind);
  if (name.args == 0) return name.name;
  if (name.args == 1) return fmt::format("{}({})", name.name, eltwise.alpha);
  return fmt::format("{}({},{})", name.name, eltwise.alpha, eltwise.beta);
}

std::string ToString(const PostOps& post_ops) {
  std::string text = post_ops.sum ? "sum" : "";
  if (post_ops.eltwise) {
    if (!text.empty()) text += "+";
    text += ToString(*post_ops.eltwise);
  }
  return text;
}

PostOps ParsePostOps(const std::string& text) {
  PostOps post_ops;
  std::string rest = text;
  if (rest.rfind("sum", 0) == 0) {
    post_ops.sum = true;
    rest = rest.substr(3);
    if (rest.empty()) return post_ops;
    if (rest[0] != '+')
      throw Error(ErrorCode::kInvalidArgument, fmt::format("post-ops '{}': expected '+'", text));
    rest = rest.substr(1);
  }
  if (rest.empty()) return post_ops;
  std::string name = rest;
  std::string args;
  if (auto open = rest.find('('); open != std::string::npos) {
    if (rest.back() != ')')
      throw Error(ErrorCode::kInvalidArgument, fmt::format("post-ops '{}': missing ')'", text));
    name = rest.substr(0, open);
    args = rest.substr(open + 1, rest.size() - open - 2);
  }
  for (const auto& entry : kEltwiseNames) {
    if (name != entry.name) continue;
    EltwiseOp op{entry.kind, 0, 0};
    std::vector<std::string> parts;
    if (!args.empty()) {
      size_t start = 0;
      for (size_t comma; (comma = args.find(',', start)) != std::string::npos; start = comma + 1)
        parts.push_back(args.substr(start, comma - start));
      parts.push_back(args.substr(start));
    }
    if (static_cast<int>(parts.size()) != entry.args)
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("post-ops '{}': {} takes {} argument(s)", text, name, entry.args));
    if (entry.args > 0) op.alpha = ParseFloat(parts[0], text);
    if (entry.args > 1) op.beta = ParseFloat(parts[1], text);
    post_ops.eltwise = op;
    return post_ops;
  }
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("post-ops '{}': unknown elementwise op '{}'", text, name));
}

}  // namespace ipt::kernels
