#include "kernels/add_layer_norm.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/dnnl_util.h"
#include "kernels/lanes.h"

namespace ipt::kernels {
namespace {

using detail::kLanes;
using detail::Lanes;
using detail::Load;
using detail::Store;
using detail::Sum;

// One row: out = (a + b - mean) / sqrt(var + eps) * weight + bias, the two sums in vector lanes
// (kernels/lanes.h). Built per ISA and picked at load time: the project is not compiled for one
// CPU.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void AddLayerNormRow(
    const float* a, const float* b, const float* weight, const float* bias, float* out, int64_t n,
    float eps) {
  // Four accumulators per sum: with one, each step waited on the previous add (about 1 cycle
  // per element, where the loads allow 4 elements a cycle).
  Lanes sum_lanes[4] = {};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    for (int l = 0; l < 4; ++l) {
      Lanes x, y;
      Load(x, a + i + l * kLanes);
      Load(y, b + i + l * kLanes);
      x += y;
      Store(x, out + i + l * kLanes);
      sum_lanes[l] += x;
    }
  }
  for (; i + kLanes <= n; i += kLanes) {
    Lanes x, y;
    Load(x, a + i);
    Load(y, b + i);
    x += y;
    Store(x, out + i);
    sum_lanes[0] += x;
  }
  float sum = Sum((sum_lanes[0] + sum_lanes[1]) + (sum_lanes[2] + sum_lanes[3]));
  for (; i < n; ++i) {
    out[i] = a[i] + b[i];
    sum += out[i];
  }
  const float mean = sum / static_cast<float>(n);
  Lanes square_lanes[4] = {};
  for (i = 0; i + 4 * kLanes <= n; i += 4 * kLanes) {
    for (int l = 0; l < 4; ++l) {
      Lanes d;
      Load(d, out + i + l * kLanes);
      d -= mean;
      square_lanes[l] += d * d;
    }
  }
  for (; i + kLanes <= n; i += kLanes) {
    Lanes d;
    Load(d, out + i);
    d -= mean;
    square_lanes[0] += d * d;
  }
  float square_sum = Sum((square_lanes[0] + square_lanes[1]) + (square_lanes[2] + square_lanes[3]));
  for (; i < n; ++i) {
    const float d = out[i] - mean;
    square_sum += d * d;
  }
  const float inverse_std = 1.f / std::sqrt(square_sum / static_cast<float>(n) + eps);
  // The usual case without a branch per element, which kept the loop from vectorising.
  if (weight && bias) {
    for (i = 0; i < n; ++i) out[i] = (out[i] - mean) * inverse_std * weight[i] + bias[i];
    return;
  }
  for (i = 0; i < n; ++i) {
    const float normalised = (out[i] - mean) * inverse_std;
    out[i] = normalised * (weight ? weight[i] : 1.f) + (bias ? bias[i] : 0.f);
  }
}

// bf16 <-> fp32 for one row in L1, where whole-tensor conversions cost two extra passes over
// memory on the way in and one on the way out. Rounding as aten's tensor conversion: to nearest
// even, NaN to 0xFFFF.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void ToFloat(
    const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(out + i, &bits, 4);
  }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) void ToBFloat16(
    const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, 4);
    const uint32_t rounded = (bits + 0x7FFFU + ((bits >> 16) & 1U)) >> 16;
    out[i] = in[i] != in[i] ? uint16_t{0xFFFF} : static_cast<uint16_t>(rounded);
  }
}

at::Tensor Reference(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef normalized_shape,
                     const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(a + b, normalized_shape, weight, bias, eps);
}

}  // namespace

at::Tensor AddLayerNorm(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef normalized_shape,
                        const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const bool supported_dtype = a.scalar_type() == at::kFloat || a.scalar_type() == at::kBFloat16;
  const int64_t n = a.dim() > 0 ? a.size(-1) : 0;
  auto matches = [&](const at::Tensor& t) {
    return !t.defined() || (t.dim() == 1 && t.size(0) == n);
  };
  if (!supported_dtype || a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type() ||
      normalized_shape.size() != 1 || normalized_shape[0] != n || n == 0 || !matches(weight) ||
      !matches(bias)) {
    static thread_local bool logged = false;
    if (!logged) {
      detail::LogFallback(
          fmt::format("add+layer_norm {} + {}", detail::Dims(a.sizes()), detail::Dims(b.sizes())),
          "aten fallback: needs equal shapes, fp32/bf16 and the last dimension");
      logged = true;
    }
    return Reference(a, b, normalized_shape, weight, bias, eps);
  }
  const bool bf16 = a.scalar_type() == at::kBFloat16;
  at::Tensor ac = a.contiguous(), bc = b.contiguous();
  at::Tensor w32 = weight.defined() ? weight.to(at::kFloat).contiguous() : weight;
  at::Tensor bias32 = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  at::Tensor out = at::empty(a.sizes(), ac.options());
  const float* pw = w32.defined() ? w32.data_ptr<float>() : nullptr;
  const float* pbias = bias32.defined() ? bias32.data_ptr<float>() : nullptr;
  const int64_t rows = a.numel() / n;
  const float eps_f = static_cast<float>(eps);
  if (!bf16) {
    const float* pa = ac.data_ptr<float>();
    const float* pb = bc.data_ptr<float>();
    float* po = out.data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        AddLayerNormRow(pa + r * n, pb + r * n, pw, pbias, po + r * n, n, eps_f);
    });
    return out;
  }
  // bf16: each row converted to fp32 in a scratch row and back, computed as fp32 is.
  const auto* pa = reinterpret_cast<const uint16_t*>(ac.data_ptr<at::BFloat16>());
  const auto* pb = reinterpret_cast<const uint16_t*>(bc.data_ptr<at::BFloat16>());
  auto* po = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(3 * n);
    float* ra = scratch.data();
    float* rb = ra + n;
    float* ro = rb + n;
    for (int64_t r = begin; r < end; ++r) {
      ToFloat(pa + r * n, ra, n);
      ToFloat(pb + r * n, rb, n);
      AddLayerNormRow(ra, rb, pw, pbias, ro, n, eps_f);
      ToBFloat16(ro, po + r * n, n);
    }
  });
  return out;
}

}  // namespace ipt::kernels
