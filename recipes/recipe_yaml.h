// YAML load and save of recipes. Loading validates everything: an unknown key, a wrong type or
// a value out of range throws ipt::Error(kInvalidArgument) whose message names the source, the
// line and the key path, e.g. "r.yaml:7: precision.dtype: 'fp16' is not one of fp32, bf16,
// int8, int8-dynamic". Problems with the document as a whole (YAML syntax, an empty file, a
// top level that is not a map) have no key path: "r.yaml:3: YAML syntax error: ...". Missing
// optional sections take the defaults of recipe.h; only `schema` and `workload.name` are
// required. Static int8 without a calibration section gets the default Calibration.
#pragma once

#include <string>

#include "recipes/recipe.h"

namespace ipt::recipes {

// `source` names the text in error messages (a path, or "<stdin>").
Recipe ParseRecipe(const std::string& yaml_text, const std::string& source);
// Throws kNotFound when the file does not exist, kIo when it cannot be read.
Recipe LoadRecipe(const std::string& path);

// Deterministic output: the same recipe always gives the same bytes, keys in schema order.
// Empty optional parts (provenance, seq_len, inputs, model_path) are left out, calibration is
// written for int8 only, doubles use the fewest digits that read back exactly, and strings a
// YAML reader would take for something else ("yes", "1.0", "") are quoted.
std::string ToYaml(const Recipe& recipe);
// Writes atomically (temporary file and rename) so a crash never leaves half a recipe.
void SaveRecipe(const Recipe& recipe, const std::string& path);

}  // namespace ipt::recipes
