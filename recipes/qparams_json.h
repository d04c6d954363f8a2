// The JSON form of calibrated int8 parameters, as the worker reports them (`applied.qparams`),
// the calibration cache stores them and the tuner reads them back into an exported recipe: one
// form, so that no part of them is lost on the way to production.
#pragma once

#include <nlohmann/json.hpp>

#include "recipes/recipe.h"

namespace ipt::recipes {

// {"graph", "inputs": {op: {"scale", "zero_point", "qmax"}}, "accumulators": {...}, and
// "smoothing": {op: [factor, ...]} when there is any}. Doubles print in their shortest exact
// form, so values come back bit for bit.
nlohmann::json QParamsToJson(const QParams& qparams);
// Throws ipt::Error(kCorrupt) naming what is missing or mistyped.
QParams QParamsFromJson(const nlohmann::json& json);

}  // namespace ipt::recipes
