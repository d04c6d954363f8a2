#include "tuner/space_model.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>

#include "base/error.h"

namespace ipt::tuner {

const std::vector<std::string>& SpaceDimensionNames() {
  static const std::vector<std::string> names = {
      "dtype",         "threads",          "calibration",     "calibration_samples",
      "streams",       "cores_per_stream", "instances",       "micro_batch",
      "binding",       "allocator",        "omp_wait_policy", "batch",
      "memory_format", "fusions",          "auto_fallback",   "smooth_quant",
      "fallback_dtype"};
  return names;
}

nlohmann::json SpaceDefinition::ToJson() const {
  nlohmann::json dims = nlohmann::json::array();
  for (const SpaceDimension& d : dimensions) {
    nlohmann::json dim = {{"name", d.name}, {"values", d.values}};
    if (d.when) dim["when"] = {{"dimension", d.when->first}, {"values", d.when->second}};
    dims.push_back(std::move(dim));
  }
  return {{"schema", kSpaceSchema}, {"dimensions", dims}, {"constraints", constraints}};
}

SpaceDefinition SpaceDefinition::FromJson(const nlohmann::json& j) {
  SpaceDefinition space;
  try {
    for (const nlohmann::json& d : j.at("dimensions")) {
      SpaceDimension dimension{d.at("name").get<std::string>(),
                               d.at("values").get<std::vector<nlohmann::json>>(), std::nullopt};
      if (d.contains("when")) {
        dimension.when =
            std::make_pair(d.at("when").at("dimension").get<std::string>(),
                           d.at("when").at("values").get<std::vector<nlohmann::json>>());
      }
      space.dimensions.push_back(std::move(dimension));
    }
    space.constraints = j.value("constraints", std::vector<std::string>{});
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kCorrupt, fmt::format("not a stored search space: {}", e.what()));
  }
  return space;
}

// ---------------------------------------------------------------------------------------------
// Constraint expressions

namespace {

struct Token {
  enum class Kind { kNumber, kName, kOp, kEnd } kind = Kind::kEnd;
  std::string text;
  int64_t number = 0;
  size_t column = 0;  // 1-based
};

[[noreturn]] void Reject(const std::string& problem, size_t column) {
  throw Error(ErrorCode::kInvalidArgument, fmt::format("{} at column {}", problem, column));
}

std::vector<Token> Tokenize(const std::string& text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const size_t column = i + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      int64_t value = 0;
      for (; j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])); ++j) {
        const int digit = text[j] - '0';
        if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
          Reject("integer too large", column);
        }
        value = value * 10 + digit;
      }
      tokens.push_back({Token::Kind::kNumber, text.substr(i, j - i), value, column});
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) {
        ++j;
      }
      const std::string word = text.substr(i, j - i);
      const bool keyword = word == "and" || word == "or";
      tokens.push_back({keyword ? Token::Kind::kOp : Token::Kind::kName, word, 0, column});
      i = j;
    } else {
      const std::string two = text.substr(i, 2);
      if (two == "<=" || two == ">=" || two == "==" || two == "!=") {
        tokens.push_back({Token::Kind::kOp, two, 0, column});
        i += 2;
      } else if (std::string("+-*/()<>").find(c) != std::string::npos) {
        tokens.push_back({Token::Kind::kOp, std::string(1, c), 0, column});
        ++i;
      } else {
        Reject(fmt::format("unexpected character '{}'", c), column);
      }
    }
  }
  tokens.push_back({Token::Kind::kEnd, "", 0, text.size() + 1});
  return tokens;
}

bool IsComparison(const std::string& op) {
  return op == "<=" || op == "<" || op == ">=" || op == ">" || op == "==" || op == "!=";
}

}  // namespace

// Recursive descent, one function per precedence level. Each returns the node it built and
// whether it is a truth value, so `threads + (a < b)` and a bare `streams` are rejected while
// parsing, with a column, instead of meaning something surprising later.
class Constraint::Parser {
 public:
  Parser(const std::string& text, const std::vector<std::string>& variables, Constraint& out)
      : tokens_(Tokenize(text)), variables_(variables), out_(out) {}

