// YAML form of the recipe (schema ipex-tune/recipe/v1). Reading is strict because production
// follows a recipe without a human in the loop: a misspelt key that silently took its default
// would run a model in a configuration nobody measured. Every rejection names the source, the
// line and the key path so the user can fix the file without reading this code.
#include "recipes/recipe_yaml.h"

#include <algorithm>

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <set>
#include <utility>

#include "base/error.h"

namespace ipt::recipes {
namespace {

// ---------------------------------------------------------------------------------------------
// Reading

// A node with what error messages need: where it is and how the user would name it.
struct Value {
  YAML::Node node;
  // Scalars point at themselves. Maps, lists and missing values point at their key, because the
  // mark of a block map is its first child and the mark of an empty value is the next token.
  YAML::Mark mark;
  std::string path;  // "workload.inputs[0].shape"
};

// yaml-cpp lines are 0-based and a synthesised node has no mark (-1).
int LineOf(const YAML::Mark& mark) { return mark.line < 0 ? 1 : mark.line + 1; }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      std::string text = node.Scalar();
      constexpr size_t kMaxShown = 60;  // a pasted blob must not drown the message
      if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
      if (node.Tag() == "!") return "the quoted string '" + text + "'";
      if (node.Tag() != "?") return "'" + text + "' tagged " + node.Tag();
      return "'" + text + "'";
    }
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "null";
}

// Numbers and booleans must be plain scalars: `batch: "8"` is a string in YAML, and accepting
// it would make the file mean different things to different readers.
bool IsPlainScalarOf(const YAML::Node& node, std::initializer_list<const char*> yaml_types) {
  if (!node.IsScalar()) return false;
  if (node.Tag() == "?") return true;
  for (const char* type : yaml_types) {
    if (node.Tag() == std::string("tag:yaml.org,2002:") + type) return true;
  }
  return false;
}

bool IsEnvName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return false;
  }
  return true;
}

class Reader {
 public:
  explicit Reader(const std::string& source) : source_(source) {}

  [[noreturn]] void Fail(const YAML::Mark& mark, const std::string& path,
                         const std::string& problem) const {
    std::string message = source_ + ":" + std::to_string(LineOf(mark)) + ": ";
    if (!path.empty()) message += path + ": ";
    throw Error(ErrorCode::kInvalidArgument, message + problem);
  }
  [[noreturn]] void Fail(const Value& v, const std::string& problem) const {
    Fail(v.mark, v.path, problem);
  }

  std::string String(const Value& v) const {
    if (!v.node.IsScalar()) Fail(v, "expected a string, got " + Describe(v.node));
    return v.node.Scalar();
  }

  std::string NonEmptyString(const Value& v) const {
    std::string s = String(v);
    if (s.empty()) Fail(v, "must not be empty");
    return s;
  }

  int64_t Int(const Value& v, std::optional<int64_t> min = std::nullopt) const {
    const std::string problem = "expected an integer, got " + Describe(v.node);
    if (!IsPlainScalarOf(v.node, {"int"})) Fail(v, problem);
    int64_t out = 0;
    try {
      out = v.node.as<int64_t>();
    } catch (const YAML::Exception&) {
      Fail(v, problem);
    }
    if (min && out < *min) {
      Fail(v, "must be >= " + std::to_string(*min) + ", got " + std::to_string(out));
    }
    return out;
  }

  bool Bool(const Value& v) const {
    const std::string problem = "expected true or false, got " + Describe(v.node);
    if (!IsPlainScalarOf(v.node, {"bool"})) Fail(v, problem);
    try {
      return v.node.as<bool>();
    } catch (const YAML::Exception&) {
      Fail(v, problem);
    }
  }

  double Double(const Value& v) const {
    const std::string problem = "expected a number, got " + Describe(v.node);
    if (!IsPlainScalarOf(v.node, {"float", "int"})) Fail(v, problem);
    double out = 0;
    try {
      out = v.node.as<double>();
    } catch (const YAML::Exception&) {
      Fail(v, problem);
    }
    // yaml-cpp reads .inf and .nan; a measurement or ratio that is not finite is a bug upstream.
    if (!std::isfinite(out)) Fail(v, "must be a finite number, got " + Describe(v.node));
    return out;
  }

