#include "kernels/quant.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <oneapi/dnnl/dnnl.hpp>

#include "base/error.h"
#include "kernels/buffer_pool.h"

namespace ipt::kernels {
namespace {

// The body is inlined into each clone below, so every ISA gets its own vectorised copy.
template <typename Q>
inline void QuantizeBody(const float* x, Q* out, int64_t count, float inverse_scale,
                         float zero_point, float lo, float hi) {
  for (int64_t i = 0; i < count; ++i) {
    float v = std::nearbyint(x[i] * inverse_scale) + zero_point;
    out[i] = static_cast<Q>(std::min(std::max(v, lo), hi));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeRange(
    const float* x, uint8_t* out, int64_t count, float inverse_scale, float zero_point, float lo,
    float hi) {
  QuantizeBody(x, out, count, inverse_scale, zero_point, lo, hi);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeRange(
    const float* x, int8_t* out, int64_t count, float inverse_scale, float zero_point, float lo,
    float hi) {
  QuantizeBody(x, out, count, inverse_scale, zero_point, lo, hi);
}

template <typename Q>
inline void QuantizeScaledBody(const float* x, Q* out, int64_t count, const float* multipliers,
                               float zero_point, float lo, float hi) {
  for (int64_t i = 0; i < count; ++i) {
    float v = std::nearbyint(x[i] * multipliers[i]) + zero_point;
    out[i] = static_cast<Q>(std::min(std::max(v, lo), hi));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeScaledRange(
    const float* x, uint8_t* out, int64_t count, const float* multipliers, float zero_point,
    float lo, float hi) {
  QuantizeScaledBody(x, out, count, multipliers, zero_point, lo, hi);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeScaledRange(
    const float* x, int8_t* out, int64_t count, const float* multipliers, float zero_point,
    float lo, float hi) {
  QuantizeScaledBody(x, out, count, multipliers, zero_point, lo, hi);
}

void CheckScale(const ActivationQuant& q) {
  TORCH_CHECK(q.scale > 0 && std::isfinite(q.scale), "ipt quantize: scale must be positive, got ",
              q.scale);
}

}  // namespace

bool CpuHasVnni() {
  static const bool has = [] {
    auto isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx2_vnni || isa == dnnl::cpu_isa::avx512_core_vnni ||
           isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return has;
}

int32_t UnsignedActivationMax() { return CpuHasVnni() ? 255 : 127; }

ActivationQuant AffineUnsignedQuant(float min, float max, int32_t qmax) {
  min = std::min(min, 0.0F);
  max = std::max(max, 0.0F);
  ActivationQuant q;
  q.qmin = 0;
  q.qmax = qmax;
  q.scale = std::max((max - min) / static_cast<float>(qmax), 1.1920929e-07F);
  q.zero_point = std::clamp(static_cast<int32_t>(std::nearbyint(-min / q.scale)), 0, qmax);
  return q;
}

at::Tensor QuantizeActivation(const at::Tensor& x, const ActivationQuant& q) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "ipt quantize: expected fp32, got ", x.scalar_type());
  CheckScale(q);
  const auto format = x.suggest_memory_format();
  at::Tensor src = x.contiguous(format);
  at::Tensor out = detail::EmptyRecycled(
      src.sizes(), src.options().dtype(q.is_signed() ? at::kChar : at::kByte), format);
  const float* in = src.data_ptr<float>();
  const float inverse = 1.0F / q.scale, zp = static_cast<float>(q.zero_point);
  const float lo = static_cast<float>(q.qmin), hi = static_cast<float>(q.qmax);
  // 16 Ki elements per task: large enough to amortise a task, small enough to split a batch.
  at::parallel_for(0, src.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    if (q.is_signed()) {
      QuantizeRange(in + begin, out.data_ptr<int8_t>() + begin, end - begin, inverse, zp, lo, hi);
    } else {
      QuantizeRange(in + begin, out.data_ptr<uint8_t>() + begin, end - begin, inverse, zp, lo, hi);
    }
  });
  return out;
}

at::Tensor QuantizeActivationSmoothed(const at::Tensor& x, const ActivationQuant& q,
                                      const at::Tensor& smoothing) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "ipt quantize: expected fp32, got ", x.scalar_type());
  CheckScale(q);
  TORCH_CHECK(x.dim() >= 1 && smoothing.dim() == 1 && smoothing.size(0) == x.size(-1),
              "ipt quantize: ", smoothing.numel(), " smoothing factors for ",
              x.dim() >= 1 ? x.size(-1) : 0, " channels");
  at::Tensor src = x.contiguous();
  // One multiplier per channel: 1 / (smoothing factor x scale), computed once per call.
  at::Tensor multipliers = (smoothing.to(at::kFloat) * q.scale).reciprocal().contiguous();
  at::Tensor out =
      detail::EmptyRecycled(src.sizes(), src.options().dtype(q.is_signed() ? at::kChar : at::kByte),
                            at::MemoryFormat::Contiguous);
  const int64_t channels = src.size(-1), rows = src.numel() / std::max<int64_t>(channels, 1);
  const float* in = src.data_ptr<float>();
  const float* m = multipliers.data_ptr<float>();
  const float zp = static_cast<float>(q.zero_point);
  const float lo = static_cast<float>(q.qmin), hi = static_cast<float>(q.qmax);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(channels, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t offset = r * channels;
      if (q.is_signed()) {
        QuantizeScaledRange(in + offset, out.data_ptr<int8_t>() + offset, channels, m, zp, lo, hi);
      } else {
        QuantizeScaledRange(in + offset, out.data_ptr<uint8_t>() + offset, channels, m, zp, lo, hi);
      }
    }
  });
  return out;
}

QuantizedWeight QuantizeWeightPerChannel(const at::Tensor& weight) {
  at::Tensor w = weight.to(at::kFloat).contiguous();
  TORCH_CHECK(w.dim() >= 2, "ipt quantize: a weight needs an output-channel dimension");
  TORCH_CHECK(at::isfinite(w).all().item<bool>(), "ipt quantize: the weight holds inf or NaN");
  at::Tensor scales = w.reshape({w.size(0), -1}).abs().amax(1) / 127.0;
  // 1 for a channel of zeros (or of values so small that the step underflows).
  scales = at::where(scales > 0, scales, at::ones_like(scales)).contiguous();
  std::vector<int64_t> shape(w.dim(), 1);
  shape[0] = w.size(0);
  at::Tensor q = (w / scales.view(shape)).round().clamp(-127, 127).to(at::kChar).contiguous();
  return {q, std::vector<float>(scales.data_ptr<float>(), scales.data_ptr<float>() + w.size(0))};
}

std::string ToString(const ActivationQuant& q) {
  return fmt::format("scale={:g} zero_point={} range=[{}, {}]", q.scale, q.zero_point, q.qmin,
                     q.qmax);
}

}  // namespace ipt::kernels
