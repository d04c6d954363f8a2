// Strict reading of ipex-tune's own YAML files (recipes, search spaces), shared by
// recipes/recipe_yaml.cpp and tuner/space_yaml.cpp so both reject the same things in the same
// words. Every rejection is ipt::Error(kInvalidArgument) "<source>:<line>: <key path>: <problem>",
// e.g. "r.yaml:7: precision.dtype: 'fp16' is not one of ..."; problems with the document as a
// whole (YAML syntax, an empty text, several documents) have no key path.
//
// This header includes yaml-cpp: it is for the readers inside ipex-tune, whose libraries link
// yaml-cpp themselves. Consumers of recipes use recipe_yaml.h, which includes no yaml-cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ipt::recipes {

// A node with what error messages need: where it is and how the user would name it.
struct YamlValue {
  YAML::Node node;
  // Scalars point at themselves. Maps, lists and missing values point at their key, because the
  // mark of a block map is its first child and the mark of an empty value is the next token.
  YAML::Mark mark;
  std::string path;  // "workload.inputs[0].shape"
};

// How a node reads in a message: "'8'", "the quoted string '8'", "a list", "null". Long scalars
// are cut, so a pasted blob does not drown the message.
std::string DescribeYaml(const YAML::Node& node);

class YamlReader {
 public:
  // `source` names the text in error messages (a path, "<stdin>").
  explicit YamlReader(std::string source);

  [[noreturn]] void Fail(const YAML::Mark& mark, const std::string& path,
                         const std::string& problem) const;
  [[noreturn]] void Fail(const YamlValue& v, const std::string& problem) const;

  // Scalars. Numbers and booleans must be plain scalars: `batch: "8"` is a string in YAML, and
  // accepting it would make the file mean different things to different readers.
  std::string String(const YamlValue& v) const;
  std::string NonEmptyString(const YamlValue& v) const;
  int64_t Int(const YamlValue& v, std::optional<int64_t> min = std::nullopt) const;
  bool Bool(const YamlValue& v) const;
  double Double(const YamlValue& v) const;  // finite only
  template <typename E>
  E Enum(const YamlValue& v, std::optional<E> (*parse)(const std::string&),
         const std::string& spellings) const {
    const std::string s = String(v);
    const std::optional<E> e = parse(s);
    if (!e) Fail(v, "'" + s + "' is not one of " + spellings);
    return *e;
  }

  // Lists: items with paths "key[0]", "key[1]"...
  std::vector<YamlValue> Items(const YamlValue& v) const;
  std::vector<std::string> Strings(const YamlValue& v) const;

  // Maps: the entries in file order, keyed by their scalar keys. Rejects duplicate keys, which
  // yaml-cpp would keep and leave the reader to pick one silently.
  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    YamlValue value;
  };
  std::vector<Entry> Entries(const YamlValue& v) const;
  // Entries whose keys must come from `allowed` ("unknown key; allowed keys are ...").
  std::vector<Entry> Fields(const YamlValue& v, std::initializer_list<const char*> allowed) const;

  // The one document of `text` as the root value: a syntax error, an empty text or several
  // documents fail. `noun` names what the document should be ("recipe", "search space").
  // Then the top level must be a map whose `schema` is `schema`; it is checked before any other
  // key, because a later version may have keys this one would call unknown, and "wrong schema"
  // is the message that tells the user what to do.
  YamlValue Document(const std::string& text, const std::string& noun, const char* schema) const;

  // Runs `read` and turns a yaml-cpp exception into a located error: the readers check types
  // before converting, so that is a yaml-cpp surprise, but the user's file still caused it.
  template <typename Read>
  auto Located(Read&& read) const -> decltype(read()) {
    try {
      return read();
    } catch (const YAML::Exception& e) {
      Fail(e.mark, "", e.msg);
    }
  }

 private:
  std::string source_;
};

// A map whose keys must come from a fixed list, looked up by name.
class YamlMap {
 public:
  YamlMap(const YamlReader& reader, const YamlValue& v, std::initializer_list<const char*> allowed);

  std::optional<YamlValue> Get(const std::string& key) const;
  // Fails with "required key is missing" at the map.
  YamlValue Require(const std::string& key) const;

 private:
  const YamlReader& reader_;
  YamlValue self_;
  std::map<std::string, YamlValue> fields_;
};

// The whole file at `path`. Throws kNotFound naming "<what> '<path>'" when it does not exist,
// kIo when it cannot be read. `what` is "recipe file", "search space file".
std::string ReadTextFile(const std::string& path, const std::string& what);

}  // namespace ipt::recipes
