// The strict YAML reader shared by recipes and search spaces (see yaml_reader.h).
#include "recipes/yaml_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <utility>

#include "base/error.h"

namespace ipt::recipes {
namespace {

// yaml-cpp lines are 0-based and a synthesised node has no mark (-1).
int LineOf(const YAML::Mark& mark) { return mark.line < 0 ? 1 : mark.line + 1; }

bool IsPlainScalarOf(const YAML::Node& node, std::initializer_list<const char*> yaml_types) {
  if (!node.IsScalar()) return false;
  if (node.Tag() == "?") return true;
  for (const char* type : yaml_types) {
    if (node.Tag() == std::string("tag:yaml.org,2002:") + type) return true;
  }
  return false;
}

std::string Join(std::initializer_list<const char*> items) {
  std::string out;
  for (const char* item : items) out += (out.empty() ? "" : ", ") + std::string(item);
  return out;
}

}  // namespace

std::string DescribeYaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      std::string text = node.Scalar();
      constexpr size_t kMaxShown = 60;
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

YamlReader::YamlReader(std::string source) : source_(std::move(source)) {}

void YamlReader::Fail(const YAML::Mark& mark, const std::string& path,
                      const std::string& problem) const {
  std::string message = source_ + ":" + std::to_string(LineOf(mark)) + ": ";
  if (!path.empty()) message += path + ": ";
  throw Error(ErrorCode::kInvalidArgument, message + problem);
}

void YamlReader::Fail(const YamlValue& v, const std::string& problem) const {
  Fail(v.mark, v.path, problem);
}

std::string YamlReader::String(const YamlValue& v) const {
  if (!v.node.IsScalar()) Fail(v, "expected a string, got " + DescribeYaml(v.node));
  return v.node.Scalar();
}

std::string YamlReader::NonEmptyString(const YamlValue& v) const {
  std::string s = String(v);
  if (s.empty()) Fail(v, "must not be empty");
  return s;
}

int64_t YamlReader::Int(const YamlValue& v, std::optional<int64_t> min) const {
  const std::string problem = "expected an integer, got " + DescribeYaml(v.node);
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

bool YamlReader::Bool(const YamlValue& v) const {
  const std::string problem = "expected true or false, got " + DescribeYaml(v.node);
  if (!IsPlainScalarOf(v.node, {"bool"})) Fail(v, problem);
  try {
    return v.node.as<bool>();
  } catch (const YAML::Exception&) {
    Fail(v, problem);
  }
}

double YamlReader::Double(const YamlValue& v) const {
  const std::string problem = "expected a number, got " + DescribeYaml(v.node);
  if (!IsPlainScalarOf(v.node, {"float", "int"})) Fail(v, problem);
  double out = 0;
  try {
    out = v.node.as<double>();
  } catch (const YAML::Exception&) {
    Fail(v, problem);
  }
  // yaml-cpp reads .inf and .nan; a measurement or ratio that is not finite is a bug upstream.
  if (!std::isfinite(out)) Fail(v, "must be a finite number, got " + DescribeYaml(v.node));
  return out;
}

std::vector<YamlValue> YamlReader::Items(const YamlValue& v) const {
  if (!v.node.IsSequence()) Fail(v, "expected a list, got " + DescribeYaml(v.node));
  std::vector<YamlValue> items;
  for (size_t i = 0; i < v.node.size(); ++i) {
    const YAML::Node item = v.node[i];
    // An empty item has the mark of whatever follows it; its list is the better pointer.
    items.push_back(
        {item, item.IsNull() ? v.mark : item.Mark(), v.path + "[" + std::to_string(i) + "]"});
  }
  return items;
}

std::vector<std::string> YamlReader::Strings(const YamlValue& v) const {
  std::vector<std::string> out;
  for (const YamlValue& item : Items(v)) out.push_back(String(item));
  return out;
}

std::vector<YamlReader::Entry> YamlReader::Entries(const YamlValue& v) const {
  if (!v.node.IsMap()) Fail(v, "expected a map, got " + DescribeYaml(v.node));
  std::vector<Entry> entries;
  std::set<std::string> seen;
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) Fail(key.Mark(), v.path, "keys must be strings, got " + DescribeYaml(key));
    const std::string& name = key.Scalar();
    const std::string path = v.path.empty() ? name : v.path + "." + name;
    if (!seen.insert(name).second) Fail(key.Mark(), path, "duplicate key");
    entries.push_back(
        {name, key.Mark(), {value, value.IsScalar() ? value.Mark() : key.Mark(), path}});
  }
  return entries;
}

std::vector<YamlReader::Entry> YamlReader::Fields(
    const YamlValue& v, std::initializer_list<const char*> allowed) const {
  std::vector<Entry> entries = Entries(v);
  for (const Entry& entry : entries) {
    const bool known = std::any_of(allowed.begin(), allowed.end(),
                                   [&](const char* key) { return entry.key == key; });
    if (!known) {
      Fail(entry.key_mark, entry.value.path, "unknown key; allowed keys are " + Join(allowed));
    }
  }
  return entries;
}

YamlValue YamlReader::Document(const std::string& text, const std::string& noun,
                               const char* schema) const {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    Fail(e.mark, "", "YAML syntax error: " + e.msg);
  }
  if (docs.empty() || docs[0].IsNull()) {
    Fail(YAML::Mark::null_mark(), "",
         "empty document; expected a " + noun + " with schema: " + schema);
  }
  if (docs.size() > 1) {
    Fail(docs[1].Mark(), "",
         "expected one " + noun + ", found " + std::to_string(docs.size()) + " YAML documents");
  }
  const YamlValue doc{docs[0], docs[0].Mark(), ""};
  if (!doc.node.IsMap())
    Fail(doc, "expected a map at the top level, got " + DescribeYaml(doc.node));
  std::optional<YamlValue> found;
  for (const Entry& entry : Entries(doc)) {
    if (entry.key == "schema") found = entry.value;
  }
  const std::string expected = std::string("expected '") + schema + "'";
  if (!found) Fail(doc.mark, "schema", "required key is missing; " + expected);
  if (String(*found) != schema) {
    Fail(*found, "unsupported schema '" + found->node.Scalar() + "'; " + expected);
  }
  return doc;
}

YamlMap::YamlMap(const YamlReader& reader, const YamlValue& v,
                 std::initializer_list<const char*> allowed)
    : reader_(reader), self_(v) {
  for (YamlReader::Entry& entry : reader.Fields(v, allowed)) {
    fields_.emplace(entry.key, std::move(entry.value));
  }
}

std::optional<YamlValue> YamlMap::Get(const std::string& key) const {
  const auto it = fields_.find(key);
  if (it == fields_.end()) return std::nullopt;
  return it->second;
}

YamlValue YamlMap::Require(const std::string& key) const {
  std::optional<YamlValue> v = Get(key);
  if (!v)
    reader_.Fail(self_.mark, self_.path.empty() ? key : self_.path + "." + key,
                 "required key is missing");
  return *v;
}

std::string ReadTextFile(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw Error(ErrorCode::kNotFound, what + " '" + path + "' does not exist");
    throw Error(ErrorCode::kIo, "cannot open " + what + " '" + path + "': " + std::strerror(err));
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
      throw Error(ErrorCode::kIo, "cannot read " + what + " '" + path + "': " + std::strerror(err));
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace ipt::recipes
