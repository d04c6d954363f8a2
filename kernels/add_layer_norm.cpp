#include "kernels/add_layer_norm.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cmath>
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
  Lanes sum_lanes = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes x, y;
    Load(x, a + i);
    Load(y, b + i);
    x += y;
    Store(x, out + i);
    sum_lanes += x;
  }
  float sum = Sum(sum_lanes);
  for (; i < n; ++i) {
    out[i] = a[i] + b[i];
    sum += out[i];
  }
  const float mean = sum / static_cast<float>(n);
  Lanes square_lanes = {};
  for (i = 0; i + kLanes <= n; i += kLanes) {
    Lanes d;
    Load(d, out + i);
    d -= mean;
    square_lanes += d * d;
  }
  float square_sum = Sum(square_lanes);
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
  at::Tensor a32 = a.to(at::kFloat).contiguous(), b32 = b.to(at::kFloat).contiguous();
  at::Tensor w32 = weight.defined() ? weight.to(at::kFloat).contiguous() : weight;
  at::Tensor bias32 = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  at::Tensor out = at::empty(a.sizes(), a.options().dtype(at::kFloat));
  const float* pa = a32.data_ptr<float>();
  const float* pb = b32.data_ptr<float>();
  const float* pw = w32.defined() ? w32.data_ptr<float>() : nullptr;
  const float* pbias = bias32.defined() ? bias32.data_ptr<float>() : nullptr;
  float* po = out.data_ptr<float>();
  const int64_t rows = a.numel() / n;
  const float eps_f = static_cast<float>(eps);
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      AddLayerNormRow(pa + r * n, pb + r * n, pw, pbias, po + r * n, n, eps_f);
  });
  return bf16 ? out.to(at::kBFloat16) : out;
}

}  // namespace ipt::kernels
