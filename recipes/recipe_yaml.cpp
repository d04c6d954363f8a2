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
#include <set>
#include <utility>

#include "base/error.h"
#include "recipes/yaml_reader.h"

namespace ipt::recipes {
namespace {

// ---------------------------------------------------------------------------------------------
// Reading

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

InputSpec ReadInput(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v, {"name", "shape", "dtype"});
  InputSpec input;
  input.name = r.NonEmptyString(m.Require("name"));
  const YamlValue shape = m.Require("shape");
  for (const YamlValue& dim : r.Items(shape)) input.shape.push_back(r.Int(dim, 1));
  if (auto dtype = m.Get("dtype")) {
    input.dtype = r.NonEmptyString(*dtype);
    const auto& known = InputDtypes();
    if (std::find(known.begin(), known.end(), input.dtype) == known.end()) {
      r.Fail(*dtype, "'" + input.dtype + "' is not one of float32, bfloat16, int64, int32, bool");
    }
  }
  return input;
}

WorkloadRef ReadWorkload(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v, {"name", "model_path", "model_sha256", "batch", "seq_len", "inputs"});
  WorkloadRef w;
  w.name = r.NonEmptyString(m.Require("name"));
  if (auto f = m.Get("model_path")) w.model_path = r.String(*f);
  if (auto f = m.Get("model_sha256")) w.model_sha256 = r.String(*f);
  if (auto f = m.Get("batch")) w.batch = r.Int(*f, 1);
  if (auto f = m.Get("seq_len")) w.seq_len = r.Int(*f, 1);
  if (auto f = m.Get("inputs")) {
    std::set<std::string> names;
    for (const YamlValue& item : r.Items(*f)) {
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

MachineRef ReadMachine(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v, {"fingerprint", "cpu", "isa", "cores"});
  MachineRef machine;
  if (auto f = m.Get("fingerprint")) machine.fingerprint = r.String(*f);
  if (auto f = m.Get("cpu")) machine.cpu = r.String(*f);
  if (auto f = m.Get("isa")) machine.isa = r.Strings(*f);
  if (auto f = m.Get("cores")) machine.cores = r.Int(*f, 0);
  return machine;
}

Optimize ReadOptimize(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v,
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

Precision ReadPrecision(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v,
            {"dtype", "calibration", "fallback", "fallback_dtype", "auto_fallback", "smooth_quant",
             "qparams"});
  Precision p;
  if (auto f = m.Get("dtype")) p.dtype = r.Enum(*f, &ParseDtype, DtypeSpellings());
  if (auto f = m.Get("calibration")) {
    // Dynamic int8 and the float types never calibrate; a calibration section there means the
    // file was edited by hand into something nobody measured.
    if (p.dtype != Dtype::kInt8) {
      r.Fail(*f, std::string("only allowed when dtype is int8, not ") + ToString(p.dtype));
    }
    YamlMap c(r, *f, {"algorithm", "samples", "averaging_constant", "percentile"});
    Calibration calibration;
    if (auto g = c.Get("algorithm")) calibration.algorithm = r.NonEmptyString(*g);
    if (auto g = c.Get("samples")) calibration.samples = r.Int(*g, 1);
    if (auto g = c.Get("averaging_constant")) {
      calibration.averaging_constant = r.Double(*g);
      if (!(calibration.averaging_constant > 0 && calibration.averaging_constant <= 1))
        r.Fail(*g, "must be in (0, 1]");
    }
    if (auto g = c.Get("percentile")) {
      calibration.percentile = r.Double(*g);
      if (!(calibration.percentile > 0 && calibration.percentile <= 100))
        r.Fail(*g, "must be in (0, 100]");
    }
    p.calibration = calibration;
  } else if (p.dtype == Dtype::kInt8) {
    p.calibration = Calibration{};
  }
  if (auto f = m.Get("fallback")) p.fallback = r.Strings(*f);
  if (auto f = m.Get("fallback_dtype")) {
    if (p.dtype != Dtype::kInt8 && p.dtype != Dtype::kInt8Dynamic) {
      r.Fail(*f, std::string("only allowed when dtype is int8 or int8-dynamic, not ") +
                     ToString(p.dtype));
    }
    p.fallback_dtype = r.Enum(*f, &ParseDtype, DtypeSpellings());
    if (p.fallback_dtype != Dtype::kFp32 && p.fallback_dtype != Dtype::kBf16) {
      r.Fail(*f, std::string("must be fp32 or bf16, not ") + ToString(p.fallback_dtype));
    }
  }
  if (auto f = m.Get("auto_fallback")) {
    if (p.dtype != Dtype::kInt8 && p.dtype != Dtype::kInt8Dynamic) {
      r.Fail(*f, std::string("only allowed when dtype is int8 or int8-dynamic, not ") +
                     ToString(p.dtype));
    }
    p.auto_fallback = r.Double(*f);
    if (!(*p.auto_fallback >= 0 && *p.auto_fallback < 1)) {
      r.Fail(*f, "must be an accuracy loss in [0, 1)");
    }
  }
  if (auto f = m.Get("smooth_quant")) {
    // The factors come from calibrated input ranges, which dynamic int8 never has.
    if (p.dtype != Dtype::kInt8) {
      r.Fail(*f, std::string("only allowed when dtype is int8, not ") + ToString(p.dtype));
    }
    YamlMap sq(r, *f, {"alpha"});
    SmoothQuant smooth;
    if (auto g = sq.Get("alpha")) {
      smooth.alpha = r.Double(*g);
      if (!(smooth.alpha >= 0 && smooth.alpha <= 1)) r.Fail(*g, "must be in [0, 1]");
    }
    p.smooth_quant = smooth;
  }
  if (auto f = m.Get("qparams")) {
    if (p.dtype != Dtype::kInt8) {
      r.Fail(*f, std::string("only allowed when dtype is int8, not ") + ToString(p.dtype));
    }
    YamlMap q(r, *f, {"graph", "inputs", "accumulators", "smoothing"});
    QParams qparams;
    if (auto g = q.Get("graph")) qparams.graph = r.NonEmptyString(*g);
    auto read_ops = [&](const YamlValue& ops, std::map<std::string, ActivationQParams>& into) {
      for (const YamlReader::Entry& entry : r.Entries(ops)) {
        const YamlValue& value = entry.value;
        YamlMap op(r, value, {"scale", "zero_point", "qmax"});
        ActivationQParams a;
        if (auto h = op.Get("scale")) {
          a.scale = r.Double(*h);
          if (!(a.scale > 0)) r.Fail(*h, "must be positive");
        }
        if (auto h = op.Get("qmax")) a.qmax = r.Int(*h, 1);
        if (a.qmax != 127 && a.qmax != 255) r.Fail(value, "qmax must be 127 or 255");
        if (auto h = op.Get("zero_point")) a.zero_point = r.Int(*h, 0);
        if (a.zero_point > a.qmax) r.Fail(value, "zero_point is above qmax");
        into[entry.key] = a;
      }
    };
    if (auto g = q.Get("inputs")) read_ops(*g, qparams.inputs);
    if (auto g = q.Get("accumulators")) read_ops(*g, qparams.accumulators);
    if (auto g = q.Get("smoothing")) {
      for (const YamlReader::Entry& entry : r.Entries(*g)) {
        std::vector<double>& factors = qparams.smoothing[entry.key];
        for (const YamlValue& item : r.Items(entry.value)) {
          factors.push_back(r.Double(item));
          if (!(factors.back() > 0)) r.Fail(item, "a smoothing factor must be positive");
        }
        if (factors.empty()) r.Fail(entry.value, "needs a factor per input feature");
      }
    }
    if (qparams.graph.empty()) r.Fail(*f, "needs the graph digest it was calibrated for");
    p.qparams = std::move(qparams);
  }
  return p;
}

InputSplit ReadInputSplit(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v, {"kind", "dim", "offsets"});
  InputSplit split;
  const YamlValue kind = m.Require("kind");
  const std::string name = r.NonEmptyString(kind);
  if (name == "dim") {
    split.kind = InputSplit::Kind::kDim;
    if (auto f = m.Get("dim")) split.dim = r.Int(*f, 0);
  } else if (name == "replicate") {
    split.kind = InputSplit::Kind::kReplicate;
  } else if (name == "bag_indices") {
    split.kind = InputSplit::Kind::kBagIndices;
    split.offsets = r.Int(m.Require("offsets"), 0);
  } else if (name == "bag_offsets") {
    split.kind = InputSplit::Kind::kBagOffsets;
  } else {
    r.Fail(kind, "'" + name + "' is not one of dim, replicate, bag_indices, bag_offsets");
  }
  if (split.kind != InputSplit::Kind::kDim && m.Get("dim")) {
    r.Fail(*m.Get("dim"), "only a split of kind dim takes a dim");
  }
  if (split.kind != InputSplit::Kind::kBagIndices && m.Get("offsets")) {
    r.Fail(*m.Get("offsets"), "only a split of kind bag_indices takes offsets");
  }
  return split;
}

Runtime ReadRuntime(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v,
            {"instances", "threads", "streams", "cores_per_stream", "micro_batch", "binding",
             "allocator", "env", "split"});
  Runtime rt;
  if (auto f = m.Get("instances")) rt.instances = r.Int(*f, 1);
  if (auto f = m.Get("threads")) rt.threads = r.Int(*f, 0);
  if (auto f = m.Get("streams")) rt.streams = r.Int(*f, 1);
  if (auto f = m.Get("cores_per_stream")) rt.cores_per_stream = r.Int(*f, 0);
  if (auto f = m.Get("micro_batch")) rt.micro_batch = r.Int(*f, 0);
  if (auto f = m.Get("binding")) rt.binding = r.Enum(*f, &ParseBinding, BindingSpellings());
  if (auto f = m.Get("allocator")) {
    rt.allocator = r.Enum(*f, &ParseAllocator, AllocatorSpellings());
  }
  if (auto f = m.Get("env")) {
    for (const YamlReader::Entry& entry : r.Entries(*f)) {
      if (!IsEnvName(entry.key)) {
        r.Fail(entry.key_mark, entry.value.path,
               "not an environment variable name (expected [A-Za-z_][A-Za-z0-9_]*)");
      }
      if (!entry.value.node.IsScalar()) {
        r.Fail(entry.value, "must be a scalar, got " + DescribeYaml(entry.value.node));
      }
      rt.env[entry.key] = entry.value.node.Scalar();
    }
  }
  if (auto f = m.Get("split")) {
    const std::vector<YamlValue> items = r.Items(*f);
    for (const YamlValue& item : items) rt.split.push_back(ReadInputSplit(r, item));
    for (size_t i = 0; i < rt.split.size(); ++i) {
      const InputSplit& s = rt.split[i];
      if (s.kind != InputSplit::Kind::kBagIndices) continue;
      const bool valid = s.offsets >= 0 && s.offsets < static_cast<int64_t>(rt.split.size()) &&
                         rt.split[s.offsets].kind == InputSplit::Kind::kBagOffsets;
      if (!valid) {
        r.Fail(items[i], "offsets: " + std::to_string(s.offsets) +
                             " is not the position of a bag_offsets input of this split");
      }
    }
  }
  return rt;
}