  template <typename E>
  E Enum(const Value& v, std::optional<E> (*parse)(const std::string&),
         const std::string& spellings) const {
    const std::string s = String(v);
    const std::optional<E> e = parse(s);
    if (!e) Fail(v, "'" + s + "' is not one of " + spellings);
    return *e;
  }

  std::vector<Value> Items(const Value& v) const {
    if (!v.node.IsSequence()) Fail(v, "expected a list, got " + Describe(v.node));
    std::vector<Value> items;
    for (size_t i = 0; i < v.node.size(); ++i) {
      const YAML::Node item = v.node[i];
      // An empty item has the mark of whatever follows it; its list is the better pointer.
      items.push_back(
          {item, item.IsNull() ? v.mark : item.Mark(), v.path + "[" + std::to_string(i) + "]"});
    }
    return items;
  }

  std::vector<std::string> Strings(const Value& v) const {
    std::vector<std::string> out;
    for (const Value& item : Items(v)) out.push_back(String(item));
    return out;
  }

  // The entries of a map in file order, keyed by their scalar keys; rejects duplicates, which
  // yaml-cpp would otherwise keep and leave the reader to pick one silently.
  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    Value value;
  };
  std::vector<Entry> Entries(const Value& v) const {
    if (!v.node.IsMap()) Fail(v, "expected a map, got " + Describe(v.node));
    std::vector<Entry> entries;
    std::set<std::string> seen;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        Fail(key.Mark(), v.path, "keys must be strings, got " + Describe(key));
      }
      const std::string& name = key.Scalar();
      const std::string path = v.path.empty() ? name : v.path + "." + name;
      if (!seen.insert(name).second) Fail(key.Mark(), path, "duplicate key");
      entries.push_back(
          {name, key.Mark(), {value, value.IsScalar() ? value.Mark() : key.Mark(), path}});
    }
    return entries;
  }

 private:
  std::string source_;
};

// A map whose keys must come from a fixed list, looked up by name.
class MapReader {
 public:
  MapReader(const Reader& reader, const Value& v, std::initializer_list<const char*> allowed)
      : reader_(reader), self_(v) {
    std::string allowed_list;
    for (const char* key : allowed) {
      allowed_list += (allowed_list.empty() ? "" : ", ") + std::string(key);
    }
    for (Reader::Entry& entry : reader.Entries(v)) {
      bool known = false;
      for (const char* key : allowed) known = known || entry.key == key;
      if (!known) {
        reader.Fail(entry.key_mark, entry.value.path,
                    "unknown key; allowed keys are " + allowed_list);
      }
      fields_.emplace(entry.key, std::move(entry.value));
    }
  }

  std::optional<Value> Get(const std::string& key) const {
    const auto it = fields_.find(key);
    if (it == fields_.end()) return std::nullopt;
    return it->second;
  }

  Value Require(const std::string& key) const {
    std::optional<Value> v = Get(key);
    if (!v) reader_.Fail(self_.mark, Child(key), "required key is missing");
    return *v;
  }

  std::string Child(const std::string& key) const {
    return self_.path.empty() ? key : self_.path + "." + key;
  }

 private:
  const Reader& reader_;
  Value self_;
  std::map<std::string, Value> fields_;
};

InputSpec ReadInput(const Reader& r, const Value& v) {
  MapReader m(r, v, {"name", "shape", "dtype"});
  InputSpec input;
  input.name = r.NonEmptyString(m.Require("name"));
  const Value shape = m.Require("shape");
  for (const Value& dim : r.Items(shape)) input.shape.push_back(r.Int(dim, 1));
  if (auto dtype = m.Get("dtype")) {
    input.dtype = r.NonEmptyString(*dtype);
    const auto& known = InputDtypes();
    if (std::find(known.begin(), known.end(), input.dtype) == known.end()) {
      r.Fail(*dtype, "'" + input.dtype + "' is not one of float32, bfloat16, int64, int32, bool");
    }
  }
  return input;
}