  void Run() {
    const Token& first = Peek();
    const Parsed root = Or();
    if (Peek().kind != Token::Kind::kEnd) Reject("unexpected '" + Peek().text + "'", Peek().column);
    if (!root.truth) Reject("expected a comparison such as 'streams <= cpus'", first.column);
    out_.root_ = root.node;
  }

 private:
  struct Parsed {
    int node;
    bool truth;
  };

  const Token& Peek() const { return tokens_[pos_]; }
  bool At(const char* op) const { return Peek().kind == Token::Kind::kOp && Peek().text == op; }

  int Add(Node node) {
    out_.nodes_.push_back(std::move(node));
    return static_cast<int>(out_.nodes_.size() - 1);
  }
  int Binary(const std::string& op, int lhs, int rhs) {
    Node node;
    node.kind = Node::Kind::kBinary;
    node.op = op;
    node.lhs = lhs;
    node.rhs = rhs;
    return Add(std::move(node));
  }

  Parsed Or() {
    Parsed lhs = And();
    while (At("or")) lhs = Logical(lhs, &Parser::And);
    return lhs;
  }
  Parsed And() {
    Parsed lhs = Comparison();
    while (At("and")) lhs = Logical(lhs, &Parser::Comparison);
    return lhs;
  }
  Parsed Logical(const Parsed& lhs, Parsed (Parser::*operand)()) {
    const Token op = tokens_[pos_++];
    const Parsed rhs = (this->*operand)();
    if (!lhs.truth || !rhs.truth) Reject("'" + op.text + "' joins comparisons", op.column);
    return {Binary(op.text, lhs.node, rhs.node), true};
  }

  Parsed Comparison() {
    const Parsed lhs = Sum();
    if (Peek().kind != Token::Kind::kOp || !IsComparison(Peek().text)) return lhs;
    const Token op = tokens_[pos_++];
    const Parsed rhs = Sum();
    if (lhs.truth || rhs.truth) Reject("'" + op.text + "' compares numbers", op.column);
    if (Peek().kind == Token::Kind::kOp && IsComparison(Peek().text)) {
      Reject("comparisons do not chain; join them with 'and'", Peek().column);
    }
    return {Binary(op.text, lhs.node, rhs.node), true};
  }

  Parsed Sum() {
    Parsed lhs = Product();
    while (At("+") || At("-")) lhs = Arithmetic(lhs, &Parser::Product);
    return lhs;
  }
  Parsed Product() {
    Parsed lhs = Unary();
    while (At("*") || At("/")) lhs = Arithmetic(lhs, &Parser::Unary);
    return lhs;
  }
  Parsed Arithmetic(const Parsed& lhs, Parsed (Parser::*operand)()) {
    const Token op = tokens_[pos_++];
    const Parsed rhs = (this->*operand)();
    if (lhs.truth || rhs.truth) Reject("'" + op.text + "' needs numbers", op.column);
    return {Binary(op.text, lhs.node, rhs.node), false};
  }

  Parsed Unary() {
    if (!At("-")) return Primary();
    const Token op = tokens_[pos_++];
    const Parsed operand = Unary();
    if (operand.truth) Reject("'-' needs a number", op.column);
    Node zero;
    return {Binary("-", Add(zero), operand.node), false};
  }