// [low, high]
std::pair<double, double> ReadInterval(const YamlReader& r, const YamlValue& v) {
  const std::vector<YamlValue> bounds = r.Items(v);
  if (bounds.size() != 2) {
    r.Fail(v, "expected [low, high], got " + std::to_string(bounds.size()) + " items");
  }
  const double low = r.Double(bounds[0]);
  const double high = r.Double(bounds[1]);
  if (low > high) r.Fail(v, "low bound exceeds high bound");
  return {low, high};
}

// An accuracy loss: a fraction of the metric in [0, 1].
double ReadLoss(const YamlReader& r, const YamlValue& v) {
  double loss = r.Double(v);
  if (!(loss >= 0 && loss <= 1)) r.Fail(v, "must be between 0 and 1");
  return loss;
}

Measured ReadMeasured(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v,
            {"items_per_s", "median_ms", "p90_ms", "p99_ms", "ci95_items_per_s", "ci95_latency_ms",
             "accuracy_loss"});
  Measured measured;
  if (auto f = m.Get("items_per_s")) measured.items_per_s = r.Double(*f);
  if (auto f = m.Get("median_ms")) measured.median_ms = r.Double(*f);
  if (auto f = m.Get("p90_ms")) measured.p90_ms = r.Double(*f);
  if (auto f = m.Get("p99_ms")) measured.p99_ms = r.Double(*f);
  if (auto f = m.Get("ci95_items_per_s")) measured.ci95_items_per_s = ReadInterval(r, *f);
  if (auto f = m.Get("ci95_latency_ms")) measured.ci95_latency_ms = ReadInterval(r, *f);
  if (auto f = m.Get("accuracy_loss")) measured.accuracy_loss = ReadLoss(r, *f);
  return measured;
}

