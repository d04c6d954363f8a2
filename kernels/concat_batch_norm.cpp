#include "kernels/concat_batch_norm.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>

#include "kernels/dnnl_util.h"

namespace ipt::kernels {
namespace {

// out[i] = in[i] * scale + shift, clamped at 0 with relu: one channel's plane (NCHW).
__attribute__((target_clones("avx512f", "avx2", "default"))) void AffinePlane(
    const float* in, float* out, int64_t n, float scale, float shift, bool relu) {
  if (relu) {
    for (int64_t i = 0; i < n; ++i) out[i] = std::max(in[i] * scale + shift, 0.f);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale + shift;
  }
}

// out[c] = in[c] * scale[c] + shift[c], clamped at 0 with relu: one pixel's channels (NHWC).
__attribute__((target_clones("avx512f", "avx2", "default"))) void AffineChannels(
    const float* in, float* out, int64_t channels, const float* scale, const float* shift,
    bool relu) {
  if (relu) {
    for (int64_t c = 0; c < channels; ++c) out[c] = std::max(in[c] * scale[c] + shift[c], 0.f);
  } else {
    for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * scale[c] + shift[c];
  }
}

at::Tensor Reference(const std::vector<at::Tensor>& xs, const at::Tensor& scale,
                     const at::Tensor& shift, bool relu) {
  at::Tensor cat = at::cat(xs, 1);
  std::vector<int64_t> shape(cat.dim(), 1);
  shape[1] = -1;
  at::Tensor out =
      cat * scale.view(shape).to(cat.scalar_type()) + shift.view(shape).to(cat.scalar_type());
  return relu ? at::relu(out) : out;
}

}  // namespace

at::Tensor ConcatBatchNorm(const std::vector<at::Tensor>& xs, const at::Tensor& scale,
                           const at::Tensor& shift, bool relu) {
  bool supported = !xs.empty() && xs[0].dim() >= 2 &&
                   (xs[0].scalar_type() == at::kFloat || xs[0].scalar_type() == at::kBFloat16);
  int64_t channels = 0;
  for (const at::Tensor& x : xs) {
    supported = supported && x.dim() == xs[0].dim() && x.scalar_type() == xs[0].scalar_type();
    for (int64_t d = 0; supported && d < x.dim(); ++d)
      supported = d == 1 || x.size(d) == xs[0].size(d);
    if (supported) channels += x.size(1);
  }
  supported = supported && scale.numel() == channels && shift.numel() == channels;
  if (!supported) {
    static thread_local bool logged = false;
    if (!logged) {
      detail::LogFallback(fmt::format("cat+batch_norm of {} inputs", xs.size()),
                          "aten fallback: needs one dtype (fp32/bf16), rank >= 2 and equal sizes "
                          "but in the channels");
      logged = true;
    }
    return Reference(xs, scale, shift, relu);
  }
  const bool channels_last =
      xs[0].dim() == 4 && std::all_of(xs.begin(), xs.end(), [](auto& x) {
        return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
      });
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  std::vector<at::Tensor> inputs;
  for (const at::Tensor& x : xs) inputs.push_back(x.to(at::kFloat).contiguous(format));
  std::vector<int64_t> sizes = xs[0].sizes().vec();
  sizes[1] = channels;
  at::Tensor out = at::empty(sizes, xs[0].options().dtype(at::kFloat).memory_format(format));
  const at::Tensor scale32 = scale.to(at::kFloat).contiguous();
  const at::Tensor shift32 = shift.to(at::kFloat).contiguous();
  const float* pscale = scale32.data_ptr<float>();
  const float* pshift = shift32.data_ptr<float>();
  float* pout = out.data_ptr<float>();
  const int64_t batch = sizes[0];
  const int64_t inner = out.numel() / std::max<int64_t>(batch * channels, 1);
  if (channels_last) {
    // [N, H, W, C] in memory: every pixel holds each input's channels in a run of its own.
    const int64_t pixels = batch * inner;
    at::parallel_for(0, pixels, 64, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        int64_t offset = 0;
        for (const at::Tensor& x : inputs) {
          const int64_t c = x.size(1);
          AffineChannels(x.data_ptr<float>() + p * c, pout + p * channels + offset, c,
                         pscale + offset, pshift + offset, relu);
          offset += c;
        }
      }
    });
  } else {
    // [N, C, inner]: every (image, output channel) is one plane copied from its input.
    std::vector<std::pair<const at::Tensor*, int64_t>> source(channels);  // input, its channel
    for (size_t i = 0, offset = 0; i < inputs.size(); ++i) {
      for (int64_t c = 0; c < inputs[i].size(1); ++c) source[offset++] = {&inputs[i], c};
    }
    at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / channels, c = plane % channels;
        const auto& [x, xc] = source[c];
        const float* in = x->data_ptr<float>() + (n * x->size(1) + xc) * inner;
        AffinePlane(in, pout + plane * inner, inner, pscale[c], pshift[c], relu);
      }
    });
  }
  return xs[0].scalar_type() == at::kFloat ? out : out.to(xs[0].scalar_type());
}

}  // namespace ipt::kernels
