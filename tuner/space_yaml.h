// YAML form of the search space (schema ipex-tune/space/v1, documented in docs/search-space.md).
// Reading is strict: a misspelt dimension or value that was silently skipped would make a study
// search a smaller space than the user asked for and report its winner as the best of all.
// Every rejection is ipt::Error(kInvalidArgument) with "<source>:<line>: <key path>: <problem>",
// e.g. "space.yaml:4: dimensions.dtype[1]: 'fp16' is not one of fp32, bf16, int8, int8-dynamic";
// problems with the document as a whole (YAML syntax, an empty file) have no key path.
#pragma once

#include <string>

#include "tuner/space_model.h"

namespace ipt::tuner {

// `source` names the text in error messages (a path, or "<default space of resnet50>").
SpaceDefinition ParseSpace(const std::string& yaml_text, const std::string& source);
// Throws kNotFound when the file does not exist, kIo when it cannot be read.
SpaceDefinition LoadSpace(const std::string& path);

}  // namespace ipt::tuner
