// The one pass every observer makes over a batch: its extremes, and the refusal of inf and NaN.
// One non-finite value turns a scale into inf or NaN and every output of the quantized model into
// garbage far from the layer that produced it, so calibration stops at the batch instead.
#pragma once

#include <cstdint>
#include <string_view>

namespace ipt::calibration {

struct Extrema {
  float min;
  float max;
};

// The min and max of data[0, count). `what` names the data in errors ("calibration batch").
// REQUIRES: count > 0 and data != nullptr.
// Throws ipt::Error kInvalidArgument when data holds inf or NaN, naming how many, the first index
// and its value. Vectorisable: one branch-free pass; the error path makes a second one.
Extrema ScanFinite(const float* data, int64_t count, std::string_view what);

}  // namespace ipt::calibration