Provenance ReadProvenance(const YamlReader& r, const YamlValue& v) {
  YamlMap m(r, v,
            {"study", "trial", "created", "ipex_tune_version", "objective", "latency_bound_ms",
             "max_accuracy_loss", "measured", "vs_stock"});
  Provenance p;
  if (auto f = m.Get("study")) p.study = r.Int(*f);
  if (auto f = m.Get("trial")) p.trial = r.Int(*f);
  if (auto f = m.Get("created")) p.created = r.String(*f);
  if (auto f = m.Get("ipex_tune_version")) p.ipex_tune_version = r.String(*f);
  if (auto f = m.Get("objective")) {
    p.objective = r.Enum(*f, &ParseObjective, ObjectiveSpellings());
  }
  if (auto f = m.Get("latency_bound_ms")) {
    p.latency_bound_ms = r.Double(*f);
    if (*p.latency_bound_ms <= 0) r.Fail(*f, "must be > 0");
  }
  if (auto f = m.Get("max_accuracy_loss")) p.max_accuracy_loss = ReadLoss(r, *f);
  if (auto f = m.Get("measured")) p.measured = ReadMeasured(r, *f);
  if (auto f = m.Get("vs_stock")) p.vs_stock = r.Double(*f);
  return p;
}

// `doc` is the document's root, its schema already checked.
Recipe ReadRecipe(const YamlReader& r, const YamlValue& doc) {
  YamlMap m(r, doc,
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
// and not 30.100000000000001, and every value still round-trips exactly. Integers up to 17
// digits keep all their digits, so 40 is written as 40 and not 4e+01.
void Put(YAML::Emitter& out, double v) {
  int precision = 17;
  int integer_digits = 1;
  for (double a = std::fabs(v); a >= 10 && integer_digits < 17; a /= 10) ++integer_digits;
  for (int p = integer_digits; p < 17 && std::isfinite(v); ++p) {
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
    if (c.algorithm == "moving_average_minmax")
      Key(out, "averaging_constant") << c.averaging_constant;
    if (c.algorithm == "percentile") Key(out, "percentile") << c.percentile;
    out << YAML::EndMap;
  }
  Key(out, "fallback");
  PutStrings(out, p.fallback);
  // Written only when it is not the default, so that recipes (and the keys made from their
  // text) written before it existed are unchanged, and only where the reader takes it.
  if (p.fallback_dtype != Dtype::kFp32 &&
      (p.dtype == Dtype::kInt8 || p.dtype == Dtype::kInt8Dynamic))
    Key(out, "fallback_dtype") << ToString(p.fallback_dtype);
  if (p.auto_fallback) {
    Key(out, "auto_fallback");
    Put(out, *p.auto_fallback);
  }
  if (p.smooth_quant) {
    Key(out, "smooth_quant") << YAML::Flow << YAML::BeginMap;
    Key(out, "alpha");
    Put(out, p.smooth_quant->alpha);
    out << YAML::EndMap;
  }
  if (p.qparams) {
    Key(out, "qparams") << YAML::BeginMap;
    Key(out, "graph");
    Put(out, p.qparams->graph);
    auto put_ops = [&](const char* key, const std::map<std::string, ActivationQParams>& ops) {
      Key(out, key) << YAML::BeginMap;
      for (const auto& [name, a] : ops) {  // std::map: sorted, hence deterministic
        out << YAML::Key;
        Put(out, name);
        out << YAML::Value << YAML::Flow << YAML::BeginMap;
        Key(out, "scale");
        Put(out, a.scale);
        Key(out, "zero_point") << a.zero_point;
        Key(out, "qmax") << a.qmax;
        out << YAML::EndMap;
      }
      out << YAML::EndMap;
    };
    put_ops("inputs", p.qparams->inputs);
    if (!p.qparams->accumulators.empty()) put_ops("accumulators", p.qparams->accumulators);
    if (!p.qparams->smoothing.empty()) {
      Key(out, "smoothing") << YAML::BeginMap;
      for (const auto& [name, factors] : p.qparams->smoothing) {
        out << YAML::Key;
        Put(out, name);
        out << YAML::Value << YAML::Flow << YAML::BeginSeq;
        for (double f : factors) Put(out, f);
        out << YAML::EndSeq;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

void PutInputSplit(YAML::Emitter& out, const InputSplit& split) {
  out << YAML::Flow << YAML::BeginMap;
  switch (split.kind) {
    case InputSplit::Kind::kDim:
      Key(out, "kind") << "dim";
      Key(out, "dim") << split.dim;
      break;
    case InputSplit::Kind::kReplicate:
      Key(out, "kind") << "replicate";
      break;
    case InputSplit::Kind::kBagIndices:
      Key(out, "kind") << "bag_indices";
      Key(out, "offsets") << split.offsets;
      break;
    case InputSplit::Kind::kBagOffsets:
      Key(out, "kind") << "bag_offsets";
      break;
  }
  out << YAML::EndMap;
}

void PutRuntime(YAML::Emitter& out, const Runtime& rt) {
  out << YAML::BeginMap;
  // Written only when it says something, so single-process recipes read as they always did.
  if (rt.instances != 1) Key(out, "instances") << rt.instances;
  Key(out, "threads") << rt.threads;
  Key(out, "streams") << rt.streams;
  Key(out, "cores_per_stream") << rt.cores_per_stream;
  if (rt.micro_batch != 0) Key(out, "micro_batch") << rt.micro_batch;
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
  if (!rt.split.empty()) {
    Key(out, "split");
    out << YAML::BeginSeq;
    for (const InputSplit& split : rt.split) PutInputSplit(out, split);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void PutInterval(YAML::Emitter& out, const std::pair<double, double>& interval) {
  out << YAML::Flow << YAML::BeginSeq;
  Put(out, interval.first);
  Put(out, interval.second);
  out << YAML::EndSeq;
}

void PutProvenance(YAML::Emitter& out, const Provenance& p) {
  out << YAML::BeginMap;
  Key(out, "study") << p.study;
  Key(out, "trial") << p.trial;
  Key(out, "created");
  Put(out, p.created);
  Key(out, "ipex_tune_version");
  Put(out, p.ipex_tune_version);
  if (p.objective) Key(out, "objective") << ToString(*p.objective);
  if (p.latency_bound_ms) {
    Key(out, "latency_bound_ms");
    Put(out, *p.latency_bound_ms);
  }
  if (p.max_accuracy_loss) {
    Key(out, "max_accuracy_loss");
    Put(out, *p.max_accuracy_loss);
  }
  Key(out, "measured") << YAML::BeginMap;
  Key(out, "items_per_s");
  Put(out, p.measured.items_per_s);
  Key(out, "median_ms");
  Put(out, p.measured.median_ms);
  Key(out, "p90_ms");
  Put(out, p.measured.p90_ms);
  if (p.measured.p99_ms) {
    Key(out, "p99_ms");
    Put(out, *p.measured.p99_ms);
  }
  if (p.measured.ci95_items_per_s) {
    Key(out, "ci95_items_per_s");
    PutInterval(out, *p.measured.ci95_items_per_s);
  }
  if (p.measured.ci95_latency_ms) {
    Key(out, "ci95_latency_ms");
    PutInterval(out, *p.measured.ci95_latency_ms);
  }
  if (p.measured.accuracy_loss) {
    Key(out, "accuracy_loss");
    Put(out, *p.measured.accuracy_loss);
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
  const YamlReader reader(source);
  return reader.Located(
      [&] { return ReadRecipe(reader, reader.Document(yaml_text, "recipe", kRecipeSchema)); });
}

Recipe LoadRecipe(const std::string& path) {
  return ParseRecipe(ReadTextFile(path, "recipe file"), path);
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
