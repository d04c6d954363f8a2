#include "tuner/space_yaml.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "base/error.h"
#include "recipes/recipe.h"

namespace ipt::tuner {
namespace {

// A range longer than this is a typo (`range: [1, 10000]`), and would otherwise allocate and
// enumerate a value per integer before the grid limit could say so.
constexpr int64_t kMaxRangeValues = 4096;

// A node with what error messages need: where it is and how the user would name it.
struct Value {
  YAML::Node node;
  // Scalars point at themselves. Maps and lists point at their key: the mark of a block map is
  // its first child, and the mark of an empty value is the next token.
  YAML::Mark mark;
  std::string path;  // "dimensions.threads.range"
};

// yaml-cpp lines are 0-based and a synthesised node has no mark (-1).
int LineOf(const YAML::Mark& mark) { return mark.line < 0 ? 1 : mark.line + 1; }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return (node.Tag() == "!" ? "the quoted string '" : "'") + node.Scalar() + "'";
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
         name == "cores_per_stream" || name == "batch";
}

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

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
    if (v.node.Scalar().empty()) Fail(v, "must not be empty");
    return v.node.Scalar();
  }

  // Plain scalars only: `threads: ["2"]` is a string in YAML, and accepting it would make the
  // file mean different things to different readers.
  int64_t Int(const Value& v, int64_t min) const {
    const std::string problem = "expected an integer, got " + Describe(v.node);
    const bool plain =
        v.node.IsScalar() && (v.node.Tag() == "?" || v.node.Tag() == "tag:yaml.org,2002:int");
    if (!plain) Fail(v, problem);
    int64_t out = 0;
    try {
      out = v.node.as<int64_t>();
    } catch (const YAML::Exception&) {
      Fail(v, problem);
    }
    if (out < min) Fail(v, fmt::format("must be >= {}, got {}", min, out));
    return out;
  }

  std::vector<Value> Items(const Value& v) const {
    if (!v.node.IsSequence()) Fail(v, "expected a list, got " + Describe(v.node));
    std::vector<Value> items;
    for (size_t i = 0; i < v.node.size(); ++i) {
      const YAML::Node item = v.node[i];
      // An empty item has the mark of whatever follows it; its list is the better pointer.
      items.push_back(
          {item, item.IsNull() ? v.mark : item.Mark(), fmt::format("{}[{}]", v.path, i)});
    }
    return items;
  }

  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    Value value;
  };
  // The entries of a map in file order; rejects duplicate keys, which yaml-cpp would keep and
  // leave the reader to pick one silently.
  std::vector<Entry> Entries(const Value& v) const {
    if (!v.node.IsMap()) Fail(v, "expected a map, got " + Describe(v.node));
    std::vector<Entry> entries;
    std::set<std::string> seen;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) Fail(key.Mark(), v.path, "keys must be strings, got " + Describe(key));
      const std::string& name = key.Scalar();
      const std::string path = v.path.empty() ? name : v.path + "." + name;
      if (!seen.insert(name).second) Fail(key.Mark(), path, "duplicate key");
      entries.push_back(
          {name, key.Mark(), {value, value.IsScalar() ? value.Mark() : key.Mark(), path}});
    }
    return entries;
  }

  // Entries whose keys must come from `allowed`.
  std::vector<Entry> Fields(const Value& v, std::initializer_list<const char*> allowed) const {
    std::vector<Entry> entries = Entries(v);
    for (const Entry& entry : entries) {
      const bool known = std::any_of(allowed.begin(), allowed.end(),
                                     [&](const char* key) { return entry.key == key; });
      if (!known) {
        Fail(entry.key_mark, entry.value.path,
             "unknown key; allowed keys are " + Join({allowed.begin(), allowed.end()}));
      }
    }
    return entries;
  }

  // One value of dimension `dimension`, validated and in its canonical JSON form.
  nlohmann::json DimensionValue(const std::string& dimension, const Value& v) const {
    if (IsIntegerDimension(dimension)) return Int(v, 1);
    if (dimension == "fusions") {
      // A value is a fusion set: the passes run together. The core validates the names.
      nlohmann::json set = nlohmann::json::array();
      for (const Value& item : Items(v)) {
        const std::string name = String(item);
        if (std::find(set.begin(), set.end(), name) != set.end()) {
          Fail(item, "fusion '" + name + "' listed twice in one set");
        }
        set.push_back(name);
      }
      return set;
    }
    const std::string s = String(v);
    const auto check = [&](bool known, const std::string& spellings) {
      if (!known) Fail(v, "'" + s + "' is not one of " + spellings);
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
    return s;  // calibration: an algorithm name, which the core validates
  }

 private:
  std::string source_;
};

struct PendingConstraint {
  std::string text;
  Value where;
};

std::vector<nlohmann::json> ReadValues(const Reader& r, const std::string& dimension,
                                       const Value& list) {
  const std::vector<Value> items = r.Items(list);
  if (items.empty()) r.Fail(list, "needs at least one value");
  std::vector<nlohmann::json> values;
  for (const Value& item : items) {
    nlohmann::json value = r.DimensionValue(dimension, item);
    if (std::find(values.begin(), values.end(), value) != values.end()) {
      r.Fail(item, "duplicate value " + Show(value));
    }
    values.push_back(std::move(value));
  }
  return values;
}