  Parsed Primary() {
    const Token token = Peek();
    switch (token.kind) {
      case Token::Kind::kNumber: {
        ++pos_;
        Node node;
        node.number = token.number;
        return {Add(std::move(node)), false};
      }
      case Token::Kind::kName: {
        ++pos_;
        if (token.text != "cpus" &&
            std::find(variables_.begin(), variables_.end(), token.text) == variables_.end()) {
          std::string known = "cpus";
          for (const std::string& v : variables_) known += ", " + v;
          Reject(fmt::format("unknown name '{}'; a constraint may use {}", token.text, known),
                 token.column);
        }
        Node node;
        node.kind = Node::Kind::kVariable;
        node.variable = token.text;
        return {Add(std::move(node)), false};
      }
      case Token::Kind::kOp:
        if (token.text == "(") {
          ++pos_;
          const Parsed inner = Or();
          if (!At(")")) Reject("expected ')'", Peek().column);
          ++pos_;
          return inner;
        }
        break;
      case Token::Kind::kEnd:
        Reject("expected an operand, found the end", token.column);
    }
    Reject("expected an operand, found '" + token.text + "'", token.column);
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const std::vector<std::string>& variables_;
  Constraint& out_;
};

Constraint Constraint::Parse(const std::string& text,
                             const std::vector<std::string>& integer_dimensions) {
  Constraint constraint;
  Parser(text, integer_dimensions, constraint).Run();
  return constraint;
}

bool Constraint::Holds(const nlohmann::json& candidate, int64_t cpus) const {
  for (const Node& node : nodes_) {
    if (node.kind == Node::Kind::kVariable && node.variable != "cpus" &&
        !candidate.contains(node.variable)) {
      return true;
    }
  }
  // nullopt: division by zero or overflow somewhere below.
  const std::function<std::optional<int64_t>(int)> eval = [&](int index) -> std::optional<int64_t> {
    const Node& node = nodes_[static_cast<size_t>(index)];
    switch (node.kind) {
      case Node::Kind::kNumber:
        return node.number;
      case Node::Kind::kVariable:
        return node.variable == "cpus" ? cpus : candidate.at(node.variable).get<int64_t>();
      case Node::Kind::kBinary:
        break;
    }
    const std::optional<int64_t> lhs = eval(node.lhs);
    const std::optional<int64_t> rhs = eval(node.rhs);
    if (!lhs || !rhs) return std::nullopt;
    const int64_t a = *lhs;
    const int64_t b = *rhs;
    int64_t out = 0;
    const std::string& op = node.op;
    if (op == "+") return __builtin_add_overflow(a, b, &out) ? std::nullopt : std::optional(out);
    if (op == "-") return __builtin_sub_overflow(a, b, &out) ? std::nullopt : std::optional(out);
    if (op == "*") return __builtin_mul_overflow(a, b, &out) ? std::nullopt : std::optional(out);
    if (op == "/") {
      if (b == 0 || (a == std::numeric_limits<int64_t>::min() && b == -1)) return std::nullopt;
      return a / b;
    }
    if (op == "<=") return a <= b;
    if (op == "<") return a < b;
    if (op == ">=") return a >= b;
    if (op == ">") return a > b;
    if (op == "==") return a == b;
    if (op == "!=") return a != b;
    if (op == "and") return a && b;
    return a || b;  // "or": the parser admits no other operator
  };
  const std::optional<int64_t> result = eval(root_);
  return result && *result != 0;
}

// ---------------------------------------------------------------------------------------------
// Pruning and enumeration

namespace {

bool IsCpuCount(const std::string& dimension) {
  return dimension == "threads" || dimension == "streams" || dimension == "cores_per_stream" ||
         dimension == "instances";
}

// Dimensions every value of which is an integer: the names a constraint may use.
std::vector<std::string> IntegerDimensions(const SpaceDefinition& space) {
  std::vector<std::string> names;
  for (const SpaceDimension& d : space.dimensions) {
    const bool integer = std::all_of(d.values.begin(), d.values.end(),
                                     [](const nlohmann::json& v) { return v.is_number_integer(); });
    if (integer && !d.values.empty()) names.push_back(d.name);
  }
  return names;
}

}  // namespace

SpaceDefinition Prune(const SpaceDefinition& space, const MachineFacts& facts,
                      bool keep_unsupported, std::vector<PruneNote>* notes) {
  const auto note = [notes](const std::string& dimension, const nlohmann::json& value,
                            const std::string& reason, bool dropped) {
    if (notes) notes->push_back({dimension, value, reason, dropped});
  };
  SpaceDefinition pruned = space;
  for (SpaceDimension& dim : pruned.dimensions) {
    std::vector<nlohmann::json> kept;
    std::string last_reason;
    for (const nlohmann::json& value : dim.values) {
      std::string reason;
      bool drop = false;
      if ((dim.name == "dtype" || dim.name == "fallback_dtype") && value == "bf16" &&
          !facts.avx512_bf16) {
        reason = "this CPU has no avx512_bf16: bf16 runs emulated and slower";
        drop = !keep_unsupported;
      } else if (dim.name == "dtype" && (value == "int8" || value == "int8-dynamic") &&
                 !facts.avx512_vnni) {
        reason = "this CPU has no avx512_vnni: int8 runs without VNNI and may not beat fp32";
      } else if (IsCpuCount(dim.name) && value.is_number_integer() &&
                 value.get<int64_t>() > facts.cpus) {
        reason = fmt::format("exceeds the {} CPUs this study may use", facts.cpus);
        drop = true;
      }
      if (!reason.empty()) note(dim.name, value, reason, drop);
      if (drop) {
        last_reason = (value.is_string() ? value.get<std::string>() : value.dump()) + ": " + reason;
      } else {
        kept.push_back(value);
      }
    }
    if (kept.empty()) {
      throw Error(ErrorCode::kUnsupported,
                  fmt::format("dimension '{}' has no value left on this machine ({})", dim.name,
                              last_reason));
    }
    dim.values = std::move(kept);
  }
  return pruned;
}

std::vector<nlohmann::json> Enumerate(const SpaceDefinition& space, int64_t cpus) {
  const std::vector<std::string> integer_dimensions = IntegerDimensions(space);
  std::vector<Constraint> constraints;
  for (const std::string& text : space.constraints) {
    try {
      constraints.push_back(Constraint::Parse(text, integer_dimensions));
    } catch (const Error& e) {
      throw e.WithContext("constraint '" + text + "'");
    }
  }
  for (size_t d = 0; d < space.dimensions.size(); ++d) {
    const SpaceDimension& dim = space.dimensions[d];
    if (!dim.when) continue;
    const auto earlier = space.dimensions.begin() + static_cast<std::ptrdiff_t>(d);
    const bool declared_before =
        std::any_of(space.dimensions.begin(), earlier,
                    [&](const SpaceDimension& other) { return other.name == dim.when->first; });
    if (!declared_before) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("dimension '{}': 'when' names '{}', which is not declared before it",
                              dim.name, dim.when->first));
    }
  }

  size_t grid = 1;  // an upper bound: conditional dimensions counted as always present
  for (const SpaceDimension& dim : space.dimensions) {
    const size_t n = std::max<size_t>(dim.values.size(), 1);
    if (grid > kMaxGrid / n) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("the space has more than {} candidates", kMaxGrid));
    }
    grid *= n;
  }

  std::vector<nlohmann::json> out;
  std::unordered_set<std::string> seen;
  nlohmann::json partial = nlohmann::json::object();
  // Depth first with the last dimension innermost, which is grid order. A dimension whose `when`
  // does not hold contributes no key instead of one copy of the rest per value.
  const std::function<void(size_t)> walk = [&](size_t d) {
    if (d == space.dimensions.size()) {
      // Instances run side by side on CPUs of their own: more processes than fit would share
      // CPUs and measure the scheduler. A candidate without threads gives each instance an
      // equal share.
      if (const auto it = partial.find("instances");
          it != partial.end() && partial.contains("threads") &&
          partial.at("threads").get<int64_t>() * it->get<int64_t>() > cpus) {
        return;
      }
      for (const Constraint& c : constraints) {
        if (!c.Holds(partial, cpus)) return;
      }
      if (seen.insert(partial.dump()).second) out.push_back(partial);
      return;
    }
    const SpaceDimension& dim = space.dimensions[d];
    if (dim.when) {
      const auto it = partial.find(dim.when->first);
      const std::vector<nlohmann::json>& allowed = dim.when->second;
      if (it == partial.end() || std::find(allowed.begin(), allowed.end(), *it) == allowed.end()) {
        walk(d + 1);
        return;
      }
    }
    for (const nlohmann::json& value : dim.values) {
      partial[dim.name] = value;
      walk(d + 1);
    }
    partial.erase(dim.name);
  };
  walk(0);
  return out;
}

}  // namespace ipt::tuner
