#include "tuner/space_yaml.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "base/error.h"
#include "recipes/recipe.h"
#include "recipes/yaml_reader.h"

namespace ipt::tuner {
namespace {

using recipes::YamlReader;
using recipes::YamlValue;

// A range longer than this is a typo (`range: [1, 10000]`), and would otherwise allocate and
// enumerate a value per integer before the grid limit could say so.
constexpr int64_t kMaxRangeValues = 4096;

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string Show(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

bool IsIntegerDimension(const std::string& name) {
  return name == "threads" || name == "calibration_samples" || name == "streams" ||
         name == "cores_per_stream" || name == "instances" || name == "micro_batch" ||
         name == "batch";
}

// One value of dimension `dimension`, validated and in its canonical JSON form.
nlohmann::json DimensionValue(const YamlReader& r, const std::string& dimension,
                              const YamlValue& v) {
  if (IsIntegerDimension(dimension)) return r.Int(v, 1);
  if (dimension == "auto_fallback") {
    // `off`, `target` (the study's --accuracy-loss), or the accuracy loss to reach by keeping
    // the most sensitive ops in fp32.
    const std::string word = r.NonEmptyString(v);
    if (word == "off" || word == "target") return word;
    const double loss = r.Double(v);
    if (!(loss >= 0 && loss < 1)) r.Fail(v, "must be off, target or an accuracy loss in [0, 1)");
    return loss;
  }
  if (dimension == "smooth_quant") {
    // `off`, or SmoothQuant's alpha (recipes::SmoothQuant).
    if (r.NonEmptyString(v) == "off") return "off";
    const double alpha = r.Double(v);
    if (!(alpha >= 0 && alpha <= 1)) r.Fail(v, "must be off or an alpha in [0, 1]");
    return alpha;
  }
  if (dimension == "fusions") {
    // A value is a fusion set: the passes run together. The core validates the names.
    nlohmann::json set = nlohmann::json::array();
    for (const YamlValue& item : r.Items(v)) {
      const std::string name = r.NonEmptyString(item);
      if (std::find(set.begin(), set.end(), name) != set.end()) {
        r.Fail(item, "fusion '" + name + "' listed twice in one set");
      }
      set.push_back(name);
    }
    return set;
  }
  const std::string s = r.NonEmptyString(v);
  const auto check = [&](bool known, const std::string& spellings) {
    if (!known) r.Fail(v, "'" + s + "' is not one of " + spellings);
  };
  if (dimension == "dtype") check(recipes::ParseDtype(s).has_value(), recipes::DtypeSpellings());
  if (dimension == "binding") {
    check(recipes::ParseBinding(s).has_value(), recipes::BindingSpellings());
  }
  if (dimension == "allocator") {
    check(recipes::ParseAllocator(s).has_value(), recipes::AllocatorSpellings());
  }
  if (dimension == "memory_format") {
    check(recipes::ParseMemoryFormat(s).has_value(), recipes::MemoryFormatSpellings());
  }
  if (dimension == "omp_wait_policy") check(s == "active" || s == "passive", "active, passive");
  if (dimension == "fallback_dtype") check(s == "fp32" || s == "bf16", "fp32, bf16");
  return s;  // calibration: an algorithm name, which the core validates
}

struct PendingConstraint {
  std::string text;
  YamlValue where;
};

std::vector<nlohmann::json> ReadValues(const YamlReader& r, const std::string& dimension,
                                       const YamlValue& list) {
  const std::vector<YamlValue> items = r.Items(list);
  if (items.empty()) r.Fail(list, "needs at least one value");
  std::vector<nlohmann::json> values;
  for (const YamlValue& item : items) {
    nlohmann::json value = DimensionValue(r, dimension, item);
    if (std::find(values.begin(), values.end(), value) != values.end()) {
      r.Fail(item, "duplicate value " + Show(value));
    }
    values.push_back(std::move(value));
  }
  return values;
}

std::vector<nlohmann::json> ReadRange(const YamlReader& r, const std::string& dimension,
                                      const YamlValue& range,
                                      const std::optional<YamlValue>& step) {
  if (!IsIntegerDimension(dimension)) {
    r.Fail(range, "a range needs an integer dimension; list the values of '" + dimension + "'");
  }
  const std::vector<YamlValue> bounds = r.Items(range);
  if (bounds.size() != 2) {
    r.Fail(range, fmt::format("expected [first, last], got {} items", bounds.size()));
  }
  const int64_t first = r.Int(bounds[0], 1);
  const int64_t last = r.Int(bounds[1], 1);
  if (first > last) r.Fail(range, fmt::format("first ({}) exceeds last ({})", first, last));
  const int64_t stride = step ? r.Int(*step, 1) : 1;
  const int64_t count = (last - first) / stride + 1;
  if (count > kMaxRangeValues) {
    r.Fail(range, fmt::format("{} values; at most {}", count, kMaxRangeValues));
  }
  std::vector<nlohmann::json> values;
  for (int64_t v = first; v <= last; v += stride) values.emplace_back(v);
  return values;
}

// `when: {dimension: value}` or `when: {dimension: [values]}`, naming a dimension declared above.
std::pair<std::string, std::vector<nlohmann::json>> ReadWhen(
    const YamlReader& r, const std::string& dimension, const YamlValue& when,
    const std::vector<SpaceDimension>& earlier) {
  const std::vector<YamlReader::Entry> entries = r.Entries(when);
  if (entries.size() != 1) {
    r.Fail(when, "expected one dimension and its value or values, e.g. {dtype: int8}");
  }
  const YamlReader::Entry& entry = entries[0];
  const std::string& name = entry.key;
  const auto& known = SpaceDimensionNames();
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    r.Fail(entry.key_mark, entry.value.path, "unknown dimension '" + name + "'");
  }
  const auto target = std::find_if(earlier.begin(), earlier.end(),
                                   [&](const SpaceDimension& d) { return d.name == name; });
  if (target == earlier.end()) {
    r.Fail(entry.key_mark, entry.value.path,
           "'" + name + "' must be a dimension declared before '" + dimension + "'");
  }
  std::vector<YamlValue> items;
  if (entry.value.node.IsSequence()) {
    items = r.Items(entry.value);
    if (items.empty()) r.Fail(entry.value, "needs at least one value");
  } else {
    items = {entry.value};
  }
  std::vector<nlohmann::json> values;
  for (const YamlValue& item : items) {
    nlohmann::json value = DimensionValue(r, name, item);
    if (std::find(target->values.begin(), target->values.end(), value) == target->values.end()) {
      std::vector<std::string> takes;
      for (const nlohmann::json& v : target->values) takes.push_back(Show(v));
      r.Fail(item,
             "'" + name + "' never takes " + Show(value) + " (its values: " + Join(takes) + ")");
    }
    values.push_back(std::move(value));
  }
  return {name, values};
}

SpaceDimension ReadDimension(const YamlReader& r, const YamlReader::Entry& entry,
                             const std::vector<SpaceDimension>& earlier,
                             std::vector<PendingConstraint>& constraints) {
  SpaceDimension dim;
  dim.name = entry.key;
  const auto& known = SpaceDimensionNames();
  if (std::find(known.begin(), known.end(), dim.name) == known.end()) {
    r.Fail(entry.key_mark, entry.value.path, "unknown dimension; known: " + Join(known));
  }
  const YamlValue& spec = entry.value;
  if (!spec.node.IsMap()) {
    dim.values = ReadValues(r, dim.name, spec);
    return dim;
  }
  std::optional<YamlValue> values;
  std::optional<YamlValue> range;
  std::optional<YamlValue> step;
  for (const YamlReader::Entry& field :
       r.Fields(spec, {"values", "range", "step", "when", "constraint"})) {
    if (field.key == "values") values = field.value;
    if (field.key == "range") range = field.value;
    if (field.key == "step") step = field.value;
    if (field.key == "when") dim.when = ReadWhen(r, dim.name, field.value, earlier);
    if (field.key == "constraint")
      constraints.push_back({r.NonEmptyString(field.value), field.value});
  }
  if (values && range) r.Fail(*range, "give either values or range, not both");
  if (step && !range) r.Fail(*step, "a step needs a range");
  if (values) {
    dim.values = ReadValues(r, dim.name, *values);
  } else if (range) {
    dim.values = ReadRange(r, dim.name, *range, step);
  } else {
    r.Fail(spec, "needs values or a range");
  }
  return dim;
}

// `doc` is the document's root, its schema already checked.
SpaceDefinition ReadSpace(const YamlReader& r, const YamlValue& doc) {
  SpaceDefinition space;
  std::vector<PendingConstraint> constraints;
  bool has_dimensions = false;
  for (const YamlReader::Entry& entry : r.Fields(doc, {"schema", "dimensions", "constraints"})) {
    if (entry.key == "dimensions") {
      has_dimensions = true;
      for (const YamlReader::Entry& dim : r.Entries(entry.value)) {
        space.dimensions.push_back(ReadDimension(r, dim, space.dimensions, constraints));
      }
      if (space.dimensions.empty()) r.Fail(entry.value, "needs at least one dimension");
    } else if (entry.key == "constraints") {
      for (const YamlValue& item : r.Items(entry.value)) {
        constraints.push_back({r.NonEmptyString(item), item});
      }
    }
  }
  if (!has_dimensions) r.Fail(doc.mark, "dimensions", "required key is missing");

  // Constraints may name any dimension, including ones declared after them.
  std::vector<std::string> integers;
  for (const SpaceDimension& d : space.dimensions) {
    if (IsIntegerDimension(d.name)) integers.push_back(d.name);
  }
  for (const PendingConstraint& c : constraints) {
    try {
      Constraint::Parse(c.text, integers);
    } catch (const Error& e) {
      r.Fail(c.where, std::string("does not parse: ") + e.what());
    }
    space.constraints.push_back(c.text);
  }
  return space;
}

}  // namespace

SpaceDefinition ParseSpace(const std::string& yaml_text, const std::string& source) {
  const YamlReader reader(source);
  return reader.Located(
      [&] { return ReadSpace(reader, reader.Document(yaml_text, "search space", kSpaceSchema)); });
}

SpaceDefinition LoadSpace(const std::string& path) {
  return ParseSpace(recipes::ReadTextFile(path, "search space file"), path);
}

}  // namespace ipt::tuner