WorkloadRef ReadWorkload(const Reader& r, const Value& v) {
  MapReader m(r, v, {"name", "model_path", "model_sha256", "batch", "seq_len", "inputs"});
  WorkloadRef w;
  w.name = r.NonEmptyString(m.Require("name"));
  if (auto f = m.Get("model_path")) w.model_path = r.String(*f);
  if (auto f = m.Get("model_sha256")) w.model_sha256 = r.String(*f);
  if (auto f = m.Get("batch")) w.batch = r.Int(*f, 1);
  if (auto f = m.Get("seq_len")) w.seq_len = r.Int(*f, 1);
  if (auto f = m.Get("inputs")) {
    std::set<std::string> names;
    for (const Value& item : r.Items(*f)) {
      InputSpec input = ReadInput(r, item);
      // The core binds inputs by name; two with one name would leave one of them unfed.
      if (!names.insert(input.name).second) {
        r.Fail(item, "duplicate input name '" + input.name + "'");
      }
      w.inputs.push_back(std::move(input));
    }
  }
  return w;
}

MachineRef ReadMachine(const Reader& r, const Value& v) {
  MapReader m(r, v, {"fingerprint", "cpu", "isa", "cores"});
  MachineRef machine;
  if (auto f = m.Get("fingerprint")) machine.fingerprint = r.String(*f);
  if (auto f = m.Get("cpu")) machine.cpu = r.String(*f);
  if (auto f = m.Get("isa")) machine.isa = r.Strings(*f);
  if (auto f = m.Get("cores")) machine.cores = r.Int(*f, 0);
  return machine;
}

Optimize ReadOptimize(const Reader& r, const Value& v) {
  MapReader m(r, v,
              {"freeze", "optimize_for_inference", "fold_conv_bn", "fold_linear_bn", "fusions",
               "weight_prepack", "memory_format"});
  Optimize o;
  if (auto f = m.Get("freeze")) o.freeze = r.Bool(*f);
  if (auto f = m.Get("optimize_for_inference")) o.optimize_for_inference = r.Bool(*f);
  if (auto f = m.Get("fold_conv_bn")) o.fold_conv_bn = r.Bool(*f);
  if (auto f = m.Get("fold_linear_bn")) o.fold_linear_bn = r.Bool(*f);
  if (auto f = m.Get("fusions")) o.fusions = r.Strings(*f);
  if (auto f = m.Get("weight_prepack")) o.weight_prepack = r.Bool(*f);
  if (auto f = m.Get("memory_format")) {
    o.memory_format = r.Enum(*f, &ParseMemoryFormat, MemoryFormatSpellings());
  }
  return o;
}

Precision ReadPrecision(const Reader& r, const Value& v) {
  MapReader m(r, v, {"dtype", "calibration", "fallback"});
  Precision p;
  if (auto f = m.Get("dtype")) p.dtype = r.Enum(*f, &ParseDtype, DtypeSpellings());
  if (auto f = m.Get("calibration")) {
    // Dynamic int8 and the float types never calibrate; a calibration section there means the
    // file was edited by hand into something nobody measured.
    if (p.dtype != Dtype::kInt8) {
      r.Fail(*f, std::string("only allowed when dtype is int8, not ") + ToString(p.dtype));
    }
    MapReader c(r, *f, {"algorithm", "samples"});
    Calibration calibration;
    if (auto g = c.Get("algorithm")) calibration.algorithm = r.NonEmptyString(*g);
    if (auto g = c.Get("samples")) calibration.samples = r.Int(*g, 1);
    p.calibration = calibration;
  } else if (p.dtype == Dtype::kInt8) {
    p.calibration = Calibration{};
  }
  if (auto f = m.Get("fallback")) p.fallback = r.Strings(*f);
  return p;
}

Runtime ReadRuntime(const Reader& r, const Value& v) {
  MapReader m(r, v, {"threads", "streams", "cores_per_stream", "binding", "allocator", "env"});
  Runtime rt;
  if (auto f = m.Get("threads")) rt.threads = r.Int(*f, 0);
  if (auto f = m.Get("streams")) rt.streams = r.Int(*f, 1);
  if (auto f = m.Get("cores_per_stream")) rt.cores_per_stream = r.Int(*f, 0);
  if (auto f = m.Get("binding")) rt.binding = r.Enum(*f, &ParseBinding, BindingSpellings());
  if (auto f = m.Get("allocator")) {
    rt.allocator = r.Enum(*f, &ParseAllocator, AllocatorSpellings());
  }
  if (auto f = m.Get("env")) {
    for (const Reader::Entry& entry : r.Entries(*f)) {
      if (!IsEnvName(entry.key)) {
        r.Fail(entry.key_mark, entry.value.path,
               "not an environment variable name (expected [A-Za-z_][A-Za-z0-9_]*)");
      }
      if (!entry.value.node.IsScalar()) {
        r.Fail(entry.value, "must be a scalar, got " + Describe(entry.value.node));
      }
      rt.env[entry.key] = entry.value.node.Scalar();
    }
  }
  return rt;
}

