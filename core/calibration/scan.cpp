#include "core/calibration/scan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "base/error.h"

namespace ipt::calibration {

namespace {

[[noreturn]] void ThrowNonFinite(const float* data, int64_t count, int64_t non_finite,
                                 std::string_view what) {
  int64_t first = 0;
  while (std::isfinite(data[first])) ++first;
  std::ostringstream message;
  message << what << " holds " << non_finite << " non-finite value" << (non_finite == 1 ? "" : "s")
          << " (inf or NaN) among " << count << ", the first at index " << first << " ("
          << data[first] << "); calibration needs finite data";
  throw Error(ErrorCode::kInvalidArgument, message.str());
}

}  // namespace

Extrema ScanFinite(const float* data, int64_t count, std::string_view what) {
  constexpr float kLargest = std::numeric_limits<float>::max();
  // Independent lanes rather than one running min: without -ffast-math the compiler will not
  // reorder a float min reduction, but it does turn these element-wise selects into minps/maxps.
  constexpr int64_t kLanes = 16;
  std::array<float, kLanes> min;
  std::array<float, kLanes> max;
  std::array<int32_t, kLanes> non_finite{};
  min.fill(data[0]);
  max.fill(data[0]);
  const auto visit = [&](int64_t lane, float value) {
    min[lane] = value < min[lane] ? value : min[lane];
    max[lane] = value > max[lane] ? value : max[lane];
    non_finite[lane] += std::fabs(value) <= kLargest ? 0 : 1;
  };
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int64_t lane = 0; lane < kLanes; ++lane) visit(lane, data[i + lane]);
  }
  for (; i < count; ++i) visit(0, data[i]);
  int64_t total_non_finite = 0;
  for (int64_t lane = 0; lane < kLanes; ++lane) total_non_finite += non_finite[lane];
  if (total_non_finite > 0) ThrowNonFinite(data, count, total_non_finite, what);
  return {*std::min_element(min.begin(), min.end()), *std::max_element(max.begin(), max.end())};
}

}  // namespace ipt::calibration
