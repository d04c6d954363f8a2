// Eight floats as one vector, for the reductions of the hand-written kernels: a plain float sum
// is not vectorised (the compiler may not reorder it), so it runs at one add latency per
// element. Accumulating in independent lanes and summing them at the end is. Functions using
// these are built as target clones for x86-64-v4, x86-64-v3 (AVX2 with FMA; a clone for just
// "avx2" has no FMA) and the baseline, which splits each vector in two.
#pragma once

#include <cstdint>
#include <cstring>

namespace ipt::kernels::detail {

using Lanes = float __attribute__((vector_size(32), aligned(4)));
constexpr int64_t kLanes = sizeof(Lanes) / sizeof(float);

// By reference: a vector returned or passed by value outside the clones would change the ABI.
inline void Load(Lanes& v, const float* p) { std::memcpy(&v, p, sizeof v); }

inline void Store(const Lanes& v, float* p) { std::memcpy(p, &v, sizeof v); }

inline float Sum(const Lanes& v) {
  float sum = 0;
  for (int64_t l = 0; l < kLanes; ++l) sum += v[l];
  return sum;
}

}  // namespace ipt::kernels::detail