Measured ReadMeasured(const Reader& r, const Value& v) {
  MapReader m(r, v, {"items_per_s", "median_ms", "p90_ms", "ci95_items_per_s"});
  Measured measured;
  if (auto f = m.Get("items_per_s")) measured.items_per_s = r.Double(*f);
  if (auto f = m.Get("median_ms")) measured.median_ms = r.Double(*f);
  if (auto f = m.Get("p90_ms")) measured.p90_ms = r.Double(*f);
  if (auto f = m.Get("ci95_items_per_s")) {
    const std::vector<Value> bounds = r.Items(*f);
    if (bounds.size() != 2) {
      r.Fail(*f, "expected [low, high], got " + std::to_string(bounds.size()) + " items");
    }
    const double low = r.Double(bounds[0]);
    const double high = r.Double(bounds[1]);
    if (low > high) r.Fail(*f, "low bound exceeds high bound");
    measured.ci95_items_per_s = std::make_pair(low, high);
  }
  return measured;
}

Provenance ReadProvenance(const Reader& r, const Value& v) {
  MapReader m(r, v, {"study", "trial", "created", "ipex_tune_version", "measured", "vs_stock"});
  Provenance p;
  if (auto f = m.Get("study")) p.study = r.Int(*f);
  if (auto f = m.Get("trial")) p.trial = r.Int(*f);
  if (auto f = m.Get("created")) p.created = r.String(*f);
  if (auto f = m.Get("ipex_tune_version")) p.ipex_tune_version = r.String(*f);
  if (auto f = m.Get("measured")) p.measured = ReadMeasured(r, *f);
  if (auto f = m.Get("vs_stock")) p.vs_stock = r.Double(*f);
  return p;
}

Recipe ReadRecipe(const Reader& r, const YAML::Node& root) {
  const Value doc{root, root.Mark(), ""};
  if (!root.IsMap()) r.Fail(doc, "expected a map at the top level, got " + Describe(root));

  // The schema is checked before anything else: a later version may have keys this one would
  // call unknown, and "wrong schema" is the message that tells the user what to do.
  std::optional<Value> schema;
  for (const Reader::Entry& entry : r.Entries(doc)) {
    if (entry.key == "schema") schema = entry.value;
  }
  const std::string expected = std::string("expected '") + kRecipeSchema + "'";
  if (!schema) r.Fail(doc.mark, "schema", "required key is missing; " + expected);
  if (r.String(*schema) != kRecipeSchema) {
    r.Fail(*schema, "unsupported schema '" + schema->node.Scalar() + "'; " + expected);
  }

  MapReader m(r, doc,
              {"schema", "workload", "machine", "optimize", "precision", "runtime", "provenance"});
  Recipe recipe;
  recipe.workload = ReadWorkload(r, m.Require("workload"));
  if (auto f = m.Get("machine")) recipe.machine = ReadMachine(r, *f);
  if (auto f = m.Get("optimize")) recipe.optimize = ReadOptimize(r, *f);
  if (auto f = m.Get("precision")) recipe.precision = ReadPrecision(r, *f);
  if (auto f = m.Get("runtime")) recipe.runtime = ReadRuntime(r, *f);
  if (auto f = m.Get("provenance")) recipe.provenance = ReadProvenance(r, *f);
  return recipe;
}

// ---------------------------------------------------------------------------------------------
// Writing

// yaml-cpp 0.7 writes `yes`, `1.0` or `0.1.0` unquoted, which a YAML reader takes for a bool or a
// number. Only identifier-like strings that are no YAML keyword stay plain; the rest is quoted.
bool IsSafePlain(const std::string& s) {
  if (s.empty()) return false;
  const char first = s[0];
  if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z') || first == '_')) {
    return false;
  }
  for (const char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.' || c == '/' || c == '+';
    if (!ok) return false;
  }
  std::string lower;
  for (const char c : s) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  // YAML 1.1 booleans and nulls; other readers (PyYAML) still speak 1.1.
  for (const char* keyword : {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}) {
    if (lower == keyword) return false;
  }
  return true;
}