std::vector<nlohmann::json> ReadRange(const Reader& r, const std::string& dimension,
                                      const Value& range, const std::optional<Value>& step) {
  if (!IsIntegerDimension(dimension)) {
    r.Fail(range, "a range needs an integer dimension; list the values of '" + dimension + "'");
  }
  const std::vector<Value> bounds = r.Items(range);
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
    const Reader& r, const std::string& dimension, const Value& when,
    const std::vector<SpaceDimension>& earlier) {
  const std::vector<Reader::Entry> entries = r.Entries(when);
  if (entries.size() != 1) {
    r.Fail(when, "expected one dimension and its value or values, e.g. {dtype: int8}");
  }
  const Reader::Entry& entry = entries[0];
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
  std::vector<Value> items;
  if (entry.value.node.IsSequence()) {
    items = r.Items(entry.value);
    if (items.empty()) r.Fail(entry.value, "needs at least one value");
  } else {
    items = {entry.value};
  }
  std::vector<nlohmann::json> values;
  for (const Value& item : items) {
    nlohmann::json value = r.DimensionValue(name, item);
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

SpaceDimension ReadDimension(const Reader& r, const Reader::Entry& entry,
                             const std::vector<SpaceDimension>& earlier,
                             std::vector<PendingConstraint>& constraints) {
  SpaceDimension dim;
  dim.name = entry.key;
  const auto& known = SpaceDimensionNames();
  if (std::find(known.begin(), known.end(), dim.name) == known.end()) {
    r.Fail(entry.key_mark, entry.value.path, "unknown dimension; known: " + Join(known));
  }
  const Value& spec = entry.value;
  if (!spec.node.IsMap()) {
    dim.values = ReadValues(r, dim.name, spec);
    return dim;
  }
  std::optional<Value> values;
  std::optional<Value> range;
  std::optional<Value> step;
  for (const Reader::Entry& field :
       r.Fields(spec, {"values", "range", "step", "when", "constraint"})) {
    if (field.key == "values") values = field.value;
    if (field.key == "range") range = field.value;
    if (field.key == "step") step = field.value;
    if (field.key == "when") dim.when = ReadWhen(r, dim.name, field.value, earlier);
    if (field.key == "constraint") constraints.push_back({r.String(field.value), field.value});
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

SpaceDefinition ReadSpace(const Reader& r, const YAML::Node& root) {
  const Value doc{root, root.Mark(), ""};
  if (!root.IsMap()) r.Fail(doc, "expected a map at the top level, got " + Describe(root));

  // The schema comes first: a later version may have keys this one would call unknown, and
  // "wrong schema" is the message that tells the user what to do.
  const std::vector<Reader::Entry> entries = r.Entries(doc);
  const auto schema = std::find_if(entries.begin(), entries.end(),
                                   [](const Reader::Entry& e) { return e.key == "schema"; });
  const std::string expected = std::string("expected '") + kSpaceSchema + "'";
  if (schema == entries.end()) r.Fail(doc.mark, "schema", "required key is missing; " + expected);
  if (r.String(schema->value) != kSpaceSchema) {
    r.Fail(schema->value, "unsupported schema '" + schema->value.node.Scalar() + "'; " + expected);
  }

  SpaceDefinition space;
  std::vector<PendingConstraint> constraints;
  bool has_dimensions = false;
  for (const Reader::Entry& entry : r.Fields(doc, {"schema", "dimensions", "constraints"})) {
    if (entry.key == "dimensions") {
      has_dimensions = true;
      for (const Reader::Entry& dim : r.Entries(entry.value)) {
        space.dimensions.push_back(ReadDimension(r, dim, space.dimensions, constraints));
      }
      if (space.dimensions.empty()) r.Fail(entry.value, "needs at least one dimension");
    } else if (entry.key == "constraints") {
      for (const Value& item : r.Items(entry.value)) {
        constraints.push_back({r.String(item), item});
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
  const Reader reader(source);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    reader.Fail(e.mark, "", "YAML syntax error: " + e.msg);
  }
  if (docs.empty() || docs[0].IsNull()) {
    reader.Fail(
        YAML::Mark::null_mark(), "",
        std::string("empty document; expected a search space with schema: ") + kSpaceSchema);
  }
  if (docs.size() > 1) {
    reader.Fail(docs[1].Mark(), "",
                fmt::format("expected one search space, found {} YAML documents", docs.size()));
  }
  try {
    return ReadSpace(reader, docs[0]);
  } catch (const YAML::Exception& e) {
    // The reader checks types before converting, so this is a yaml-cpp surprise; the user's file
    // still caused it and deserves a located message.
    reader.Fail(e.mark, "", e.msg);
  }
}

SpaceDefinition LoadSpace(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error(ErrorCode::kNotFound, "search space file '" + path + "' does not exist");
    }
    throw Error(ErrorCode::kIo,
                "cannot open search space file '" + path + "': " + std::strerror(err));
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
      throw Error(ErrorCode::kIo,
                  "cannot read search space file '" + path + "': " + std::strerror(err));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ParseSpace(text, path);
}

}  // namespace ipt::tuner