void Put(YAML::Emitter& out, const std::string& s) {
  if (IsSafePlain(s)) {
    out << s;
  } else {
    out << YAML::DoubleQuoted << s;
  }
}

// The fewest significant digits that read back as the same double, so 30.1 is written as 30.1
// and not 30.100000000000001, and every value still round-trips exactly.
void Put(YAML::Emitter& out, double v) {
  int precision = 17;
  for (int p = 1; p < 17 && std::isfinite(v); ++p) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) {
      precision = p;
      break;
    }
  }
  out << YAML::DoublePrecision(precision) << v;
}

YAML::Emitter& Key(YAML::Emitter& out, const char* key) {
  return out << YAML::Key << key << YAML::Value;
}

// Lists of names stay in block style so a diff between two recipes shows one name per line.
void PutStrings(YAML::Emitter& out, const std::vector<std::string>& items) {
  if (items.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const std::string& item : items) Put(out, item);
  out << YAML::EndSeq;
}

void PutWorkload(YAML::Emitter& out, const WorkloadRef& w) {
  out << YAML::BeginMap;
  Key(out, "name");
  Put(out, w.name);
  if (!w.model_path.empty()) {
    Key(out, "model_path");
    Put(out, w.model_path);
  }
  Key(out, "model_sha256");
  Put(out, w.model_sha256);
  Key(out, "batch") << w.batch;
  if (w.seq_len) Key(out, "seq_len") << *w.seq_len;
  if (!w.inputs.empty()) {
    Key(out, "inputs") << YAML::BeginSeq;
    for (const InputSpec& input : w.inputs) {
      out << YAML::BeginMap;
      Key(out, "name");
      Put(out, input.name);
      // A shape reads best as one tuple: [1, 3, 224, 224].
      Key(out, "shape") << YAML::Flow << YAML::BeginSeq;
      for (const int64_t dim : input.shape) out << dim;
      out << YAML::EndSeq;
      Key(out, "dtype");
      Put(out, input.dtype);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void PutMachine(YAML::Emitter& out, const MachineRef& m) {
  out << YAML::BeginMap;
  Key(out, "fingerprint");
  Put(out, m.fingerprint);
  Key(out, "cpu");
  Put(out, m.cpu);
  Key(out, "isa");
  PutStrings(out, m.isa);
  Key(out, "cores") << m.cores;
  out << YAML::EndMap;
}

void PutOptimize(YAML::Emitter& out, const Optimize& o) {
  out << YAML::BeginMap;
  Key(out, "freeze") << o.freeze;
  Key(out, "optimize_for_inference") << o.optimize_for_inference;
  Key(out, "fold_conv_bn") << o.fold_conv_bn;
  Key(out, "fold_linear_bn") << o.fold_linear_bn;
  Key(out, "fusions");
  PutStrings(out, o.fusions);
  Key(out, "weight_prepack") << o.weight_prepack;
  Key(out, "memory_format") << ToString(o.memory_format);
  out << YAML::EndMap;
}

void PutPrecision(YAML::Emitter& out, const Precision& p) {
  out << YAML::BeginMap;
  Key(out, "dtype") << ToString(p.dtype);
  // Mirrors the reader: calibration exists for static int8 only, and is never left implicit.
  if (p.dtype == Dtype::kInt8) {
    const Calibration c = p.calibration.value_or(Calibration{});
    Key(out, "calibration") << YAML::BeginMap;
    Key(out, "algorithm");
    Put(out, c.algorithm);
    Key(out, "samples") << c.samples;
    out << YAML::EndMap;
  }
  Key(out, "fallback");
  PutStrings(out, p.fallback);
  out << YAML::EndMap;
}

void PutRuntime(YAML::Emitter& out, const Runtime& rt) {
  out << YAML::BeginMap;
  Key(out, "threads") << rt.threads;
  Key(out, "streams") << rt.streams;
  Key(out, "cores_per_stream") << rt.cores_per_stream;
  Key(out, "binding") << ToString(rt.binding);
  Key(out, "allocator") << ToString(rt.allocator);
  Key(out, "env");
  if (rt.env.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [name, value] : rt.env) {  // std::map: sorted, hence deterministic
    out << YAML::Key;
    Put(out, name);
    out << YAML::Value;
    Put(out, value);
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
}

void PutProvenance(YAML::Emitter& out, const Provenance& p) {
  out << YAML::BeginMap;
  Key(out, "study") << p.study;
  Key(out, "trial") << p.trial;
  Key(out, "created");
  Put(out, p.created);
  Key(out, "ipex_tune_version");
  Put(out, p.ipex_tune_version);
  Key(out, "measured") << YAML::BeginMap;
  Key(out, "items_per_s");
  Put(out, p.measured.items_per_s);
  Key(out, "median_ms");
  Put(out, p.measured.median_ms);
  Key(out, "p90_ms");
  Put(out, p.measured.p90_ms);
  if (p.measured.ci95_items_per_s) {
    Key(out, "ci95_items_per_s") << YAML::Flow << YAML::BeginSeq;
    Put(out, p.measured.ci95_items_per_s->first);
    Put(out, p.measured.ci95_items_per_s->second);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  if (p.vs_stock) {
    Key(out, "vs_stock");
    Put(out, *p.vs_stock);
  }
  out << YAML::EndMap;
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

Recipe ParseRecipe(const std::string& yaml_text, const std::string& source) {
  const Reader reader(source);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    reader.Fail(e.mark, "", "YAML syntax error: " + e.msg);
  }
  if (docs.empty() || docs[0].IsNull()) {
    reader.Fail(YAML::Mark::null_mark(), "",
                std::string("empty document; expected a recipe with schema: ") + kRecipeSchema);
  }
  if (docs.size() > 1) {
    reader.Fail(docs[1].Mark(), "",
                "expected one recipe, found " + std::to_string(docs.size()) + " YAML documents");
  }
  try {
    return ReadRecipe(reader, docs[0]);
  } catch (const YAML::Exception& e) {
    // The reader checks types before converting, so this is a yaml-cpp surprise; still the
    // user's file caused it and deserves a located message.
    reader.Fail(e.mark, "", e.msg);
  }
}

Recipe LoadRecipe(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error(ErrorCode::kNotFound, "recipe file '" + path + "' does not exist");
    }
    throw Error(ErrorCode::kIo, "cannot open recipe file '" + path + "': " + ErrnoText(err));
  }
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      ::close(fd);
      throw Error(ErrorCode::kIo, "cannot read recipe file '" + path + "': " + ErrnoText(err));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ParseRecipe(text, path);
}

std::string ToYaml(const Recipe& recipe) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  // The writer speaks v1 whatever the struct claims, so the label always matches the content.
  Key(out, "schema") << kRecipeSchema;
  Key(out, "workload");
  PutWorkload(out, recipe.workload);
  Key(out, "machine");
  PutMachine(out, recipe.machine);
  Key(out, "optimize");
  PutOptimize(out, recipe.optimize);
  Key(out, "precision");
  PutPrecision(out, recipe.precision);
  Key(out, "runtime");
  PutRuntime(out, recipe.runtime);
  if (recipe.provenance) {
    Key(out, "provenance");
    PutProvenance(out, *recipe.provenance);
  }
  out << YAML::EndMap;
  if (!out.good()) {
    throw Error(ErrorCode::kInternal, "emitting recipe YAML: " + out.GetLastError());
  }
  return std::string(out.c_str()) + "\n";
}

void SaveRecipe(const Recipe& recipe, const std::string& path) {
  const std::string text = ToYaml(recipe);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const auto fail = [&](const std::string& what, int err, int fd) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::kIo,
                "cannot save recipe to '" + path + "': " + what + ": " + ErrnoText(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("open " + tmp, errno, -1);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write " + tmp, errno, fd);
    }
    done += static_cast<size_t>(n);
  }
  // Without fsync the rename can reach the disk before the data and a crash leaves an empty
  // recipe under the final name.
  if (::fsync(fd) != 0) fail("fsync " + tmp, errno, fd);
  if (::close(fd) != 0) fail("close " + tmp, errno, -1);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename " + tmp, errno, -1);
}

}  // namespace ipt::recipes
